"""Multi-interest user tower: K interest vectors from the item-id behaviour sequence.

One vector per user has to sit between all of a user's interests (sci-fi *and* cooking) and
retrieves items near neither. Following ComiRec-SA (Cen et al. 2020, the self-attentive variant
of MIND-style multi-interest extraction), K attention heads each read the whole history and
pool it into one interest::

    A = softmax_over_positions( tanh((H + P) W1) W2 )    # [B, L, K], pads masked out
    interest_k = sum_t A[t, k] H[t]                       # [B, K, d]

``H`` are the history items' embeddings, taken from the item tower's own ``item_id`` table (so a
history item and a candidate item are the same vector), ``P`` a learned position embedding. Each
interest is concatenated with the user's other inputs (ids, counts, other histories pooled),
passed through the tower's dense layers and L2-normalised: the tower outputs ``[B, K, D]``.

The score of an item is the max over the K interests: ``tfrs.tasks.Retrieval`` does exactly that
("maxsim") for 3-D query embeddings, in training and in its metrics. Serving sends the ``K``
vectors to the FAISS index and keeps each item's best score (:func:`training.index.search_multi`).

The tower reads any ``sequence`` input whose ``target`` is the item tower's id input; nothing is
named here.
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.config import ModelConfig
from training.preprocessing import InputSpec, Stats
from training.two_tower_inputs import (
    encode_tower,
    history_embedding,
    history_specs,
    tower_keras_inputs,
)


@functools.cache
def multi_interest_layer_class() -> type:
    """The attention layer class, defined on first use so importing this module stays TF-free."""
    tf = tensorflow()

    class MultiInterest(tf.keras.layers.Layer):
        """Self-attentive K-head pooling of a masked sequence (module docstring)."""

        def __init__(self, num_interests: int, units: int, **kwargs: Any) -> None:
            """``num_interests``: K heads; ``units``: hidden width of the attention MLP."""
            super().__init__(**kwargs)
            self.num_interests = num_interests
            self.units = units

        def build(self, input_shape: Any) -> None:
            """Create ``W1 [d, units]``, ``W2 [units, K]`` and positions ``P [L, d]``."""
            _, length, dim = input_shape[0]
            self.w1 = self.add_weight(name="w1", shape=(dim, self.units),
                                      initializer="glorot_uniform")
            self.w2 = self.add_weight(name="w2", shape=(self.units, self.num_interests),
                                      initializer="glorot_uniform")
            self.positions = self.add_weight(name="positions", shape=(length, dim),
                                             initializer="zeros")
            super().build(input_shape)

        def attention(self, history: Any, mask: Any) -> Any:
            """``[B, K, L]`` weights; each head sums to 1 over real positions, all 0 if none."""
            hidden = tf.tanh(tf.einsum("bld,du->blu", history + self.positions, self.w1))
            scores = tf.einsum("blu,uk->bkl", hidden, self.w2)
            real = mask[:, None, :] > 0
            probs = tf.nn.softmax(tf.where(real, scores, tf.fill(tf.shape(scores), -1e9)), -1)
            return probs * tf.cast(real, probs.dtype)

        def call(self, inputs: Any) -> Any:
            """``[history [B, L, d], mask [B, L]]`` → interests ``[B, K, d]``."""
            history, mask = inputs
            return tf.einsum("bkl,bld->bkd", self.attention(history, mask), history)

        def get_config(self) -> dict[str, Any]:
            """Constructor arguments, for Keras cloning."""
            return {**super().get_config(), "num_interests": self.num_interests,
                    "units": self.units}

    return MultiInterest


def build_multi_interest_tower(specs: list[InputSpec], stats: Stats, config: ModelConfig,
                               shared: dict[str, Any], item_id: str, *, num_interests: int,
                               attention_units: int, name: str = "user_tower") -> Any:
    """A functional Keras user tower: raw inputs → unit-norm ``[B, K, embedding_dim]``.

    Args:
        specs: The user tower's inputs (must include an id history targeting ``item_id``).
        stats: Train statistics (:func:`training.preprocessing.fit_stats`).
        config: Widths and hidden layers.
        shared: The item tower's embedding tables by input name; ``shared[item_id]`` embeds
            the history.
        item_id: Name of the item tower's id input.
        num_interests: K.
        attention_units: Hidden width of the attention.
        name: Model and layer-name prefix.

    Raises:
        ValueError: if no history targets ``item_id`` or the item tower has no table for it.
    """
    tf = tensorflow()
    seqs = history_specs(specs, item_id)
    if not seqs:
        raise ValueError(f"the multi-interest user tower needs a sequence input with target "
                         f"{item_id!r} among {[s.name for s in specs]}")
    if item_id not in shared:
        raise ValueError(f"the item tower has no embedding table for {item_id!r} to share")
    inputs = tower_keras_inputs(specs)
    rest = [s for s in specs if s not in seqs]
    profile = encode_tower(inputs, rest, stats, config, name, shared) if rest else None
    embs, masks = zip(*(history_embedding(inputs[s.name], s, shared[item_id]) for s in seqs),
                      strict=True)
    concat = tf.keras.layers.Concatenate
    history = embs[0] if len(embs) == 1 else concat(axis=1, name=f"{name}_hist")(list(embs))
    mask = masks[0] if len(masks) == 1 else concat(axis=1, name=f"{name}_mask")(list(masks))
    x = multi_interest_layer_class()(num_interests, attention_units,
                                     name=f"{name}_interests")([history, mask])
    if profile is not None:
        tiled = tf.keras.layers.Lambda(
            lambda t: tf.repeat(t[0][:, None, :], tf.shape(t[1])[1], axis=1),
            name=f"{name}_tile")([profile, x])
        x = concat(axis=-1, name=f"{name}_with_profile")([x, tiled])
    for i, units in enumerate(config.tower_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"{name}_dense{i}")(x)
    x = tf.keras.layers.Dense(config.embedding_dim, name=f"{name}_proj")(x)
    out = tf.keras.layers.UnitNormalization(axis=-1, name=f"{name}_l2")(x)
    return tf.keras.Model(inputs=inputs, outputs=out, name=name)
