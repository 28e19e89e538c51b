"""NFM (He & Chua, 2017): a deep network on top of FM's bi-interaction pooling.

FM sums the pairwise interactions into one number; NFM keeps them as a vector
``sum_{i<j} v_i * v_j`` (``[B, d]``) and lets an MLP model higher-order, non-linear combinations
of those second-order interactions. Logit = first-order linear term + MLP(bi-interaction).
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import RankerConfig
from training.rankers.deepfm import all_fields
from training.rankers.layers import bi_interaction, dense_fields_class, linear, logit_head, mlp


@functools.cache
def model_class() -> type:
    """``NFM``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class NFM(ranker_base_class()):
        """Linear + MLP(bi-interaction pooling)."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Create the first-order term, dense-field vectors and the MLP."""
            super().__init__(specs, stats, config, tasks, name="nfm")
            self.first_order = linear(self.encoder, config, name="first_order")
            self.dense_fields = dense_fields_class()(config.embedding_dim, name="dense_fields")
            # The paper applies dropout right on the pooled vector too.
            self.pool_dropout = tf.keras.layers.Dropout(config.dropout)
            self.deep = mlp(config.hidden_units, config, name="deep")
            self.head = logit_head()

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit: first order + MLP over the bi-interaction vector."""
            pooled = self.pool_dropout(bi_interaction(all_fields(self, enc)), training=training)
            deep = squeeze_logit(self.head(self.deep(pooled, training=training)))
            return {self.tasks[0]: self.first_order(enc.buckets, enc.dense) + deep}, None

    return NFM


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build an NFM ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
