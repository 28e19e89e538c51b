"""The ranker part of a pipeline run, trained with any zoo model: ``models/<run_id>/ranker/``.

This is what the pipeline's ``train_ranker`` task calls with the model name chosen in the DAG
(:func:`train_ranker_part`). It splits the training set at the run's shared cutoff
(:func:`training.runs.dataset_cutoff`, the same split the retrieval part and the evaluation use),
streams the train window into :func:`training.ranker_train.fit_ranker` (early stopping on the
held-out window, checkpoints under the part folder, optional warm start from an earlier run),
exports the best weights, reloads the SavedModel and scores the held-out window WITH THE
RELOADED MODEL, so the metrics describe exactly what serving will load.

The part folder holds ``ranker/`` (SavedModel), ``checkpoints/`` + ``ranker_spec.json`` (what
the next day's run warm-starts from), ``metrics.json`` and ``manifest.json``; it is written
atomically by :func:`training.runs.writing_part`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.contract import Contract
from shoprec.settings import Settings
from training.preprocessing import InputSpec
from training.ranker_checkpoint import config_dict
from training.ranker_data import GROUP_COL, ParquetSource, make_stream, task_label_columns
from training.ranker_metrics import multi_task_metrics
from training.ranker_strategy import DevicePlan
from training.ranker_train import FitResult, TrainConfig, fit_ranker
from training.runs import (
    MANIFEST,
    METRICS,
    RANKER_PART,
    RANKER_SET,
    check_run_id,
    dataset_cutoff,
    run_dir,
    write_json,
    writing_part,
)

SAVED_MODEL = "ranker"


def score_saved(path: Path, source: ParquetSource, specs: list[InputSpec],
                labels: dict[str, str], batch_size: int = 8192) -> dict[str, np.ndarray]:
    """Every output of the exported ranker at ``path`` over ``source``, in file order."""
    from shoprec.tf_runtime import tensorflow
    from training.rankers.export import load_and_score

    loaded = tensorflow().saved_model.load(str(path))
    parts: dict[str, list[np.ndarray]] = {}
    for features, _ in make_stream(source, specs, labels, batch_size).as_numpy_iterator():
        for name, values in load_and_score(loaded, features).items():
            parts.setdefault(name, []).append(values)
    return {k: np.concatenate(v) for k, v in parts.items()}


def heldout_metrics(path: Path, source: ParquetSource, specs: list[InputSpec],
                    labels: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per task AUC / GAUC / log loss of the RELOADED SavedModel on ``source``."""
    truth = source.read([GROUP_COL, *labels.values()])
    scores = score_saved(path, source, specs, labels)
    return multi_task_metrics({t: truth[c].to_numpy() for t, c in labels.items()},
                              {t: scores[t] for t in labels}, truth[GROUP_COL].to_numpy())


def warm_start_dir(settings: Settings, run_id: str | None) -> Path | None:
    """The ranker part folder of run ``run_id`` (``None`` stays ``None``)."""
    return None if run_id is None else run_dir(settings, run_id) / RANKER_PART


