"""DIEN (Zhou et al., 2019): interests evolve, and only the candidate-related evolution matters.

Per history group:

1. *Interest extractor*: a GRU over the behaviour embeddings. An auxiliary loss makes each
   hidden state ``h_t`` predict the NEXT behaviour: ``(h_t, e_{t+1})`` is a positive pair,
   ``(h_t, e'_{t+1})`` a negative one, where ``e'`` is the history of ANOTHER row of the batch
   (in-batch shuffling: the batch is rolled by a random shift in ``[1, B)``, so no row is its
   own negative; shift 1 outside training, so evaluation losses are deterministic). Pairs with a
   pad on either side are masked out.
2. *Interest evolution*: an AUGRU whose update gate is scaled by the softmax attention of the
   candidate on each ``h_t`` (bilinear ``h_t W q``), so behaviours unrelated to the candidate
   barely move the final interest state.

The final AUGRU state joins the other fields in the MLP.
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import RankerConfig
from training.rankers.din import attention_activation
from training.rankers.inputs import tf_ops
from training.rankers.layers import logit_head, mlp
from training.rankers.sequence import augru_class, masked_softmax


def roll_shift(batch: Any, training: bool) -> Any:
    """Batch roll used to pick negatives: random in ``[1, B)`` when training, else 1."""
    tf = tf_ops()
    if not training:
        return tf.constant(1, tf.int32)
    return tf.random.uniform([], 1, tf.maximum(batch, 2), dtype=tf.int32)


@functools.cache
def model_class() -> type:
    """``DIEN``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class DIEN(ranker_base_class()):
        """GRU interest extractor (+ auxiliary loss) → AUGRU interest evolution → MLP."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Per history group: GRU, bilinear attention, AUGRU and auxiliary net."""
            super().__init__(specs, stats, config, tasks, name="dien")
            act, n = attention_activation(config), len(self.encoder.group_lens)
            # An AUGRU with all scores 1 is a GRU; Keras' GRU/RNN made tracing and export
            # several times slower (AutoGraph converts their whole implementation).
            self.extractors = [augru_class()(config.gru_units, return_sequences=True,
                                             name=f"extractor{i}") for i in range(n)]
            # Width of each group's keys: one embedding per history in the group.
            widths = [config.embedding_dim * len(m) for m in self.encoder.group_members]
            self.bilinear = [tf.keras.layers.Dense(w, use_bias=False, name=f"bilinear{i}")
                             for i, w in enumerate(widths)]
            self.evolution = [augru_class()(config.gru_units, name=f"augru{i}") for i in range(n)]
            self.aux_nets = [mlp(config.attention_units, config, activation=act, sequence=True,
                                 name=f"aux{i}") for i in range(n)]
            self.aux_heads = [logit_head(f"aux_logit{i}") for i in range(n)]
            self.deep = mlp(config.hidden_units, config, activation=act, name="deep")
            self.head = logit_head()

        def auxiliary_loss(self, i: int, states: Any, keys: Any, mask: Any,
                           training: bool) -> Any:
            """Mean next-behaviour BCE of group ``i`` over valid (state, next, negative) pairs."""
            shift = roll_shift(tf.shape(keys)[0], training)
            neg_keys, neg_mask = tf.roll(keys, shift, axis=0), tf.roll(mask, shift, axis=0)
            # A batch of one has no other row to borrow a negative from.
            has_other = tf.cast(tf.shape(keys)[0] > 1, tf.float32)
            valid = mask[:, :-1] * mask[:, 1:] * neg_mask[:, 1:] * has_other
            h = states[:, :-1]

            def logit(nxt: Any) -> Any:
                hidden = self.aux_nets[i](tf.concat([h, nxt], axis=-1), training=training)
                return squeeze_logit(self.aux_heads[i](hidden))

            per_pair = tf.nn.softplus(-logit(keys[:, 1:])) + tf.nn.softplus(logit(neg_keys[:, 1:]))
            return tf.reduce_sum(per_pair * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit, and the mean auxiliary loss over history groups (None if none)."""
            parts, aux = [enc.flat(pool_targeted=False)], []
            for i, g in enumerate(enc.groups):
                x = g.keys if g.side is None else tf.concat([g.keys, g.side], axis=-1)
                states = self.extractors[i](x, tf.ones_like(g.mask), mask=g.mask)
                scores = tf.reduce_sum(self.bilinear[i](states) * g.query[:, None, :], axis=-1)
                parts.append(self.evolution[i](states, masked_softmax(scores, g.mask),
                                               mask=g.mask))
                aux.append(self.auxiliary_loss(i, states, g.keys, g.mask, training))
            x = tf.concat(parts, axis=1)
            logit = squeeze_logit(self.head(self.deep(x, training=training)))
            return {self.tasks[0]: logit}, (tf.add_n(aux) / len(aux) if aux else None)

    return DIEN


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build a DIEN ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
