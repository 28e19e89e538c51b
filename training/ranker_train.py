"""Train any model of the ranker zoo: streaming input, early stopping, checkpoints, warm start.

:func:`fit_ranker` is model-agnostic: it takes a model name of :data:`training.rankers.RANKERS`
(or a ``build`` callable with the same signature as ``build_ranker_model``), decodes the train
and validation windows of the training set once into a stream cache
(:mod:`training.stream_cache`), streams every epoch from it (:mod:`training.ranker_data`),
validates after every epoch with the metrics the gate uses (AUC, GAUC, log loss per task,
:mod:`training.ranker_metrics`), keeps the best epoch in a ``tf.train.CheckpointManager``,
stops after ``patience`` epochs without improvement and returns the model with the BEST
epoch's weights.

The zoo's models are ``tfrs.Model`` s whose default ``train_step`` neither scales the loss for
several replicas nor for float16; :class:`RankerTrainer` wraps a model with a step that does
both, so one model trains identically on one device, on N mirrored devices (gradients are
summed across replicas, hence the loss is divided by their number) and in mixed precision.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.tf_runtime import tensorflow, tfrs
from training.preprocessing import InputSpec, fit_stats
from training.ranker_checkpoint import (
    CHECKPOINT_DIR,
    CHECKPOINT_NAME,
    check_warm_start,
    ranker_spec,
    restore_weights,
    write_spec,
)
from training.ranker_data import (
    GROUP_COL,
    ParquetSource,
    batches_per_pass,
    fill_cache,
    make_stream,
)
from training.ranker_metrics import flat_metrics, monitor_mode, multi_task_metrics
from training.ranker_strategy import DevicePlan, pick_strategy
from training.stream_cache import StreamCache, scratch_cache


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and input settings of one ranker training (model shape is elsewhere).

    Attributes:
        epochs: Most passes over the train window.
        batch_size: Global rows per step (split across replicas).
        learning_rate: Adam learning rate (dense layers; everything with ``adam``); ``None``
            takes the model config's ``learning_rate`` (``RankerConfig``), else 1e-3.
        optimizer: ``adam``, or ``composite`` = sparse Adagrad for embedding tables + Adam for
            the rest (faster with large hashed-id tables, see ``training.pipeline``).
        embedding_learning_rate: Adagrad learning rate for tables (``composite``).
        patience: Epochs without improvement of ``monitor`` before stopping.
        monitor: ``val_auc``, ``val_gauc``, ``val_logloss``, ``val_loss`` (sum of the tasks'
            log losses) or a task-qualified name such as ``val_cvr_auc``.
        min_delta: Smallest change that counts as an improvement.
        shuffle_buffer: Rows mixed by the streaming shuffle.
        read_rows: Rows per Parquet record batch.
        stats_rows: Rows sampled for the normalisation statistics.
        eval_batch_size: Rows per validation batch.
        seed: Seed of initialisation, shuffles and samples.
        stream_cache: Decode the train and validation windows to disk once, before the first
            step, so no epoch decodes Parquet while the model steps
            (:mod:`training.stream_cache`: about 1.5 KB a row of disk for two fifths of the
            input CPU per pass). False streams every pass from Parquet.
        stream_cache_dir: Where those entries live and outlive the run; None: a scratch
            directory inside the run's output, removed when :func:`fit_ranker` returns.
    """

    epochs: int = 10
    batch_size: int = 1024
    learning_rate: float | None = None
    optimizer: str = "adam"
    embedding_learning_rate: float = 0.05
    patience: int = 2
    monitor: str = "val_auc"
    min_delta: float = 0.0
    shuffle_buffer: int = 100_000
    read_rows: int = 16_384
    stats_rows: int = 200_000
    eval_batch_size: int = 8192
    seed: int = 42
    stream_cache: bool = True
    stream_cache_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "read_rows", "stats_rows",
                     "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optimizer not in ("adam", "composite"):
            raise ValueError(f"optimizer must be 'adam' or 'composite', got {self.optimizer!r}")
        monitor_mode(self.monitor)


@dataclass
class FitResult:
    """A trained ranker and what happened while training it."""

    model: Any
    tasks: tuple[str, ...]
    history: list[dict[str, float]]
    best_epoch: int
    best: dict[str, float]
    stopped_early: bool
    seconds: float
    train_seconds: float
    examples_per_s: float
    train_rows: int
    validation_rows: int
    checkpoint: str
    warm_start: str | None
    devices: dict[str, Any] = field(default_factory=dict)
    cache_seconds: float = 0.0
    """Filling the stream cache before the first step (0 without one)."""


