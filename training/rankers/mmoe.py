"""MMoE (Ma et al., 2018): multi-gate mixture of experts for CTR + CVR (or any tasks).

Shared experts (MLPs) read the same input; each task has its own softmax gate over the experts
and its own tower, so tasks share what helps both and keep apart what conflicts (a plain shared
bottom forces one representation on both).

CVR here is P(purchase | click), trained on CLICKED rows only (its loss is masked by the click
label, normalised by the clicked count). Why: ``cvr`` then means the same thing as ESMM's
``cvr`` (ESMM is the sample-selection-bias fix of exactly this estimator), the product
``ctr * cvr`` is a valid P(purchase | impression), and on a whole-space 0/1 purchase label the
head would just relearn pCTCVR, swamping the CVR signal with "no click" rows. The cost is the
known selection bias: unclicked rows never train the CVR tower (compare with ``esmm``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import CLICK_TASK, CONVERSION_TASK, RankerConfig
from training.rankers.layers import logit_head, mlp


@functools.cache
def model_class() -> type:
    """``MMoE``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class MMoE(ranker_base_class()):
        """Experts + per-task gates + per-task towers."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Create ``n_experts`` experts and a gate, tower and head per task."""
            super().__init__(specs, stats, config, tasks, name="mmoe")
            self.experts = [mlp(config.hidden_units, config, name=f"expert{i}")
                            for i in range(config.n_experts)]
            self.gates = {t: tf.keras.layers.Dense(config.n_experts, activation="softmax",
                                                   name=f"{t}_gate") for t in tasks}
            self.towers = {t: mlp(config.tower_units, config, name=f"{t}_tower") for t in tasks}
            self.logit_heads = {t: logit_head(f"{t}_logit") for t in tasks}
            self.post_click = CONVERSION_TASK in tasks and CLICK_TASK in tasks

        def gate_weights(self, features: Mapping[str, Any]) -> dict[str, Any]:
            """``{task: [B, n_experts]}`` gate distributions (each row sums to 1)."""
            x = self.encoder.encode(features).flat()
            return {t: gate(x) for t, gate in self.gates.items()}

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit per task from its gated mixture of the experts."""
            x = enc.flat()
            experts = tf.stack([e(x, training=training) for e in self.experts], axis=1)
            logits = {}
            for t in self.tasks:
                mixed = tf.reduce_sum(self.gates[t](x)[:, :, None] * experts, axis=1)
                hidden = self.towers[t](mixed, training=training)
                logits[t] = squeeze_logit(self.logit_heads[t](hidden))
            return logits, None

        def sample_weight(self, task: str, labels: Mapping[str, Any]) -> Any:
            """CVR rows weigh ``clicked * B / n_clicked``: the mean over clicked rows only."""
            if not (self.post_click and task == CONVERSION_TASK):
                return None
            clicked = self.label(labels, CLICK_TASK)
            n = tf.cast(tf.size(clicked), tf.float32)
            return clicked * n / tf.maximum(tf.reduce_sum(clicked), 1.0)

    return MMoE


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build an MMoE ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
