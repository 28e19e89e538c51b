"""Compare rankers on one dataset under one tuning budget; measure training throughput.

Used by ``benchmarks/bench_rankers.py``. Every neural ranker and both baselines see the same
rows, the same inputs and a tuning grid of the same size, are selected on the validation
window and reported on the test window (selection never looks at test). Throughput compares
the pure training step (batches already in memory) with the streaming fit over the same
batches: their ratio says whether the input pipeline ever makes the model wait.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.preprocessing import InputSpec, fit_stats
from training.ranker_baseline import GBDT_GRID, LR_GRID, tune_baseline
from training.ranker_data import GROUP_COL, ParquetSource, fill_cache, make_stream
from training.ranker_metrics import task_metrics
from training.ranker_train import TrainConfig, fit_ranker, validation_metrics
from training.stream_cache import scratch_cache


@dataclass(frozen=True)
class Budget:
    """The tuning budget every model family gets (a grid of ``len(learning_rates)`` configs).

    Attributes:
        epochs: Most epochs of a neural ranker (early stopping on validation AUC).
        patience: Epochs without validation gain before stopping.
        batch_size: Rows per step.
        learning_rates: Adam learning rates tried per neural ranker.
        gbdt_grid: Configurations tried for the GBDT (same count as the learning rates).
        lr_grid: Configurations tried for the logistic regression.
        baseline_rows: Most training rows given to the in-memory baselines (sampled).
        ranker_overrides: ``RankerConfig`` fields set for EVERY neural ranker (each model
            reads the fields it uses, e.g. ``attention_pooling`` only DIN and DMR).
    """

    epochs: int = 6
    patience: int = 1
    batch_size: int = 1024
    learning_rates: tuple[float, ...] = (1e-3, 3e-3)
    gbdt_grid: tuple[dict[str, Any], ...] = GBDT_GRID
    lr_grid: tuple[dict[str, Any], ...] = LR_GRID
    baseline_rows: int = 400_000
    ranker_overrides: tuple[tuple[str, Any], ...] = ()

    def describe(self) -> str:
        """One line for reports."""
        return (f"neural: Adam lr in {list(self.learning_rates)}, <= {self.epochs} epochs, "
                f"early stop on val AUC (patience {self.patience}), batch {self.batch_size}, "
                f"RankerConfig defaults{self._overrides()}; GBDT: {list(self.gbdt_grid)}; "
                f"logistic regression: {list(self.lr_grid)}; baselines on <= "
                f"{self.baseline_rows} train rows")


    def _overrides(self) -> str:
        return (" + " + ", ".join(f"{k}={v!r}" for k, v in self.ranker_overrides)
                if self.ranker_overrides else "")


@dataclass
class Splits:
    """Train / validation (selection, early stopping) / test (reported) windows of one file."""

    train: ParquetSource
    validation: ParquetSource
    test: ParquetSource
    rows: dict[str, int] = field(default_factory=dict)


def neural_row(name: str, splits: Splits, specs: list[InputSpec], labels: dict[str, str],
               budget: Budget, out_dir: Path, seed: int, log: Any = print) -> dict[str, Any]:
    """Tune one zoo ranker over the learning-rate grid; test metrics of the chosen config."""
    from shoprec.tf_runtime import tensorflow
    from training.rankers import RankerConfig

    best: Any = None
    tried = []
    for lr in budget.learning_rates:
        tensorflow().keras.backend.clear_session()
        cfg = TrainConfig(epochs=budget.epochs, batch_size=budget.batch_size, learning_rate=lr,
                          patience=budget.patience, seed=seed)
        fit = fit_ranker(name, specs, splits.train, splits.validation, labels,
                         out_dir / name / f"lr{lr:g}", config=cfg,
                         ranker_config=RankerConfig(seed=seed, learning_rate=lr,
                                                    **dict(budget.ranker_overrides)))
        tried.append({"lr": lr, "val_auc": fit.best["val_auc"], "epochs": len(fit.history)})
        log(f"  {name} lr={lr:g}: val AUC {fit.best['val_auc']:.4f} after {len(fit.history)} "
            f"epochs ({fit.train_seconds:.0f} s training, {fit.examples_per_s:.0f} ex/s)")
        if best is None or fit.best["val_auc"] > best.best["val_auc"]:
            best = fit
    test = validation_metrics(best.model, splits.test, specs, labels, 8192)
    first = test[next(iter(labels))]
    log(f"  {name} test: AUC {first['auc']:.4f} GAUC {first['gauc']:.4f} "
        f"logloss {first['logloss']:.4f}")
    return {"model": name, "tasks": list(labels), "test": test, "tried": tried,
            "val_auc": best.best["val_auc"], "best_epoch": best.best_epoch,
            "train_seconds": round(best.train_seconds, 1),
            "examples_per_s": round(best.examples_per_s)}


def baseline_rows(splits: Splits, specs: list[InputSpec], labels: dict[str, str],
                  budget: Budget, seed: int, log: Any = print) -> list[dict[str, Any]]:
    """GBDT and logistic regression per task, tuned on validation, scored on test."""
    columns = list(dict.fromkeys([*(s.name for s in specs), *labels.values(), GROUP_COL]))
    train = splits.train.sample(columns, budget.baseline_rows, seed)
    val, test = splits.validation.read(columns), splits.test.read(columns)
    out = []
    for family, grid in (("gbdt", budget.gbdt_grid), ("logreg", budget.lr_grid)):
        t0 = time.perf_counter()
        per_task, tried = {}, {}
        for task, column in labels.items():
            tuned = tune_baseline(family, train, val, specs, column, seed=seed, grid=grid)
            per_task[task] = task_metrics(test[column].to_numpy(), tuned["score"](test),
                                          test[GROUP_COL].to_numpy())
            tried[task] = tuned["tried"]
        seconds = time.perf_counter() - t0
        log(f"  {family}: test AUC {per_task[next(iter(labels))]['auc']:.4f} ({seconds:.0f} s)")
        out.append({"model": family, "tasks": list(labels), "test": per_task, "tried": tried,
                    "train_rows": len(train), "train_seconds": round(seconds, 1)})
    return out


def throughput(name: str, source: ParquetSource, specs: list[InputSpec],
               labels: dict[str, str], batch_size: int, seed: int, *,
               shuffle_buffer: int = 100_000, repeats: int = 4,
               epochs: int = 2) -> dict[str, Any]:
    """Examples/s of the streaming fit vs the pure train step on the same batches in memory.

    Both are fitted as training fits (:func:`training.ranker_train.fit_ranker`): a repeated
    stream, ``epochs`` passes of ``steps_per_epoch`` batches in one ``fit``, with a stream
    cache filled before training (:func:`training.ranker_data.fill_cache`, timed apart as
    ``fill_seconds``); every timed pass gathers, shuffles and batches its rows from that
    cache as training's epochs do. The in-memory run replays the batches of one
    pass cached as tensors, so it times the train step alone. After the train function is
    traced, the two are timed ``repeats`` times each, in neighbouring pairs (:func:`_alternate`).
    ``ratio`` = the median over pairs of in-memory time / streaming time: 1.0 means the model
    never waited for input; ``total_ratio`` is the ratio of the summed times; ``cpu_ratio`` is
    the paired median of process CPU time (what the input pipeline costs on a machine whose
    cores are all busy).
    """
    from shoprec.tf_runtime import tensorflow
    from training.ranker_data import batches_per_pass
    from training.ranker_train import make_optimizer, trainer_class
    from training.rankers import RankerConfig, build_ranker_model, default_tasks

    tf = tensorflow()
    tf.keras.backend.clear_session()
    tasks = default_tasks(name)
    lab = {t: labels[t] for t in tasks}
    cfg = RankerConfig(seed=seed)
    sample = source.sample([s.name for s in specs], 200_000, seed)
    model = trainer_class()(build_ranker_model(name, specs, fit_stats(sample, specs), cfg,
                                               tasks=tasks))
    model.compile(optimizer=make_optimizer(model, TrainConfig(), False, cfg.learning_rate))
    with scratch_cache(None, Path(source.path).parent) as cache:
        start = time.perf_counter()  # Parquet decoded once, before training, as fit_ranker does
        rows = fill_cache(source, specs, lab, cache)
        fill = time.perf_counter() - start
        one_pass = make_stream(source, specs, lab, batch_size, shuffle_buffer=shuffle_buffer,
                               seed=seed, cache=cache).cache()
        for _ in one_pass:  # fills the in-memory cache
            pass
        steps = batches_per_pass(rows, batch_size)
        runs = {"cached": one_pass.repeat(),
                "stream": make_stream(source, specs, lab, batch_size, seed=seed, repeat=True,
                                      shuffle_buffer=shuffle_buffer, cache=cache)}
        for ds in runs.values():  # trace the train function for both iterators, untimed
            model.fit(ds, steps_per_epoch=2, verbose=0)
        timed, cpu = _alternate(model, runs, epochs, steps, repeats)
    examples = rows * epochs * repeats
    # CPU seconds of the whole process (every TF thread and the input generator): on a
    # machine shared with other jobs, wall time swings with their load; CPU time does not
    return {"model": name, "rows": rows, "epochs": epochs,
            "step_examples_per_s": round(examples / sum(timed["cached"])),
            "examples_per_s": round(examples / sum(timed["stream"])),
            "ratio": round(paired_ratio(timed["cached"], timed["stream"]), 3),
            "cpu_ratio": round(paired_ratio(cpu["cached"], cpu["stream"]), 3),
            "total_ratio": round(sum(timed["cached"]) / sum(timed["stream"]), 3),
            "shuffle_buffer": shuffle_buffer, "fill_seconds": round(fill, 2),
            "seconds": {k: [round(x, 2) for x in v] for k, v in timed.items()},
            "cpu_seconds": {k: [round(x, 2) for x in v] for k, v in cpu.items()}}


def _alternate(model: Any, runs: dict[str, Any], epochs: int, steps: int,
               repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of ``repeats`` fits of each run, in ABBA order (A B, B A, ...).

    On this VM the same in-memory fit takes anywhere from 5.4 to 6.9 s, drifting over tens
    of seconds (no steal time, no garbage collection: the same work takes more CPU time).
    Fits are paired with their neighbour and the order flips every pair, so a drift weighs
    on both sides of a pair alike.
    """
    timed: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    kinds = list(runs)
    for i in range(repeats):
        for kind in kinds if i % 2 == 0 else kinds[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            model.fit(runs[kind], epochs=epochs, steps_per_epoch=steps, verbose=0)
            timed[kind].append(time.perf_counter() - t0)
            cpu[kind].append(time.process_time() - c0)
    return timed, cpu


def paired_ratio(reference: Sequence[float], measured: Sequence[float]) -> float:
    """Median over pairs of ``reference[i] / measured[i]``: one slow fit moves it little.

    Raises:
        ValueError: for no pairs, unequal lengths or a non-positive time.
    """
    if not reference or len(reference) != len(measured):
        raise ValueError(f"need equally many timings, got {len(reference)} and {len(measured)}")
    if min(*reference, *measured) <= 0:
        raise ValueError("timings must be positive")
    return float(np.median(np.asarray(reference, float) / np.asarray(measured, float)))


def gauc_margin(rows: list[dict[str, Any]], model: str, reference: str,
                task: str = "ctr") -> float | None:
    """Test GAUC of ``model`` minus that of ``reference`` (None if either is missing)."""
    by = {r["model"]: r["test"].get(task, {}).get("gauc") for r in rows}
    a, b = by.get(model), by.get(reference)
    return None if a is None or b is None or np.isnan(a) or np.isnan(b) else float(a - b)