@functools.cache
def trainer_class() -> type:
    """The ``tfrs.Model`` wrapper class, defined on first use (keeps imports TF-free)."""
    tf = tensorflow()

    class RankerTrainer(tfrs().models.Model):
        """A zoo ranker with a train step that scales its loss for replicas and float16."""

        def __init__(self, ranker: Any) -> None:
            """Wrap ``ranker`` (its ``compute_loss((features, labels), training)`` is used)."""
            super().__init__()
            self.ranker = ranker

        def call(self, features: Any, training: bool = False) -> Any:
            """The ranker's output: task → probability ``[B]``."""
            return self.ranker(features, training=training)

        def compute_loss(self, inputs: Any, training: bool = False) -> Any:
            """The ranker's own loss on ``(features, labels)``."""
            return self.ranker.compute_loss(inputs, training=training)

        def train_step(self, inputs: Any) -> dict[str, Any]:
            """One step: the mean loss of the GLOBAL batch, whatever the replica count."""
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaling = hasattr(self.optimizer, "get_scaled_loss")
            with tf.GradientTape() as tape:
                loss = tf.cast(self.compute_loss(inputs, training=True), tf.float32)
                reg = tf.add_n([tf.cast(x, tf.float32) for x in self.losses]) \
                    if self.losses else tf.constant(0.0)
                total = loss + reg
                objective = total / replicas
                if scaling:
                    objective = self.optimizer.get_scaled_loss(objective)
            grads = tape.gradient(objective, self.trainable_variables)
            if scaling:
                grads = self.optimizer.get_unscaled_gradients(grads)
            self.optimizer.apply_gradients(
                [(g, v) for g, v in zip(grads, self.trainable_variables, strict=True)
                 if g is not None])
            logs = {m.name: m.result() for m in self.metrics}
            logs.update(loss=loss, regularization_loss=reg, total_loss=total)
            return logs

    return RankerTrainer


def make_optimizer(model: Any, config: TrainConfig, mixed_precision: bool,
                   learning_rate: float) -> Any:
    """The optimizer of :attr:`TrainConfig.optimizer`, loss-scaled under mixed precision."""
    from training.config import ModelConfig
    from training.pipeline import make_optimizer as base_optimizer

    tf = tensorflow()
    opt = base_optimizer(model, ModelConfig(
        optimizer=config.optimizer, learning_rate=learning_rate,
        embedding_learning_rate=config.embedding_learning_rate))
    return tf.keras.mixed_precision.LossScaleOptimizer(opt) if mixed_precision else opt


def predict_tasks(model: Any, source: ParquetSource, specs: Sequence[InputSpec],
                  labels: dict[str, str], batch_size: int,
                  cache: StreamCache | None = None) -> dict[str, np.ndarray]:
    """Every task's probabilities over ``source``, in file order."""
    ds = make_stream(source, specs, labels, batch_size, cache=cache).map(lambda f, _: f)
    out = model.predict(ds, verbose=0)
    return {t: np.asarray(out[t], dtype=np.float64).reshape(-1) for t in labels}


def validation_metrics(model: Any, source: ParquetSource, specs: Sequence[InputSpec],
                       labels: dict[str, str], batch_size: int,
                       cache: StreamCache | None = None) -> dict[str, dict[str, float]]:
    """Per task AUC / GAUC (per user) / log loss of ``model`` on the ``source`` window."""
    truth = source.read([GROUP_COL, *labels.values()])
    scores = predict_tasks(model, source, specs, labels, batch_size, cache)
    return multi_task_metrics({t: truth[c].to_numpy() for t, c in labels.items()}, scores,
                              truth[GROUP_COL].to_numpy())