def train_ranker_part(settings: Settings, contract: Contract, run_id: str, model: str, *,
                      epochs: int, batch_size: int, sample_size: int | None = None,
                      tasks: tuple[str, ...] | None = None,
                      config: TrainConfig | None = None, ranker_config: Any = None,
                      warm_start_run: str | None = None,
                      plan: DevicePlan | None = None) -> Path:
    """Train zoo ranker ``model`` and write ``models/<run_id>/ranker/``.

    Args:
        settings: Locations (reads ``datasets/ranker.parquet`` and, for the shared cutoff,
            ``datasets/retrieval.parquet``) and the seed.
        contract: Decides the inputs (the ``ranker`` FeatureService + ids) and the label column
            of every task (``task_labels``).
        run_id: The run; an existing ranker part of it is replaced, the retrieval part is not.
        model: A name of :data:`training.rankers.RANKERS` (the DAG's ``models`` choice).
        epochs: Most epochs (early stopping may end sooner).
        batch_size: Rows per step.
        sample_size: Train on a seeded sample of about this many train-window rows (quick
            runs); the held-out window is never sampled, so metrics stay comparable.
        tasks: What to learn; default the model's own (:func:`training.rankers.default_tasks`).
        config: Optimisation settings (``epochs``/``batch_size`` here override its fields).
        ranker_config: ``RankerConfig`` of the model (default: its defaults).
        warm_start_run: An earlier run (e.g. the champion) whose ranker checkpoint initialises
            the weights; refused with ``WarmStartMismatch`` unless model, tasks, inputs and
            config are identical.
        plan: Devices (default :func:`training.ranker_strategy.pick_strategy`).

    Returns:
        The part folder.
    """
    from dataclasses import replace

    from shoprec.tf_runtime import tensorflow, tfrs
    from training.dcn import ranker_inputs
    from training.rankers import RankerConfig, default_tasks
    from training.rankers.export import export_ranker_model

    check_run_id(run_id)
    tasks = tuple(tasks or default_tasks(model))
    labels = task_label_columns(contract, tasks)
    cfg = replace(config or TrainConfig(seed=settings.seed), epochs=epochs, batch_size=batch_size)
    ranker_config = ranker_config or RankerConfig(seed=settings.seed)
    specs = ranker_inputs(contract)
    cutoff = dataset_cutoff(settings)
    path = settings.datasets_dir / RANKER_SET
    train = ParquetSource(path, end=cutoff, read_rows=cfg.read_rows)
    if sample_size is not None:
        if sample_size < 1:
            raise ValueError(f"sample_size must be a positive number of rows, got {sample_size}")
        train = replace(train, keep=min(1.0, sample_size / max(train.count(), 1)),
                        seed=settings.seed)
    heldout = ParquetSource(path, start=cutoff, read_rows=cfg.read_rows)
    previous = warm_start_dir(settings, warm_start_run)
    with writing_part(settings, run_id, RANKER_PART) as tmp:
        fit = fit_ranker(model, specs, train, heldout, labels, tmp, config=cfg,
                         ranker_config=ranker_config, warm_start=previous, plan=plan)
        export_ranker_model(fit.model, specs, tmp / SAVED_MODEL)
        per_task = heldout_metrics(tmp / SAVED_MODEL, heldout, specs, labels)
        write_json(tmp / METRICS, {
            "ranker": per_task[tasks[0]], "tasks": per_task, "model": model,
            "train_rows": fit.train_rows, "validation_rows": fit.validation_rows,
            "split_cutoff": cutoff, "training": training_summary(fit)})
        write_json(tmp / MANIFEST, {
            "run_id": run_id, "part": RANKER_PART, "created_at": datetime.now(UTC).isoformat(),
            "contract_project": contract.project, "model": model, "tasks": list(tasks),
            "features": {"ranker": [s.name for s in specs if s.kind != "id"]},
            "inputs": {"ranker": [{"name": s.name, "dtype": s.dtype, "kind": s.kind,
                                   "max_len": s.max_len} for s in specs]},
            "outputs": {"ranker": "score"}, "signature": "serving_default",
            "tf_version": tensorflow().__version__, "tfrs_version": tfrs().__version__,
            "seed": settings.seed, "epochs": epochs, "batch_size": batch_size,
            "sample_size": sample_size,
            "split_cutoff": cutoff, "warm_start": {"run": warm_start_run,
                                                   "checkpoint": fit.warm_start},
            "config": config_dict(ranker_config), "train_config": config_dict(cfg),
            "devices": fit.devices})
    return run_dir(settings, run_id) / RANKER_PART


def training_summary(fit: FitResult) -> dict[str, Any]:
    """The JSON-able record of a fit (no model object)."""
    return {"epochs_run": len(fit.history), "best_epoch": fit.best_epoch,
            "stopped_early": fit.stopped_early, "best": fit.best, "history": fit.history,
            "seconds": fit.seconds, "train_seconds": fit.train_seconds,
            "examples_per_s": fit.examples_per_s, "devices": fit.devices,
            "warm_start": fit.warm_start, "cache_seconds": fit.cache_seconds}
