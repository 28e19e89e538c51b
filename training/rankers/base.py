"""The ``tfrs.Model`` every ranker subclasses: tasks, losses, metrics, probabilities.

A subclass only says how an :class:`~training.rankers.inputs.Encoded` batch becomes one logit
per task (``heads``), plus an optional auxiliary loss. This class turns that into:

* ``call(features, training=False) -> {task: probability [B]}`` (what is exported);
* ``compute_loss((features, labels), training)`` = weighted sum over tasks of binary
  cross-entropy on logits (``tfrs.tasks.Ranking``, AUC metrics outside training)
  + ``aux_loss_weight`` x auxiliary loss + ``l2`` x the batch's embedding-row penalty.

Dense-kernel L2 lives in ``model.losses`` (Keras regularizers), which ``tfrs.Model.train_step``
adds to this loss, as TFRS intends.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from shoprec.tf_runtime import tensorflow, tfrs
from training.preprocessing import InputSpec, Stats
from training.rankers.config import RankerConfig
from training.rankers.inputs import Encoded, encoder_class, tf_ops


def split_inputs(inputs: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """``(features, labels)`` from a training element; a clear error for anything else."""
    if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2
            and isinstance(inputs[1], Mapping)):
        raise TypeError("compute_loss expects (features, labels) with labels a dict "
                        f"task -> [B] 0/1 tensor; got {type(inputs).__name__}")
    return inputs[0], inputs[1]


@functools.cache
def ranker_base_class() -> type:
    """``RankerModel``, defined on first use so importing this module stays TF-free."""
    tf = tensorflow()
    tfrs_mod = tfrs()

    class RankerModel(tfrs_mod.models.Model):
        """Base of all rankers; see the module docstring for the contract."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...], name: str) -> None:
            """Create the shared encoder and one ``tfrs.tasks.Ranking`` per task.

            Args:
                specs: Raw model inputs (the SavedModel signature), in order.
                stats: Train statistics of count/numeric inputs and float histories.
                config: Hyper-parameters.
                tasks: Task names; each needs a label of the same name in training.
                name: Model name (also the prefix of its variables).
            """
            super().__init__(name=name)
            self.ranker_config = config
            self.input_specs = tuple(specs)
            self._task_names = tuple(tasks)
            self.encoder = encoder_class()(list(specs), stats, config.embedding_dim,
                                           name="features")
            self.ranking_tasks = self.build_ranking_tasks(self._task_names)

        def build_ranking_tasks(self, tasks: tuple[str, ...]) -> dict[str, Any]:
            """One BCE-on-logits ``Ranking`` task (loss + AUC metric) per task."""
            return {t: self._ranking_task(t, from_logits=True) for t in tasks}

        @staticmethod
        def _ranking_task(name: str, from_logits: bool) -> Any:
            # Reduction.NONE + our own mean (task_loss): Keras refuses its default reduction
            # inside a replica context, so the mirrored (multi-device) path needs this.
            return tfrs_mod.tasks.Ranking(
                loss=tf.keras.losses.BinaryCrossentropy(
                    from_logits=from_logits, reduction=tf.keras.losses.Reduction.NONE),
                metrics=[tf.keras.metrics.AUC(from_logits=from_logits, name=f"{name}_auc")],
                name=f"{name}_task")

        @property
        def tasks(self) -> tuple[str, ...]:
            """Task names, in output order (``ctr`` first when present)."""
            return tuple(self._task_names)

        def heads(self, enc: Encoded, features: Mapping[str, Any],
                  training: bool) -> tuple[dict[str, Any], Any]:
            """Per-task ``[B]`` logits and an auxiliary loss (or None). Subclasses implement."""
            raise NotImplementedError

        def forward(self, features: Mapping[str, Any],
                    training: bool = False) -> tuple[dict[str, Any], Any, Encoded]:
            """Logits by task, auxiliary loss (or None) and the encoded batch."""
            enc = self.encoder.encode(features)
            logits, aux = self.heads(enc, features, training)
            return logits, aux, enc

        def probabilities(self, logits: dict[str, Any]) -> dict[str, Any]:
            """``{task: sigmoid(logit)}``; ESMM adds ``ctcvr``."""
            return {t: tf.sigmoid(logits[t]) for t in self.tasks}

        # No AutoGraph: the rankers have no tensor-dependent Python control flow, and converting
        # every layer's source made tracing (fit, export) several times slower.
        @tf.autograph.experimental.do_not_convert
        def call(self, features: Mapping[str, Any], training: bool = False) -> dict[str, Any]:
            """Probability per task, ``[B]`` float32 each."""
            return self.probabilities(self.forward(features, training=training)[0])

        def sample_weight(self, task: str, labels: Mapping[str, Any]) -> Any:
            """Per-row loss weights of ``task`` (None = all rows); MMoE masks post-click CVR."""
            return None

        def task_loss(self, task: str, labels: Any, predictions: Any, weight: Any,
                      training: bool) -> Any:
            """Mean BCE of one task (``weight`` = None or ``[B]``), updating its metrics.

            The mean is over ALL rows of the (per-replica) batch, weighted or not, exactly
            Keras' ``SUM_OVER_BATCH_SIZE``: a row with weight 0 counts in the denominator.
            """
            per_row = self.ranking_tasks[task](
                labels=labels[:, None], predictions=predictions[:, None],
                sample_weight=None if weight is None else weight[:, None],
                compute_metrics=not training)
            return tf.reduce_mean(per_row)

        def supervised_loss(self, logits: dict[str, Any], labels: Mapping[str, Any],
                            training: bool) -> Any:
            """Weighted sum over tasks of their mean binary cross-entropy."""
            total = tf.constant(0.0)
            for t in self.tasks:
                y = self.label(labels, t)
                total += self.ranker_config.task_weight(t) * self.task_loss(
                    t, y, logits[t], self.sample_weight(t, labels), training)
            return total

        @staticmethod
        def label(labels: Mapping[str, Any], task: str) -> Any:
            """The float32 ``[B]`` label of ``task``; KeyError naming what is there."""
            if task not in labels:
                raise KeyError(f"no label for task {task!r}; labels given: {sorted(labels)}")
            return tf.reshape(tf.cast(labels[task], tf.float32), [-1])

        @tf.autograph.experimental.do_not_convert
        def compute_loss(self, inputs: Any, training: bool = False) -> Any:
            """Scalar training loss of a ``(features, labels)`` batch (see module docstring)."""
            features, labels = split_inputs(inputs)
            logits, aux, enc = self.forward(features, training=training)
            loss = self.supervised_loss(logits, labels, training)
            if aux is not None:
                loss += self.ranker_config.aux_loss_weight * aux
            if self.ranker_config.l2 > 0:
                loss += self.ranker_config.l2 * enc.penalty
            return loss

    return RankerModel


def squeeze_logit(x: Any) -> Any:
    """``[B, 1]`` → ``[B]``."""
    return tf_ops().squeeze(x, axis=-1)
