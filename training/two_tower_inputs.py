"""Two-tower tower inputs, including a behaviour history pooled over the item tower's table.

:func:`training.preprocessing.encode` handles scalar inputs. The two-tower model additionally
understands one kind of ``sequence`` input: an id history whose ``target`` is the item tower's
id input (e.g. the user's last items). Such a history is embedded with the item tower's *own*
``item_id`` table (as YouTube-DNN does), so "item 7 in the history" and "candidate item 7" are
one vector and every history row trains the item vectors too. Each slot also gets a learned
position embedding: histories are newest last and left-padded, so slot ``L - 1 - t`` holds the
``t``-th most recent item and the position vector is a recency embedding. The masked mean of
``item + position`` over the real slots is the pooled history (zero for a user without one).

The history path switches on only when the specs contain such an input; with the contract's
scalar features only, a tower is exactly :func:`encode` followed by dense layers. Nothing here
names a feature.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from shoprec.sequences import pad_sequences
from shoprec.tf_runtime import tensorflow
from training.config import ModelConfig
from training.preprocessing import InputSpec, Stats, encode, keras_inputs, tf_dtype


def pad_value(spec: InputSpec) -> int | float:
    """The pad element of a sequence: the spec's ``default`` (the contract's, -1 for ids)."""
    return spec.default


def history_specs(specs: list[InputSpec], item_id: str) -> list[InputSpec]:
    """The id histories among ``specs`` whose target is ``item_id`` (the item tower's id)."""
    return [s for s in specs if s.kind == "sequence" and s.dtype == "int64"
            and s.target == item_id]


def tower_keras_inputs(specs: list[InputSpec]) -> dict[str, Any]:
    """Keras inputs in spec order: scalars as :func:`keras_inputs`, sequences ``[max_len]``.

    Raises:
        ValueError: for a sequence without a positive ``max_len``.
    """
    tf = tensorflow()
    scalars = keras_inputs([s for s in specs if s.kind != "sequence"])
    out = {}
    for s in specs:
        if s.kind != "sequence":
            out[s.name] = scalars[s.name]
            continue
        if s.max_len < 1:
            raise ValueError(f"sequence input {s.name!r} needs max_len >= 1, got {s.max_len}")
        out[s.name] = tf.keras.Input(shape=(s.max_len,), dtype=tf_dtype(s.dtype), name=s.name)
    return out


def pad_column(values: pd.Series, spec: InputSpec) -> np.ndarray:
    """``[N, max_len]`` array of a sequence column: newest last, left-padded, truncated.

    The one padding rule of training and serving (:func:`shoprec.sequences.pad_sequences`):
    stored strings, lists, and ``None``/NaN (all padding: a user without history).
    """
    return pad_sequences(values, spec)


def tower_feature_dict(df: pd.DataFrame, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """Model inputs of ``df`` with contract dtypes; sequence columns padded (:func:`pad_column`).

    Raises:
        KeyError: naming the inputs ``df`` lacks.
    """
    from training.preprocessing import to_feature_dict

    missing = [s.name for s in specs if s.name not in df.columns]
    if missing:
        raise KeyError(f"DataFrame lacks model inputs {missing}")
    scalars = to_feature_dict(df, [s for s in specs if s.kind != "sequence"])
    return {s.name: scalars[s.name] if s.kind != "sequence" else pad_column(df[s.name], s)
            for s in specs}


def embedding_tables(tower: Any, specs: list[InputSpec], prefix: str) -> dict[str, Any]:
    """The ``Embedding`` layer of each id/categorical input of a built tower, by input name.

    Relies on :func:`training.preprocessing.encode` naming them ``{prefix}_{name}_emb``.
    """
    names = {f"{prefix}_{s.name}_emb": s.name for s in specs if s.kind in ("id", "categorical")}
    return {names[layer.name]: layer for layer in tower.layers if layer.name in names}


def history_embedding(x: Any, spec: InputSpec, table: Any) -> tuple[Any, Any]:
    """``(embeddings [B, L, d] (0 at pads), mask [B, L] float32)`` of an id history.

    A pad's hashed bucket is looked up but multiplied by 0, so neither its vector nor its
    gradient reaches the model.
    """
    tf = tensorflow()
    lam = tf.keras.layers.Lambda
    pad = int(pad_value(spec))
    mask = lam(lambda v: tf.cast(tf.not_equal(v, tf.cast(pad, v.dtype)), tf.float32),
               name=f"{spec.name}_mask")(x)
    buckets = tf.keras.layers.Hashing(num_bins=table.input_dim, name=f"{spec.name}_hash")(x)
    emb = lam(lambda t: t[0] * t[1][..., None], name=f"{spec.name}_masked")([table(buckets), mask])
    return emb, mask


@functools.cache
def position_pool_class() -> type:
    """The pooling layer class, defined on first use so importing this module stays TF-free."""
    tf = tensorflow()

    class PositionPool(tf.keras.layers.Layer):
        """Masked mean of ``history + position`` over the real slots (module docstring)."""

        def build(self, input_shape: Any) -> None:
            """Create the ``[L, d]`` position (= recency rank) table, zero-initialised.

            Zero start = a plain mean; training moves recent slots apart from old ones.
            """
            _, length, dim = input_shape[0]
            self.positions = self.add_weight(name="positions", shape=(length, dim),
                                             initializer="zeros")
            super().build(input_shape)

        def call(self, inputs: Any) -> Any:
            """``[history [B, L, d], mask [B, L]]`` → ``[B, d]`` (0 for an empty history)."""
            history, mask = inputs
            total = tf.reduce_sum((history + self.positions) * mask[..., None], axis=1)
            return total / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)

    return PositionPool


def encode_tower(inputs: dict[str, Any], specs: list[InputSpec], stats: Stats,
                 config: ModelConfig, prefix: str, shared: dict[str, Any] | None = None) -> Any:
    """``[B, F]`` float32: :func:`encode` of the inputs, histories over ``shared`` tables pooled.

    Args:
        inputs: Keras inputs from :func:`tower_keras_inputs`.
        specs: The tower's inputs.
        stats: From :func:`training.preprocessing.fit_stats`.
        config: Embedding widths.
        prefix: Layer-name prefix (the tower name).
        shared: Embedding tables of the other tower by input name (:func:`embedding_tables`);
            an id history whose ``target`` is among them is pooled over that table.
    """
    tf = tensorflow()
    shared = shared or {}
    pooled = [s for s in specs if s.kind == "sequence" and s.dtype == "int64"
              and s.target in shared]
    own = [s for s in specs if s not in pooled]
    parts = [encode({s.name: inputs[s.name] for s in own}, own, stats,
                    id_dim=config.id_embedding_dim, cat_dim=config.cat_embedding_dim,
                    prefix=prefix)] if own else []
    for s in pooled:
        emb, mask = history_embedding(inputs[s.name], s, shared[s.target])
        parts.append(position_pool_class()(name=f"{prefix}_{s.name}_pool")([emb, mask]))
    if not parts:
        raise ValueError(f"tower {prefix!r} has no inputs")
    if len(parts) == 1:
        return parts[0]
    return tf.keras.layers.Concatenate(name=f"{prefix}_all")(parts)