def _validate_callback(validate: Callable[[], dict[str, float]], manager: Any,
                       config: TrainConfig) -> Any:
    """Keras callback: validation metrics into the logs, best-epoch checkpoint, early stop."""
    tf = tensorflow()
    better = (np.greater if monitor_mode(config.monitor) == "max" else np.less)

    class Validate(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best: float | None = None
            self.best_epoch, self.wait, self.stopped = -1, 0, False
            self.train_seconds, self._t0 = 0.0, 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.train_seconds += time.perf_counter() - self._t0
            logs = logs if logs is not None else {}
            logs.update(validate())
            value = logs[config.monitor]
            sign = 1 if better is np.greater else -1
            if np.isfinite(value) and (self.best is None or
                                       better(value - sign * config.min_delta, self.best)):
                self.best, self.best_epoch, self.wait = float(value), epoch, 0
                manager.save(checkpoint_number=epoch + 1)
                return
            self.wait += 1
            if self.wait >= config.patience:
                self.stopped = self.model.stop_training = True

    return Validate()


def fit_ranker(name: str, specs: Sequence[InputSpec], train: ParquetSource,
               validation: ParquetSource, labels: dict[str, str], out_dir: Path, *,
               config: TrainConfig = TrainConfig(), ranker_config: Any = None,
               warm_start: Path | None = None, plan: DevicePlan | None = None,
               build: Callable[..., Any] | None = None) -> FitResult:
    """Train ranker ``name`` on ``train``, early-stopped on ``validation``.

    Args:
        name: Model name of :data:`training.rankers.RANKERS` (recorded in the spec).
        specs: Model inputs (the SavedModel signature, in order).
        train: The training window of the training set.
        validation: The held-out window (early stopping and checkpoint choice).
        labels: Task → label column; the order of the tasks is the model's (the first is the
            primary task, monitored as ``val_auc`` etc.).
        out_dir: Receives ``ranker_spec.json`` and ``checkpoints/``.
        config: Optimisation settings.
        ranker_config: The model's own config (``RankerConfig``; ``None``: its defaults).
        warm_start: An earlier training's ``out_dir`` to initialise the weights from; refused
            with :class:`~training.ranker_checkpoint.WarmStartMismatch` unless its spec
            matches this one exactly.
        plan: Devices (:func:`training.ranker_strategy.pick_strategy` by default).
        build: ``build_ranker_model`` or a callable with its signature.

    Returns:
        The :class:`FitResult`; ``model`` holds the best epoch's weights.

    Raises:
        ValueError: when a window is empty or the monitored metric was never finite.
        WarmStartMismatch: see ``warm_start``.
    """
    tf = tensorflow()
    plan = plan or pick_strategy()
    if build is None:
        from dataclasses import replace

        from training.rankers import RankerConfig, build_ranker_model

        build, ranker_config = build_ranker_model, ranker_config or RankerConfig()
        # The zoo mixes layer outputs with float32 masks/attention in raw TF ops, which a
        # mixed_float16 policy breaks (ConcatV2 half vs float): zoo models train in float32
        # on every device until each model is made dtype-clean; the plan records it.
        plan = replace(plan, mixed_precision=False)
    lr = config.learning_rate or getattr(ranker_config, "learning_rate", None) or 1e-3
    tasks = tuple(labels)
    spec = ranker_spec(name, specs, tasks, ranker_config)
    checkpoint_from = check_warm_start(warm_start, spec) if warm_start is not None else None
    tf.keras.utils.set_random_seed(config.seed)
    names = [s.name for s in specs]
    sample = train.sample(names, config.stats_rows, config.seed)
    if sample.empty:
        raise ValueError(f"no training rows in {train.path} between {train.start} and "
                         f"{train.end}")
    val_rows = validation.count()
    if not val_rows:
        raise ValueError(f"no validation rows in {validation.path} from {validation.start}")
    stats = fit_stats(sample, list(specs))
    first = next(iter(make_stream(train, specs, labels, min(64, len(sample)))))
    with plan.building():
        ranker = build(name, list(specs), stats, ranker_config, tasks=tasks)
        model = trainer_class()(ranker)
        model(first[0], training=False)  # create every variable now, inside the strategy
        if checkpoint_from is not None:
            restore_weights(ranker, checkpoint_from)
        model.compile(optimizer=make_optimizer(model, config, plan.mixed_precision, lr))
    write_spec(out_dir, spec)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=ranker),
                                         str(out_dir / CHECKPOINT_DIR), max_to_keep=2,
                                         checkpoint_name=CHECKPOINT_NAME)

    caching = (scratch_cache(config.stream_cache_dir, out_dir) if config.stream_cache
               else contextlib.nullcontext(None))
    with caching as cache:
        def validate() -> dict[str, float]:
            per_task = validation_metrics(model, validation, specs, labels,
                                          config.eval_batch_size, cache)
            flat = flat_metrics(per_task, tasks[0])
            flat["val_loss"] = float(sum(m["logloss"] for m in per_task.values()))
            return flat

        callback = _validate_callback(validate, manager, config)
        start = time.perf_counter()  # decode both windows once, before any step
        train_rows = (fill_cache(train, specs, labels, cache) if cache is not None
                      else train.count())
        if cache is not None:
            fill_cache(validation, specs, labels, cache)
        cache_seconds = time.perf_counter() - start
        stream = make_stream(train, specs, labels, config.batch_size, repeat=True, cache=cache,
                             shuffle_buffer=config.shuffle_buffer, seed=config.seed)
        start = time.perf_counter()
        hist = model.fit(stream, epochs=config.epochs, callbacks=[callback], verbose=0,
                         steps_per_epoch=batches_per_pass(train_rows, config.batch_size))
        seconds = time.perf_counter() - start
    if callback.best is None:
        raise ValueError(f"{config.monitor} was never finite on the validation window "
                         "(one class only?); no checkpoint was kept")
    restore_weights(ranker, manager.latest_checkpoint)
    history = [{k: float(v[i]) for k, v in hist.history.items()}
               for i in range(len(hist.epoch))]
    return FitResult(
        model=ranker, tasks=tasks, history=history, best_epoch=callback.best_epoch + 1,
        best=history[callback.best_epoch], stopped_early=callback.stopped, seconds=seconds,
        train_seconds=callback.train_seconds,
        examples_per_s=train_rows * len(history) / max(callback.train_seconds, 1e-9),
        train_rows=train_rows, validation_rows=val_rows, checkpoint=manager.latest_checkpoint,
        warm_start=checkpoint_from, devices=plan.describe(), cache_seconds=cache_seconds)
