"""SavedModel export with flat, named, contract-typed signatures.

Serving calls ``signatures["serving_default"](**features)`` with one tensor per contract feature.
A dict-typed ``input_signature`` would be flattened by TF into arguments named ``feats``,
``feats_1``…, so the exported function takes positional tensors whose ``TensorSpec.name`` is
the feature name; TF uses those names as the signature's keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, tf_dtype

SIGNATURE = "serving_default"


def signature_specs(specs: list[InputSpec]) -> list[Any]:
    """One ``TensorSpec`` per input, in spec order, named after the feature.

    Scalars are ``[None]``; a ``sequence`` input is ``[None, max_len]`` (already padded by the
    caller with the contract's pad element), so the graph never sees ragged input.
    """
    tf = tensorflow()
    return [tf.TensorSpec(shape=[None, s.max_len] if s.kind == "sequence" else [None],
                          dtype=tf_dtype(s.dtype), name=s.name) for s in specs]


def export_model(forward: Callable[[dict[str, Any]], Any], trackable: Any,
                 specs: list[InputSpec], output: str, path: Path) -> Path:
    """Save ``forward`` as a SavedModel whose only signature is ``serving_default``.

    Args:
        forward: Maps a dict of raw tensors (by input name) to a float tensor.
        trackable: The Keras model(s) holding the variables ``forward`` uses; attached to the
            exported ``tf.Module`` so the variables are saved.
        specs: Inputs, in signature order.
        output: Name of the single output (``embedding`` or ``score``).
        path: Target directory (created; must not already hold a SavedModel).

    Returns:
        ``path``.
    """
    tf = tensorflow()
    names = [s.name for s in specs]

    def serve(*args: Any) -> dict[str, Any]:
        return {output: tf.cast(forward(dict(zip(names, args, strict=True))), tf.float32)}

    module = tf.Module()
    module.model = trackable
    module.serve = tf.function(serve, input_signature=signature_specs(specs))
    path.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(module, str(path),
                        signatures={SIGNATURE: module.serve.get_concrete_function()})
    return path


def export_tower(tower: Any, specs: list[InputSpec], path: Path) -> Path:
    """Export a two-tower tower: ``serving_default(<inputs>) -> {"embedding": float32[B, D]}``."""
    return export_model(lambda feats: tower(feats, training=False), tower, specs,
                        "embedding", path)


def export_ranker(ranker: Any, specs: list[InputSpec], path: Path) -> Path:
    """Export the DCN ranker: ``serving_default(<inputs>) -> {"score": float32[B]}``."""
    # Track only the network: the tfrs task/metrics are training-only state and would just add
    # unbuilt layers (and warnings) to the SavedModel.
    return export_model(lambda feats: ranker(feats, training=False), ranker.network, specs,
                        "score", path)


def call_saved(path: Path | Any, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Run ``serving_default`` of a SavedModel (path or loaded object) on numpy inputs.

    Returns the single output as numpy, or the ``score`` output of a multi-output ranker (which
    also exports one probability per task; ``score`` is what serving ranks by). Used for the
    reload check and to embed the catalogue with the *exported* item tower, so the index is built
    by exactly what serving loads.
    """
    tf = tensorflow()
    loaded = tf.saved_model.load(str(path)) if isinstance(path, (str, Path)) else path
    fn = loaded.signatures[SIGNATURE]
    out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    if "score" in out:
        return out["score"].numpy()
    (value,) = out.values()
    return value.numpy()


def verify_export(path: Path, reference: np.ndarray, inputs: Mapping[str, np.ndarray],
                  atol: float = 1e-5) -> float:
    """Reload ``path`` and check it reproduces the in-memory model's output.

    Args:
        path: SavedModel directory.
        reference: Output of the in-memory model on ``inputs``.
        inputs: Raw numpy inputs by signature name.
        atol: Largest allowed absolute difference.

    Returns:
        The largest absolute difference observed.

    Raises:
        AssertionError: if shapes differ or the difference exceeds ``atol``; exporting a model
            that scores differently from the one evaluated must fail the run.
    """
    got = call_saved(path, inputs)
    if got.shape != reference.shape:
        raise AssertionError(f"{path}: reloaded output shape {got.shape} != {reference.shape}")
    diff = float(np.max(np.abs(got - reference))) if got.size else 0.0
    if not diff <= atol:
        raise AssertionError(f"{path}: reloaded output differs by {diff} > {atol}")
    return diff
