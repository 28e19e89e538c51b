"""DeepFM (Guo et al., 2017): FM and a deep MLP sharing one set of field embeddings.

Logit = first-order linear term + FM second-order term ``sum_{i<j} <v_i, v_j>`` over every field
+ MLP over the concatenated fields. Fields are the id/category embeddings, the mean-pooled
histories and each dense value ``x_j`` as ``x_j * v_j`` (so prices interact with categories too).
Unlike Wide & Deep no cross has to be hand-picked: the FM learns all pairwise ones.
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import RankerConfig
from training.rankers.inputs import tf_ops
from training.rankers.layers import dense_fields_class, fm_second_order, linear, logit_head, mlp


def all_fields(model: Any, enc: Any) -> Any:
    """``[B, F + n, d]``: embedded fields then dense-as-field vectors (DeepFM, PNN, NFM)."""
    tf = tf_ops()
    fields = enc.fields()
    if enc.dense.shape[-1]:
        fields = tf.concat([fields, model.dense_fields(enc.dense)], axis=1)
    return fields


@functools.cache
def model_class() -> type:
    """``DeepFM``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class DeepFM(ranker_base_class()):
        """Linear + FM + deep logits over shared embeddings."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Create the first-order term, dense-field vectors and the deep tower."""
            super().__init__(specs, stats, config, tasks, name="deepfm")
            self.first_order = linear(self.encoder, config, name="first_order")
            self.dense_fields = dense_fields_class()(config.embedding_dim, name="dense_fields")
            self.deep = mlp(config.hidden_units, config, name="deep")
            self.head = logit_head()

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit: first order + second order + deep."""
            fields = all_fields(self, enc)
            flat = tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]])
            deep = squeeze_logit(self.head(self.deep(flat, training=training)))
            logit = self.first_order(enc.buckets, enc.dense) + fm_second_order(fields) + deep
            return {self.tasks[0]: logit}, None

    return DeepFM


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build a DeepFM ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
