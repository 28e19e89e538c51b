"""Deep residual ranker (Deep Crossing, Shan et al., 2016): an MLP made of residual blocks.

``x <- relu(x + W2 relu(W1 x))`` lets a deeper tower train as easily as a shallow one (the
skip path carries the gradient), so depth can be added for implicit interactions without the
degradation plain deep MLPs show. The stem projects the concatenated inputs to the block width
``hidden_units[0]``.
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import RankerConfig
from training.rankers.layers import logit_head, regularizer


@functools.cache
def model_class() -> type:
    """``DeepResNet``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class DeepResNet(ranker_base_class()):
        """Stem → residual blocks → logit."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Create the stem and ``residual_blocks`` two-layer blocks."""
            super().__init__(specs, stats, config, tasks, name="deep_resnet")
            width, reg = config.hidden_units[0], regularizer(config.l2)
            self.stem = tf.keras.layers.Dense(width, activation="relu", kernel_regularizer=reg)
            self.inner = [tf.keras.layers.Dense(width, activation="relu", kernel_regularizer=reg)
                          for _ in range(config.residual_blocks)]
            self.outer = [tf.keras.layers.Dense(width, kernel_regularizer=reg)
                          for _ in range(config.residual_blocks)]
            self.drop = tf.keras.layers.Dropout(config.dropout)
            self.head = logit_head()

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit."""
            x = self.stem(enc.flat())
            for inner, outer in zip(self.inner, self.outer, strict=True):
                x = tf.nn.relu(x + outer(inner(x)))
                x = self.drop(x, training=training)
            return {self.tasks[0]: squeeze_logit(self.head(x))}, None

    return DeepResNet


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build a deep residual ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
