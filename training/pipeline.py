"""Training stage entry: two independent parts of one run, trainable in parallel.

:func:`train_retrieval` (two-tower + FAISS index) and :func:`train_ranker` (DCN) each read the
current training sets, split them at the SAME cutoff (:func:`training.runs.dataset_cutoff`),
train, export, reload the SavedModels and compute held-out metrics with the reloaded models (so
the evaluated artefacts are byte-for-byte what serving loads), and write their own part of
``models/<run_id>/`` atomically (:func:`training.runs.writing_part`). Two Airflow tasks can run
them at once in separate processes; :func:`train` runs both in one process.

Training is seeded and TF op determinism is on, so two runs on the same data give identical
weights and metrics (checked by ``tests/model/test_pipeline.py``).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import Contract
from shoprec.settings import Settings
from shoprec.tf_runtime import tensorflow, tfrs
from training.config import ModelConfig
from training.dcn import build_ranker, ranker_inputs
from training.evaluate import predict_saved, ranker_eval, retrieval_eval
from training.export import export_ranker, export_tower, verify_export
from training.index import build_index, load_index
from training.preprocessing import InputSpec, to_feature_dict
from training.runs import (
    MANIFEST,
    METRICS,
    RANKER_PART,
    RANKER_SET,
    RETRIEVAL_PART,
    RETRIEVAL_SET,
    check_run_id,
    dataset_cutoff,
    load_split,
    run_dir,
    sample_rows,
    split_by_time,
    time_cutoff,
    write_json,
    write_run_summary,
    writing_part,
)
from training.two_tower import build_two_tower, item_inputs, user_inputs
from training.two_tower_options import TwoTowerOptions

__all__ = ["train", "train_ranker", "train_retrieval", "split_by_time", "time_cutoff"]

VERIFY_ROWS = 256


def seed_everything(seed: int) -> bool:
    """Seed Python, NumPy and TF, and turn on TF op determinism; return whether it is on.

    Called at the start of each part, so a part trained alone (its own Airflow task) starts
    from the same random state as when :func:`train` runs both in one process.
    """
    tf = tensorflow()
    tf.keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):  # very old TF; training still works, just not bitwise
        return False
    return True


def make_dataset(df: pd.DataFrame, specs: list[InputSpec], batch_size: int, seed: int,
                 shuffle_buffer: int, extra: tuple[str, ...] = ()) -> Any:
    """Shuffled, batched, prefetched ``tf.data`` pipeline of raw contract-typed inputs."""
    tf = tensorflow()
    cols: dict[str, np.ndarray] = to_feature_dict(df, specs)
    cols.update({c: df[c].to_numpy() for c in extra})
    ds = tf.data.Dataset.from_tensor_slices(cols)
    ds = ds.shuffle(max(1, min(shuffle_buffer, len(df))), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_optimizer(model: Any, cfg: ModelConfig) -> Any:
    """Adam for dense layers; sparse Adagrad for embedding tables when ``cfg.optimizer`` says so.

    Keras' Adam decays its moment estimates for *every* row of a table on every step, so with
    200k-row id tables the update, not the model, dominates step time (~3-4x slower measured).
    Adagrad only touches the rows present in the batch.
    """
    tf = tensorflow()
    if cfg.optimizer == "adam":
        return tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    if cfg.optimizer != "composite":
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use 'adam' or 'composite'")

    def tables() -> list[Any]:
        return [v for layer in model.submodules if isinstance(layer, tf.keras.layers.Embedding)
                for v in layer.trainable_variables]

    def dense() -> list[Any]:
        ids = {v.ref() for v in tables()}
        return [v for v in model.trainable_variables if v.ref() not in ids]

    legacy = tf.keras.optimizers.legacy
    return tfrs().experimental.optimizers.CompositeOptimizer([
        (legacy.Adagrad(learning_rate=cfg.embedding_learning_rate), tables),
        (legacy.Adam(learning_rate=cfg.learning_rate), dense)])


def _fit(model: Any, ds: Any, rows: int, epochs: int, cfg: ModelConfig) -> dict[str, float]:
    model.compile(optimizer=make_optimizer(model, cfg))
    start = time.perf_counter()
    hist = model.fit(ds, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "examples_per_s": rows * epochs / seconds if seconds else 0.0,
            "final_loss": float(hist.history["loss"][-1]) if hist.history.get("loss") else None}


def _check_args(run_id: str, epochs: int, batch_size: int) -> None:
    """Fail before minutes of training, not after, on arguments that cannot work."""
    check_run_id(run_id)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")


def _export_checked(model: Any, specs: list[InputSpec], sample_df: pd.DataFrame, path: Path,
                    exporter: Any) -> Any:
    """Export, check the reloaded model reproduces the in-memory one, return it reloaded."""
    exporter(model, specs, path)
    sample = to_feature_dict(sample_df.head(VERIFY_ROWS), specs)
    verify_export(path, model(sample, training=False).numpy(), sample)
    return tensorflow().saved_model.load(str(path))


def _manifest(settings: Settings, contract: Contract, run_id: str, part: str,
              specs: dict[str, list[InputSpec]], outputs: dict[str, str], cfg: ModelConfig,
              train_info: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "part": part, "created_at": datetime.now(UTC).isoformat(),
            "contract_project": contract.project,
            "features": {m: [s.name for s in ss if s.kind != "id"] for m, ss in specs.items()},
            "inputs": {m: [{"name": s.name, "dtype": s.dtype, "kind": s.kind} for s in ss]
                       for m, ss in specs.items()},
            "outputs": outputs, "signature": "serving_default",
            "tf_version": tensorflow().__version__, "tfrs_version": tfrs().__version__,
            "seed": settings.seed, **train_info, "config": asdict(cfg), **extra}



def _split(settings: Settings, dataset: str, sample_size: int | None,
           what: str) -> tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(cutoff, full train split, held-out split, sampled train rows)`` of one dataset.

    Both parts use the same cutoff (from both datasets), so neither trains on the period the
    other is evaluated on.
    """
    cutoff = dataset_cutoff(settings)
    full_train, val = load_split(settings, dataset, cutoff)
    train_df = sample_rows(full_train, sample_size, settings.seed)
    if train_df.empty:
        raise ValueError(f"time split left no {what} training rows; need data spanning time")
    return cutoff, full_train, val, train_df

