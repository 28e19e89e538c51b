"""DMR (Lyu et al., 2020): Deep Match to Rank, i.e. matching signals inside the ranker.

Two relevance signals between the user and the candidate, per history group:

* *Item-to-item*: DIN-style attention of the candidate on each behaviour; its pooled vector and
  the sum of its weights (how much of the history resembles the candidate) feed the MLP.
* *User-to-item*: a user vector ``u = W sum_t a_t e_t`` with attention from POSITION embeddings
  (``a_t ~ z^T tanh(W_p p_t + W_e e_t + b)``: recency decides, not the candidate), and relevance
  ``r = <u, v'>`` where ``v'`` is the candidate's OUTPUT embedding (a table of its own, as in
  matching models). Without help ``r`` would be learnt only through the click loss, so an
  auxiliary loss trains it as a matcher: ``u`` built from all but the newest behaviour must pick
  the newest behaviour's output embedding out of the batch's (in-batch softmax; rows with fewer
  than two behaviours are masked out).
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import RankerConfig
from training.rankers.din import attention_activation
from training.rankers.layers import logit_head, mlp
from training.rankers.sequence import attention_side, din_attention, masked_softmax


@functools.cache
def user_to_item_class() -> type:
    """``UserToItem``: DMR's user-to-item network for one history group."""
    tf = tensorflow()

    class UserToItem(tf.keras.layers.Layer):
        """Position-attention user vector and output embeddings of the history's targets."""

        def __init__(self, length: int, width: int, vocabs: list[int], dim: int,
                     units: int, **kwargs: Any) -> None:
            """``length``/``width``: the group's ``L`` and key width; ``vocabs``: per target."""
            super().__init__(**kwargs)
            self.positions = tf.keras.layers.Embedding(length, width)
            self.length = length
            self.pos_proj = tf.keras.layers.Dense(units, use_bias=False)
            self.key_proj = tf.keras.layers.Dense(units)
            self.z = tf.keras.layers.Dense(1, use_bias=False)
            self.user_proj = tf.keras.layers.Dense(width)
            self.outputs_tables = [tf.keras.layers.Embedding(v, dim) for v in vocabs]

        def user(self, keys: Any, mask: Any) -> Any:
            """``[B, width]`` user vector from the unmasked behaviours."""
            p = self.positions(tf.range(self.length))[None]
            scores = tf.squeeze(self.z(tf.tanh(self.pos_proj(p) + self.key_proj(keys))), -1)
            pooled = tf.reduce_sum(masked_softmax(scores, mask)[..., None] * keys, axis=1)
            return self.user_proj(pooled)

        def output_embedding(self, buckets: tuple[Any, ...]) -> Any:
            """``[..., width]`` output embedding of hashed target buckets (one per target)."""
            return tf.concat([t(b) for t, b in zip(self.outputs_tables, buckets, strict=True)],
                             axis=-1)

        def auxiliary_loss(self, keys: Any, mask: Any, buckets: tuple[Any, ...]) -> Any:
            """In-batch softmax CE of ``u(history without newest)`` against the newest item."""
            older = mask * tf.concat([tf.ones_like(mask[:, :-1]), tf.zeros_like(mask[:, -1:])],
                                     axis=1)
            valid = mask[:, -1] * tf.cast(tf.reduce_sum(older, axis=1) > 0, tf.float32)
            newest = self.output_embedding(tuple(b[:, -1] for b in buckets))
            logits = tf.matmul(self.user(keys, older), newest, transpose_b=True)
            logits += (1.0 - valid[None, :]) * -1e9
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.range(tf.shape(logits)[0]), logits=logits)
            return tf.reduce_sum(ce * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)

    return UserToItem


@functools.cache
def model_class() -> type:
    """``DMR``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class DMR(ranker_base_class()):
        """[fields, i2i pooled, i2i relevance, user vector, u2i relevance] → MLP → logit."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Per history group: an item-to-item attention and a user-to-item network."""
            super().__init__(specs, stats, config, tasks, name="dmr")
            act, enc = attention_activation(config), self.encoder
            vocab = {s.name: s.vocab for s in enc.cat_specs}
            self.i2i = [din_attention(config, length, f"i2i{i}")
                        for i, length in enumerate(enc.group_lens)]
            self.u2i = [user_to_item_class()(length, config.embedding_dim * len(members),
                                             [vocab[s.target] for s in members],
                                             config.embedding_dim, config.attention_units[0],
                                             name=f"u2i{i}")
                        for i, (length, members) in enumerate(zip(enc.group_lens,
                                                                  enc.group_members,
                                                                  strict=True))]
            self.deep = mlp(config.hidden_units, config, activation=act, name="deep")
            self.head = logit_head()

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit, and the mean user-to-item auxiliary loss (None without histories)."""
            parts, aux = [enc.flat(pool_targeted=False)], []
            for g, i2i, u2i in zip(enc.groups, self.i2i, self.u2i, strict=True):
                side = attention_side(g, self.ranker_config.attention_match)
                pooled, weights = i2i(g.query, g.keys, g.mask, side, training=training)
                user = u2i.user(g.keys, g.mask)
                relevance = tf.reduce_sum(user * u2i.output_embedding(g.target_buckets), axis=-1)
                parts += [pooled, tf.reduce_sum(weights, axis=1, keepdims=True), user,
                          relevance[:, None]]
                aux.append(u2i.auxiliary_loss(g.keys, g.mask, g.buckets))
            x = tf.concat(parts, axis=1)
            logit = squeeze_logit(self.head(self.deep(x, training=training)))
            return {self.tasks[0]: logit}, (tf.add_n(aux) / len(aux) if aux else None)

    return DMR


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build a DMR ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
