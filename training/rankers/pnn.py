"""PNN (Qu et al., 2016): an explicit product layer between the embeddings and the MLP.

The first hidden layer sees the fields themselves (linear signal ``z``) and their products
(``p``): IPNN uses all pairwise inner products ``<v_i, v_j>`` (``F (F - 1) / 2`` values); OPNN
the outer product of the summed fields ``f f^T`` (the paper's sum-pooling, ``d^2`` values, cheap
for many fields). Products let the MLP see "these two fields agree" directly, which a ReLU
layer on concatenated embeddings approximates poorly.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import RankerConfig
from training.rankers.deepfm import all_fields
from training.rankers.inputs import tf_ops
from training.rankers.layers import dense_fields_class, logit_head, mlp


def inner_products(fields: Any) -> Any:
    """All ``<v_i, v_j>``, ``i < j``, of ``[B, F, d]`` fields → ``[B, F (F - 1) / 2]``."""
    tf = tf_ops()
    rows, cols = np.triu_indices(int(fields.shape[1]), k=1)
    return tf.reduce_sum(tf.gather(fields, rows, axis=1) * tf.gather(fields, cols, axis=1),
                         axis=-1)


def outer_product(fields: Any) -> Any:
    """Flattened ``f f^T`` of the summed fields ``f = sum_i v_i`` → ``[B, d * d]``."""
    tf = tf_ops()
    f = tf.reduce_sum(fields, axis=1)
    d = int(fields.shape[2])
    return tf.reshape(f[:, :, None] * f[:, None, :], [-1, d * d])


@functools.cache
def model_class() -> type:
    """``PNN``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class PNN(ranker_base_class()):
        """MLP over [fields, products]."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Create the dense-field vectors and the MLP; ``config.product`` picks IPNN/OPNN."""
            super().__init__(specs, stats, config, tasks, name="pnn")
            self.product = inner_products if config.product == "inner" else outer_product
            self.dense_fields = dense_fields_class()(config.embedding_dim, name="dense_fields")
            self.deep = mlp(config.hidden_units, config, name="deep")
            self.head = logit_head()

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit from the MLP over linear signal and product signal."""
            fields = all_fields(self, enc)
            z = tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]])
            x = tf.concat([z, self.product(fields)], axis=1)
            return {self.tasks[0]: squeeze_logit(self.head(self.deep(x, training=training)))}, None

    return PNN


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build a PNN ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
