"""ESMM (Ma et al., 2018): CVR learned over the entire impression space.

A post-click CVR model trained on clicked rows only is biased (serving scores every impression)
and starved of data. ESMM models ``pCTCVR = pCTR x pCVR`` and supervises only what is observed on
EVERY impression: the click (``ctr`` label) and click-and-purchase (``ctcvr`` = ``ctr`` label x
``cvr`` label). pCVR is never fitted directly, yet comes out as P(purchase | click). Both towers
share the embeddings (one encoder), so the sparse CVR task borrows the CTR task's many rows.

Outputs: ``ctr``, ``cvr`` and ``ctcvr`` probabilities. The exported ``score`` is ``ctr``, like
every ranker's (see :mod:`training.rankers.export`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import CLICK_TASK, CONVERSION_TASK, CTCVR, RankerConfig
from training.rankers.layers import logit_head, mlp


@functools.cache
def model_class() -> type:
    """``ESMM``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class ESMM(ranker_base_class()):
        """CTR tower x CVR tower over shared embeddings."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Create both towers over the shared encoder."""
            super().__init__(specs, stats, config, tasks, name="esmm")
            self.towers = {t: mlp(config.hidden_units, config, name=f"{t}_tower") for t in tasks}
            self.logit_heads = {t: logit_head(f"{t}_logit") for t in tasks}

        def build_ranking_tasks(self, tasks: tuple[str, ...]) -> dict[str, Any]:
            """CTR on logits and CTCVR on probabilities; pCVR has no direct loss (or metric)."""
            return {CLICK_TASK: self._ranking_task(CLICK_TASK, from_logits=True),
                    CTCVR: self._ranking_task(CTCVR, from_logits=False)}

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """CTR and CVR logits from their towers."""
            x = enc.flat()
            return {t: squeeze_logit(self.logit_heads[t](self.towers[t](x, training=training)))
                    for t in self.tasks}, None

        def probabilities(self, logits: dict[str, Any]) -> dict[str, Any]:
            """``ctr``, ``cvr`` and their product ``ctcvr``."""
            probs = {t: tf.sigmoid(logits[t]) for t in self.tasks}
            probs[CTCVR] = probs[CLICK_TASK] * probs[CONVERSION_TASK]
            return probs

        def supervised_loss(self, logits: dict[str, Any], labels: Mapping[str, Any],
                            training: bool) -> Any:
            """``w_ctr BCE(click, pCTR) + w_cvr BCE(click x purchase, pCTR x pCVR)``."""
            click = self.label(labels, CLICK_TASK)
            ctcvr_label = click * self.label(labels, CONVERSION_TASK)
            probs = self.probabilities(logits)
            weight = self.ranker_config.task_weight
            ctr_loss = self.task_loss(CLICK_TASK, click, logits[CLICK_TASK], None, training)
            ctcvr_loss = self.task_loss(CTCVR, ctcvr_label, probs[CTCVR], None, training)
            return weight(CLICK_TASK) * ctr_loss + weight(CONVERSION_TASK) * ctcvr_loss

    return ESMM


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build an ESMM ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
