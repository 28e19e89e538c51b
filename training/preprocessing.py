"""Keras preprocessing derived from the feature contract, built INSIDE the models.

Serving sends raw values (contract dtypes) straight into the SavedModels, so hashing, log1p and
standardisation must be part of the exported graph: the same code path runs at training and at
serving time, which removes a whole class of training/serving skew. Nothing here names a feature;
everything comes from :class:`shoprec.contract.Contract`.

``sequence`` inputs arrive as ``[B, max_len]`` arrays padded by
:func:`shoprec.sequences.pad_sequences` (the function serving uses too). :func:`encode` pools
them into one vector each: id/category histories through a hashed embedding (the target's own
table when the target is an input of the same model, e.g. the ranker's ``item_id``) and a
MASKED mean over the non-pad positions; float histories (time gaps) as the masked mean of their
standardised log1p. Attention over histories (DIN/DIEN) is built on the same padded inputs by
the models that want it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import ID_VOCAB, Contract
from shoprec.sequences import pad_sequences
from shoprec.tf_runtime import tensorflow


@dataclass(frozen=True)
class InputSpec:
    """One raw model input.

    Attributes:
        name: Input name: a contract feature name, ``user_id`` or ``item_id``.
        dtype: Contract dtype of the raw value (``int64``, ``float64`` or ``string``).
        kind: ``id``, ``categorical``, ``count``, ``numeric`` or ``sequence``; decides the
            preprocessing.
        vocab: Hash-bucket count for ``id`` / ``categorical`` inputs, and for id sequences
            (0 otherwise).
        max_len: Fixed length of a ``sequence`` input (``[B, max_len]``, newest last,
            left-padded); 0 for scalar inputs.
        target: For a ``sequence``, the input it is attended against (shares its embedding).
        default: The contract default; for a ``sequence`` the pad element, which
            :func:`encode` masks out.
    """

    name: str
    dtype: str
    kind: str
    vocab: int = 0
    max_len: int = 0
    target: str = ""
    default: float | int | str = 0


Stats = dict[str, tuple[float, float]]
"""Per-input (mean, variance) of the *transformed* value, for ``count`` and ``numeric`` inputs
and float ``sequence`` inputs (over their non-pad elements)."""


def model_inputs(contract: Contract, service: str, ids: tuple[str, ...]) -> list[InputSpec]:
    """Raw inputs of the model that consumes FeatureService ``service``.

    Args:
        contract: The feature contract.
        service: FeatureService name (``two_tower_user``, ``two_tower_item``, ``ranker``).
        ids: Entity id columns fed as hashed inputs too, in order (e.g. ``("user_id",)``).

    Returns:
        Specs in a stable order: ids first, then the service features in contract order. The
        order is the SavedModel argument order, so it must not depend on DataFrame columns.

    Raises:
        ValueError: if a categorical feature declares no ``vocab_size`` (hashing needs one).
    """
    specs = [InputSpec(i, "int64", "id", ID_VOCAB[i]) for i in ids]
    for f in contract.service_features(service):
        if f.kind == "categorical" and f.vocab_size <= 0:
            raise ValueError(f"categorical feature {f.name!r} needs vocab_size > 0 for hashing")
        if f.kind == "sequence" and f.dtype == "int64" and f.vocab_size <= 0:
            raise ValueError(f"id sequence {f.name!r} needs vocab_size > 0 for hashing")
        specs.append(InputSpec(f.name, f.dtype, f.kind, f.vocab_size, f.max_len, f.target,
                               f.default))
    return specs


def numpy_dtype(dtype: str) -> Any:
    """Numpy dtype for a contract dtype (``string`` maps to object)."""
    return {"int64": np.int64, "float64": np.float64, "string": object}[dtype]


def tf_dtype(dtype: str) -> Any:
    """TensorFlow dtype for a contract dtype; this is the SavedModel signature dtype."""
    tf = tensorflow()
    return {"int64": tf.int64, "float64": tf.float64, "string": tf.string}[dtype]


def to_feature_dict(df: pd.DataFrame, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """Columns of ``df`` as arrays with exactly the contract dtypes.

    Training feeds the models the same dtypes serving will, so a dtype mismatch shows up here
    (as a cast of the DataFrame) instead of as a signature error in production.
    """
    missing = [s.name for s in specs if s.name not in df.columns]
    if missing:
        raise KeyError(f"DataFrame lacks model inputs {missing}")
    return {s.name: pad_sequences(df[s.name], s) if s.kind == "sequence"
            else df[s.name].to_numpy(dtype=numpy_dtype(s.dtype)) for s in specs}


def arrow_feature_dict(batch: Any, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """:func:`to_feature_dict` of an Arrow record batch (a streamed Parquet read).

    The same arrays and errors, but no pandas frame in between: list columns (histories) are
    padded from their offsets (:func:`shoprec.sequences.pad_arrow`) and null-free scalar columns
    convert without copies. A column with nulls goes through pandas, so that it behaves exactly
    as :func:`to_feature_dict` does (NaN for floats, an error for ids).
    """
    from shoprec.sequences import pad_arrow

    names = set(batch.schema.names)
    missing = [s.name for s in specs if s.name not in names]
    if missing:
        raise KeyError(f"record batch lacks model inputs {missing}")
    out = {}
    for s in specs:
        column = batch.column(s.name)
        if s.kind == "sequence":
            out[s.name] = pad_arrow(column, s)
        elif column.null_count or s.dtype == "string":
            out[s.name] = column.to_pandas().to_numpy(dtype=numpy_dtype(s.dtype))
        else:
            out[s.name] = column.to_numpy(zero_copy_only=False).astype(numpy_dtype(s.dtype),
                                                                      copy=False)
    return out


def _transform_numpy(values: np.ndarray, kind: str) -> np.ndarray:
    x = values.astype(np.float64)
    return np.log1p(np.maximum(x, 0.0)) if kind == "count" else x


def fit_stats(df: pd.DataFrame, specs: list[InputSpec]) -> Stats:
    """Mean and variance of every count/numeric input on the TRAIN split.

    This is what ``Normalization.adapt`` computes; doing it in float64 numpy avoids one tf.data
    pass per feature and float32 accumulation error on large values (prices, counts), and the
    result is handed to ``Normalization(mean=..., variance=...)``.
    """
    stats: Stats = {}
    for s in specs:
        if s.kind in ("count", "numeric"):
            x = _transform_numpy(df[s.name].to_numpy(), s.kind)
            stats[s.name] = (float(x.mean()), float(x.var()))
        elif s.kind == "sequence" and s.dtype == "float64":  # gaps: log1p of real elements
            padded = pad_sequences(df[s.name], s)
            x = _transform_numpy(padded[padded != s.default], "count")
            stats[s.name] = (float(x.mean()), float(x.var())) if len(x) else (0.0, 1.0)
    return stats


def keras_inputs(specs: list[InputSpec]) -> dict[str, Any]:
    """One ``tf.keras.Input`` per spec, named and typed as the contract.

    Scalars have shape ``()`` per example, sequences ``(max_len,)``.
    """
    tf = tensorflow()
    return {s.name: tf.keras.Input(shape=(s.max_len,) if s.kind == "sequence" else (),
                                   dtype=tf_dtype(s.dtype), name=s.name) for s in specs}


def encode(inputs: dict[str, Any], specs: list[InputSpec], stats: Stats, *, id_dim: int,
           cat_dim: int, prefix: str) -> Any:
    """Functional-API graph from raw inputs to one dense float32 vector per example.

    ids/categorical → ``Hashing(num_bins=vocab)`` → ``Embedding``; count → log1p →
    ``Normalization``; numeric → ``Normalization``. Hashing (not a vocabulary lookup) lets
    unseen ids and the ``-1`` default land in a bucket instead of failing at serving time.
    id/category sequence → the same hashing + embedding (the target input's layers when the
    target is among ``specs``) → mean over non-pad positions (zeros for an empty history);
    float sequence → mean over non-pad positions of the standardised log1p (one column).

    Args:
        inputs: Keras inputs from :func:`keras_inputs`.
        specs: The same specs.
        stats: Train statistics from :func:`fit_stats`.
        id_dim: Embedding width for ``id`` inputs.
        cat_dim: Embedding width for ``categorical`` inputs.
        prefix: Layer-name prefix, so two models' layers never collide in one graph.

    Returns:
        A ``[B, sum(widths)]`` float32 Keras tensor.
    """
    tf = tensorflow()
    tables = {s.name: _table(s.name, s.vocab, id_dim if s.kind == "id" else cat_dim, prefix)
              for s in specs if s.kind in ("id", "categorical")}
    parts = []
    for s in specs:
        x = inputs[s.name]
        if s.kind in ("id", "categorical"):
            hashing, embedding = tables[s.name]
            parts.append(embedding(hashing(x)))
            continue
        if s.kind == "sequence":
            parts.append(_encode_sequence(s, x, tables, stats, id_dim, cat_dim, prefix))
            continue
        if s.kind not in ("count", "numeric"):
            raise ValueError(f"unknown feature kind {s.kind!r} for {s.name!r}")
        if s.kind == "count":
            fn = _log1p_column
        else:
            fn = _float_column
        col = tf.keras.layers.Lambda(fn, name=f"{prefix}_{s.name}_{s.kind}")(x)
        mean, var = stats[s.name]
        parts.append(tf.keras.layers.Normalization(
            axis=-1, mean=[mean], variance=[var], name=f"{prefix}_{s.name}_norm")(col))
    return tf.keras.layers.Concatenate(name=f"{prefix}_concat")(parts)


def _table(name: str, vocab: int, dim: int, prefix: str) -> tuple[Any, Any]:
    """``(Hashing, Embedding)`` layers of one id space."""
    tf = tensorflow()
    return (tf.keras.layers.Hashing(num_bins=vocab, name=f"{prefix}_{name}_hash"),
            tf.keras.layers.Embedding(vocab, dim, name=f"{prefix}_{name}_emb"))


def _encode_sequence(s: InputSpec, x: Any, tables: dict[str, tuple[Any, Any]], stats: Stats,
                     id_dim: int, cat_dim: int, prefix: str) -> Any:
    """One pooled ``[B, width]`` vector of a padded ``[B, max_len]`` sequence input."""
    tf = tensorflow()
    if s.dtype == "float64":
        mean, var = stats[s.name]
        return tf.keras.layers.Lambda(
            _masked_log1p_mean, name=f"{prefix}_{s.name}_pool",
            arguments={"pad": float(s.default), "mean": mean, "std": float(np.sqrt(var)) or 1.0})(x)
    if s.target not in tables:  # own id space (e.g. item history in the user tower)
        dim = id_dim if s.target in ID_VOCAB else cat_dim
        tables[s.target or s.name] = _table(s.name, s.vocab, dim, prefix)
    hashing, embedding = tables[s.target or s.name]
    return tf.keras.layers.Lambda(_masked_mean, name=f"{prefix}_{s.name}_pool",
                                  arguments={"pad": int(s.default)})([embedding(hashing(x)), x])


def _masked_mean(args: list[Any], pad: int) -> Any:
    """Mean of ``emb[B, L, D]`` over positions whose id is not ``pad`` (zeros if none)."""
    tf = tensorflow()
    emb, ids = args
    # The embedding's dtype, not float32: under mixed_float16 the embedding is float16.
    mask = tf.cast(tf.not_equal(ids, tf.cast(pad, ids.dtype)), emb.dtype)
    total = tf.reduce_sum(emb * mask[:, :, None], axis=1)
    return total / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)


def _masked_log1p_mean(x: Any, pad: float, mean: float, std: float) -> Any:
    """``[B, 1]`` mean over non-pad positions of ``(log1p(x) - mean) / std`` (0 if none)."""
    tf = tensorflow()
    mask = tf.cast(tf.not_equal(x, tf.cast(pad, x.dtype)), tf.float32)
    z = (tf.math.log1p(tf.maximum(tf.cast(x, tf.float32), 0.0)) - mean) / std
    return (tf.reduce_sum(z * mask, axis=1, keepdims=True)
            / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0))


def _float_column(x: Any) -> Any:
    tf = tensorflow()
    return tf.expand_dims(tf.cast(x, tf.float32), -1)


def _log1p_column(x: Any) -> Any:
    tf = tensorflow()
    # Clamp at 0: a negative count is a data bug upstream, but must not produce NaN at serving.
    return tf.expand_dims(tf.math.log1p(tf.maximum(tf.cast(x, tf.float32), 0.0)), -1)
