"""SavedModel export of any ranker, and scoring through the exported signature.

``serving_default`` takes one raw tensor per input spec (contract dtypes and names, sequences
``[B, max_len]``; :func:`training.export.signature_specs`) and returns ``score`` plus one
``float32 [B]`` output per model output (``ctr``; ``cvr`` for MMoE/ESMM; ``ctcvr`` for ESMM).

``score`` is ALWAYS the click probability (``ctr``), for every ranker including ESMM: serving's
ranker contract is "score = click probability", the evaluation compares challenger and champion
on click labels, and a ranker swap must not silently change what the score means. A service
that wants to rank by expected purchases reads ESMM's ``ctcvr`` output explicitly.

Only the variables the serving function reads are attached to the exported module, not the
Keras model: Keras' own SavedModel serialisation would re-trace every layer (slow, and the usual
source of "reloaded TFRS model scores differently / fails to load" reports) and would drag the
training-only task/metric state along. The reloaded signature needs neither Keras nor TFRS.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.tf_runtime import tensorflow
from training.export import SIGNATURE, signature_specs
from training.preprocessing import InputSpec
from training.rankers.config import CLICK_TASK

SCORE = "score"


def primary_task(model: Any) -> str:
    """The task whose probability is exported as ``score``: ``ctr``, else the first task."""
    return CLICK_TASK if CLICK_TASK in model.tasks else model.tasks[0]


def export_ranker_model(model: Any, specs: list[InputSpec], path: Path) -> Path:
    """Save ``model`` as a SavedModel with a flat ``serving_default`` signature.

    Args:
        model: A ranker from :func:`training.rankers.build_ranker_model` (trained or not).
        specs: Its inputs, in signature order (must name exactly the model's inputs).
        path: Target directory; created; must not already hold a SavedModel.

    Returns:
        ``path``.

    Raises:
        ValueError: if ``specs`` differ from the inputs the model was built with.
        FileExistsError: if ``path`` already holds a SavedModel (never overwrite silently).
    """
    tf = tensorflow()
    want = {s.name: s for s in model.input_specs}
    got = {s.name: s for s in specs}
    if want != got:
        raise ValueError(f"export specs differ from the model's inputs: missing "
                         f"{sorted(set(want) - set(got))}, extra {sorted(set(got) - set(want))}, "
                         f"changed {sorted(n for n in set(want) & set(got) if want[n] != got[n])}")
    path = Path(path)
    if (path / "saved_model.pb").exists():
        raise FileExistsError(f"{path} already holds a SavedModel")
    names, primary = [s.name for s in specs], primary_task(model)

    def serve(*args: Any) -> dict[str, Any]:
        probs = model(dict(zip(names, args, strict=True)), training=False)
        out = {SCORE: probs[primary], **probs}
        return {k: tf.cast(v, tf.float32) for k, v in out.items()}

    concrete = tf.function(serve, input_signature=signature_specs(specs)).get_concrete_function()
    module = tf.Module()
    # Track exactly what the traced graph reads, so saving needs no Keras serialisation; the
    # function is attached only as the signature, so saving does not trace it a second time.
    module.captured = list(concrete.variables)
    path.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: concrete})
    return path


def load_and_score(path: Path | Any, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Score raw inputs with an exported ranker's ``serving_default``.

    Args:
        path: SavedModel directory, or an already loaded SavedModel (to load once, score often).
        inputs: Raw values by input name: ``[B]`` scalars, ``[B, max_len]`` padded sequences.
            Integers are accepted for float inputs; the exact signature dtype is applied.

    Returns:
        Every output (``score``, per-task probabilities) as a numpy ``float32 [B]`` array.

    Raises:
        ValueError: naming missing/unexpected inputs, a float value fed to an integer input,
            or a wrong rank/length.
    """
    tf = tensorflow()
    loaded = tf.saved_model.load(str(path)) if isinstance(path, (str, Path)) else path
    fn = loaded.signatures[SIGNATURE]
    sig = fn.structured_input_signature[1]
    missing, extra = sorted(set(sig) - set(inputs)), sorted(set(inputs) - set(sig))
    if missing or extra:
        raise ValueError(f"ranker inputs mismatch: missing {missing}, unexpected {extra}")
    args = {}
    for name, spec in sig.items():
        value = np.asarray(inputs[name])
        if spec.dtype.is_integer and value.dtype.kind not in "iub":
            raise ValueError(f"input {name!r} must be integer ({spec.dtype.name}), "
                             f"got {value.dtype}")
        if not spec.shape.is_compatible_with(value.shape):
            raise ValueError(f"input {name!r} has shape {value.shape}, expected {spec.shape}")
        args[name] = tf.constant(value, dtype=spec.dtype)
    return {k: v.numpy() for k, v in fn(**args).items()}
