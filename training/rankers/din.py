"""DIN (Zhou et al., 2018): the candidate item decides which past behaviours matter.

For each group of aligned histories (item ids, their categories, time gaps) the activation unit
scores every past behaviour against the candidate (``[q, k, q - k, q * k]`` → MLP → weight) and
the history is summed with those weights, pads weighing exactly 0. A user who bought shoes and a
phone gets a "phone-ish" interest vector when the candidate is a phone case. The MLP on top uses
PReLU, or Dice when ``config.dice``.
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import RankerConfig
from training.rankers.layers import logit_head, mlp
from training.rankers.sequence import attention_side, din_attention


def attention_activation(config: RankerConfig) -> str:
    """``dice`` or ``prelu``: the activation of attention units and MLPs of DIN-family models."""
    return "dice" if config.dice else "prelu"


@functools.cache
def model_class() -> type:
    """``DIN``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class DIN(ranker_base_class()):
        """Scalar fields + attention-pooled histories → MLP → logit."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """One activation unit per history group."""
            super().__init__(specs, stats, config, tasks, name="din")
            act = attention_activation(config)
            self.attention = [din_attention(config, length, f"attention{i}")
                              for i, length in enumerate(self.encoder.group_lens)]
            self.deep = mlp(config.hidden_units, config, activation=act, name="deep")
            self.head = logit_head()

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit."""
            parts = [enc.flat(pool_targeted=False)]
            for group, attention in zip(enc.groups, self.attention, strict=True):
                side = attention_side(group, self.ranker_config.attention_match)
                pooled, _ = attention(group.query, group.keys, group.mask, side,
                                      training=training)
                parts.append(pooled)
            x = tf.concat(parts, axis=1)
            return {self.tasks[0]: squeeze_logit(self.head(self.deep(x, training=training)))}, None

    return DIN


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build a DIN ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
