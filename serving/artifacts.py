"""Load one training run's serving artifacts: SavedModel signatures and the FAISS item index.

Serving only consumes the documented Model I/O (docs/architecture.md): flat, named raw inputs
with the contract dtypes, outputs ``embedding`` / ``score``. Nothing here knows how the models
were trained, which is what keeps serving free of any ``training`` import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

USER_TOWER_DIR = "user_tower"
ITEM_TOWER_DIR = "item_tower"
RANKER_DIR = "ranker"
INDEX_FILE = "item_index.faiss"
ITEM_IDS_FILE = "item_ids.npy"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"

RETRIEVAL_FILES = (USER_TOWER_DIR, INDEX_FILE, ITEM_IDS_FILE)
"""What the retrieval stage needs (the item tower is only used offline to build the index)."""
RANKER_FILES = (RANKER_DIR,)

Arrays = Mapping[str, np.ndarray]


class Signature:
    """A SavedModel ``serving_default`` signature callable with NumPy arrays.

    Casting to the signature's own TensorSpec dtypes (rather than trusting callers) turns a
    dtype slip into a clear error here instead of an opaque TF type error deep in the graph.
    The SavedModel object is kept alive because a concrete function does not own its variables.
    """

    def __init__(self, path: Path) -> None:
        """Load ``path`` with ``tf.saved_model.load`` and keep its serving signature."""
        from shoprec.tf_runtime import tensorflow

        tf = tensorflow()
        self.path = Path(path)
        self._module = tf.saved_model.load(str(path))
        if "serving_default" not in self._module.signatures:
            raise ValueError(f"{path} has no 'serving_default' signature")
        self._fn = self._module.signatures["serving_default"]
        specs = self._fn.structured_input_signature[1]
        self.input_dtypes: dict[str, np.dtype] = {
            name: np.dtype(spec.dtype.as_numpy_dtype) for name, spec in specs.items()
        }
        # the flat argument order of a dict signature is its sorted keys (tf.nest)
        self._flat = sorted(self.input_dtypes.items())
        self._flat_ok = True

    @property
    def input_names(self) -> list[str]:
        """Names of the inputs the signature requires."""
        return sorted(self.input_dtypes)

    def __call__(self, inputs: Arrays) -> dict[str, np.ndarray]:
        """Run the signature on a batch; every input must be present, extras are an error."""
        from shoprec.tf_runtime import tensorflow

        tf = tensorflow()
        missing = sorted(set(self.input_dtypes) - set(inputs))
        extra = sorted(set(inputs) - set(self.input_dtypes))
        if missing or extra:
            raise ValueError(f"{self.path.name}: missing inputs {missing}, unexpected {extra}")
        feed = [tf.constant(np.asarray(inputs[name]).astype(dtype, copy=False))
                for name, dtype in self._flat]
        if self._flat_ok:  # skip the per-call binding of the structured signature (~0.5 ms)
            try:
                out = self._fn._call_flat(feed, self._fn.captured_inputs)
            except (AttributeError, TypeError):  # a TF without this private path
                self._flat_ok = False
            else:
                return {name: t.numpy() for name, t in out.items()}
        return {name: t.numpy() for name, t in
                self._fn(**dict(zip((n for n, _ in self._flat), feed, strict=True))).items()}


@dataclass
class Artifacts:
    """Everything the online path needs from one run.

    Attributes:
        user_tower: ``serving_default(user_id, <two_tower_user features>) -> embedding``.
        ranker: ``serving_default(user_id, item_id, <ranker features>) -> score``.
        index: FAISS inner-product index over item embeddings.
        item_ids: ``int64`` item id for each index row.
        manifest: The run's ``manifest.json`` (empty if absent).
        metrics: The run's ``metrics.json`` (empty if absent).
    """

    user_tower: Callable[[Arrays], dict[str, np.ndarray]]
    ranker: Callable[[Arrays], dict[str, np.ndarray]]
    index: Any
    item_ids: np.ndarray
    manifest: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.index.ntotal != len(self.item_ids):
            raise ValueError(
                f"FAISS index has {self.index.ntotal} rows but item_ids has {len(self.item_ids)}"
            )

    @property
    def run_id(self) -> str:
        """The training run id recorded in the manifest, or ``"unknown"``."""
        return str(self.manifest.get("run_id", "unknown"))


def read_json(path: Path) -> dict:
    """Read a JSON object, or ``{}`` if the file does not exist (manifests are optional)."""
    return json.loads(path.read_text()) if path.exists() else {}


def load_index(directory: Path) -> tuple[Any, np.ndarray]:
    """Load ``item_index.faiss`` and ``item_ids.npy`` from ``directory``."""
    import faiss

    index = faiss.read_index(str(Path(directory) / INDEX_FILE))
    item_ids = np.load(Path(directory) / ITEM_IDS_FILE).astype(np.int64)
    return index, item_ids


def load_artifacts(retrieval_dir: Path, ranker_dir: Path | None = None) -> Artifacts:
    """Load a run's serving artifacts.

    A training run directory holds everything, so ``ranker_dir`` defaults to
    ``retrieval_dir``; inside a bento the two BentoML models live in separate folders.

    Args:
        retrieval_dir: Folder with ``user_tower/``, ``item_index.faiss``, ``item_ids.npy``.
        ranker_dir: Folder with ``ranker/``.

    Raises:
        FileNotFoundError: naming every missing artifact, so a half-written run fails fast.
    """
    retrieval_dir = Path(retrieval_dir)
    ranker_dir = retrieval_dir if ranker_dir is None else Path(ranker_dir)
    wanted = [retrieval_dir / n for n in RETRIEVAL_FILES] + [ranker_dir / n for n in RANKER_FILES]
    missing = [str(p) for p in wanted if not p.exists()]
    if missing:
        raise FileNotFoundError(f"missing serving artifacts: {missing}")
    index, item_ids = load_index(retrieval_dir)
    return Artifacts(
        user_tower=Signature(retrieval_dir / USER_TOWER_DIR),
        ranker=Signature(ranker_dir / RANKER_DIR),
        index=index,
        item_ids=item_ids,
        manifest=read_json(retrieval_dir / MANIFEST_FILE),
        metrics=read_json(retrieval_dir / METRICS_FILE),
    )