def train_retrieval(settings: Settings, contract: Contract, run_id: str,
                    item_features: pd.DataFrame, *, epochs: int, batch_size: int,
                    sample_size: int | None = None, config: ModelConfig | None = None,
                    options: TwoTowerOptions | None = None) -> Path:
    """Train the two-tower model, index the catalogue, write ``models/<run_id>/retrieval/``.

    Args:
        settings: Locations (reads ``datasets/retrieval.parquet`` and the ``event_ts`` column
            of ``datasets/ranker.parquet`` for the shared cutoff) and the seed.
        contract: Feature contract; decides every model input.
        run_id: The run; an existing retrieval part of it is replaced, the ranker part is not.
        item_features: Every catalogue item: ``item_id`` + ``two_tower_item`` features, as
            served by the Feast online store; the FAISS index is built from it.
        epochs: Passes over the training split.
        batch_size: Rows per step (also the number of in-batch negatives).
        sample_size: Train on a deterministic sample of this many training rows (quick runs);
            the held-out rows are never sampled, so metrics stay comparable.
        config: Model hyper-parameters; defaults to :class:`ModelConfig`.
        options: logQ correction, mixed negatives (drawn from ``item_features``, the whole
            catalogue) and the user tower (``multi_interest`` emits ``[B, K, D]``; evaluation
            and serving then search the index once per interest); defaults to
            :class:`TwoTowerOptions`.

    Returns:
        The part folder: ``user_tower/``, ``item_tower/``, ``item_index.faiss``,
        ``item_ids.npy``, ``metrics.json``, ``manifest.json``.
    """
    _check_args(run_id, epochs, batch_size)
    cfg = config or ModelConfig()
    opts = options or TwoTowerOptions()
    u_specs, i_specs = user_inputs(contract), item_inputs(contract)
    missing = {"item_id", *(s.name for s in i_specs)} - set(item_features.columns)
    if missing:
        raise KeyError(f"item_features lacks columns {sorted(missing)}")
    cutoff, full_train, val, train_df = _split(settings, RETRIEVAL_SET, sample_size, "retrieval")
    deterministic = seed_everything(settings.seed)
    model = build_two_tower(contract, train_df, cfg, opts, item_features)
    ds = make_dataset(train_df, u_specs + i_specs, batch_size, settings.seed, cfg.shuffle_buffer)
    fit = _fit(model, ds, len(train_df), epochs, cfg)

    with writing_part(settings, run_id, RETRIEVAL_PART) as tmp:
        user = _export_checked(model.user_tower, u_specs, train_df, tmp / "user_tower",
                               export_tower)
        item = _export_checked(model.item_tower, i_specs, train_df, tmp / "item_tower",
                               export_tower)
        item_emb = predict_saved(item, item_features, i_specs)
        build_index(item_emb, item_features["item_id"].to_numpy(np.int64), tmp,
                    hnsw_threshold=cfg.hnsw_threshold, ivf_threshold=cfg.ivf_threshold)
        index, index_ids = load_index(tmp)
        metrics, users = retrieval_eval(user, index, index_ids, val, u_specs)
        write_json(tmp / METRICS, {
            "retrieval": metrics, "train_rows": len(train_df), "full_train_rows": len(full_train),
            "validation_rows": len(val), "validation_users": users,
            "catalogue_items": len(item_features), "split_cutoff": cutoff, "training": fit})
        import faiss

        write_json(tmp / MANIFEST, _manifest(
            settings, contract, run_id, RETRIEVAL_PART,
            {"user_tower": u_specs, "item_tower": i_specs},
            {"user_tower": "embedding", "item_tower": "embedding"}, cfg,
            {"epochs": epochs, "batch_size": batch_size, "sample_size": sample_size,
             "split_cutoff": cutoff, "deterministic": deterministic},
            {"embedding_dim": cfg.embedding_dim, "two_tower_options": asdict(opts),
             "user_interests": (opts.num_interests if opts.user_tower == "multi_interest"
                                else 1),
             "faiss_version": faiss.__version__,
             "index": {"type": type(index).__name__, "metric": "inner_product",
                       "size": index.ntotal}}))
    return run_dir(settings, run_id) / RETRIEVAL_PART


def train_ranker(settings: Settings, contract: Contract, run_id: str, *, epochs: int,
                 batch_size: int, sample_size: int | None = None,
                 config: ModelConfig | None = None, model: str | None = None,
                 warm_start_run: str | None = None) -> Path:
    """Train the ranker and write ``models/<run_id>/ranker/``.

    With ``model`` (a :data:`training.ranker_names.RANKERS` name, what the DAG passes) the zoo
    trainer runs (:func:`training.ranker_run.train_ranker_part`: streaming input, early
    stopping, checkpoints). ``warm_start_run`` names an earlier run (the champion) to start
    from; when its ranker is another model, or its inputs or config differ, the warm start is
    refused and logged, and the model trains from scratch. Without ``model``, the original
    in-memory DCN below (kept for its pinned, deterministic tests).

    Args:
        settings: Locations (reads ``datasets/ranker.parquet`` and the ``event_ts`` column of
            ``datasets/retrieval.parquet`` for the shared cutoff) and the seed.
        contract: Feature contract; decides every model input and the label column.
        run_id: The run; an existing ranker part of it is replaced, the retrieval part is not.
        epochs: Passes over the training split.
        batch_size: Rows per step.
        sample_size: Train on a deterministic sample of this many training rows.
        config: Model hyper-parameters of the in-memory DCN; defaults to :class:`ModelConfig`.
        model: Zoo ranker to train instead (see above).
        warm_start_run: Run whose ranker checkpoint the zoo model starts from, if compatible.

    Returns:
        The part folder: ``ranker/`` (SavedModel), ``metrics.json``, ``manifest.json``.
    """
    _check_args(run_id, epochs, batch_size)
    if model is not None:
        return _train_zoo_ranker(settings, contract, run_id, model, epochs=epochs,
                                 batch_size=batch_size, sample_size=sample_size,
                                 warm_start_run=warm_start_run)
    cfg = config or ModelConfig()
    specs = ranker_inputs(contract)
    cutoff, full_train, val, train_df = _split(settings, RANKER_SET, sample_size, "ranker")
    deterministic = seed_everything(settings.seed)
    model = build_ranker(contract, train_df, cfg)
    ds = make_dataset(train_df, specs, batch_size, settings.seed, cfg.shuffle_buffer,
                      extra=(contract.label,))
    fit = _fit(model, ds, len(train_df), epochs, cfg)

    with writing_part(settings, run_id, RANKER_PART) as tmp:
        loaded = _export_checked(model, specs, train_df, tmp / "ranker", export_ranker)
        write_json(tmp / METRICS, {
            "ranker": ranker_eval(loaded, val, specs, contract.label),
            "train_rows": len(train_df), "full_train_rows": len(full_train),
            "validation_rows": len(val), "split_cutoff": cutoff, "training": fit})
        write_json(tmp / MANIFEST, _manifest(
            settings, contract, run_id, RANKER_PART, {"ranker": specs}, {"ranker": "score"}, cfg,
            {"epochs": epochs, "batch_size": batch_size, "sample_size": sample_size,
             "split_cutoff": cutoff, "deterministic": deterministic}, {}))
    return run_dir(settings, run_id) / RANKER_PART


def _train_zoo_ranker(settings: Settings, contract: Contract, run_id: str, model: str, *,
                      epochs: int, batch_size: int, sample_size: int | None,
                      warm_start_run: str | None) -> Path:
    """:func:`training.ranker_run.train_ranker_part`, from scratch if the warm start is refused."""
    from training.ranker_checkpoint import WarmStartMismatch
    from training.ranker_run import train_ranker_part

    budget = {"epochs": epochs, "batch_size": batch_size, "sample_size": sample_size}
    if warm_start_run is not None:
        try:
            return train_ranker_part(settings, contract, run_id, model, **budget,
                                     warm_start_run=warm_start_run)
        except WarmStartMismatch as err:
            print(f"train_ranker: warm start refused ({err}); training {model} from scratch")
    return train_ranker_part(settings, contract, run_id, model, **budget)


def train(settings: Settings, contract: Contract, run_id: str, item_features: pd.DataFrame,
          epochs: int = 3, batch_size: int = 1024, *, sample_size: int | None = None,
          config: ModelConfig | None = None, options: TwoTowerOptions | None = None) -> Path:
    """Train both parts one after the other and write the run summary; return the run folder.

    A convenience for scripts and tests; the DAG runs :func:`train_retrieval` and
    :func:`train_ranker` as two parallel tasks instead. Arguments as there.
    """
    train_retrieval(settings, contract, run_id, item_features, epochs=epochs,
                    batch_size=batch_size, sample_size=sample_size, config=config,
                    options=options)
    train_ranker(settings, contract, run_id, epochs=epochs, batch_size=batch_size,
                 sample_size=sample_size, config=config)
    write_run_summary(settings, run_id)
    return run_dir(settings, run_id)
