"""Training stage entry: split by time, fit both models, export, index, evaluate, record.

Everything downstream (index, metrics) is computed with the *reloaded SavedModels*, not the
in-memory Keras objects, so the evaluated artefacts are byte-for-byte what serving loads. A run
is written to a temporary sibling folder and renamed at the end, so a failed or retried Airflow
task never leaves a half-written ``models/<run_id>/`` behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
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
from training.evaluate import heldout_queries, ranker_metrics, retrieval_metrics
from training.export import call_saved, export_ranker, export_tower, verify_export
from training.index import build_index, load_index
from training.preprocessing import InputSpec, to_feature_dict
from training.two_tower import build_two_tower, item_inputs, user_inputs

VALIDATION_FRACTION = 0.1
PREDICT_BATCH = 8192
VERIFY_ROWS = 256


def time_cutoff(timestamps: list[pd.Series], holdout: float = VALIDATION_FRACTION) -> pd.Timestamp:
    """Timestamp after which the last ``holdout`` share of the covered TIME span starts.

    One cutoff for both datasets, so neither model is trained on a period the other is
    evaluated on, and the split mimics deployment (train on the past, serve the future).
    """
    ts = pd.concat([pd.to_datetime(t, utc=True) for t in timestamps if len(t)])
    lo, hi = ts.min(), ts.max()
    return lo + (hi - lo) * (1.0 - holdout)


def split_by_time(df: pd.DataFrame, cutoff: pd.Timestamp,
                  ts_col: str = "event_ts") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows before cutoff, rows at/after cutoff)``, each with a fresh index."""
    late = pd.to_datetime(df[ts_col], utc=True) >= cutoff
    return df[~late].reset_index(drop=True), df[late].reset_index(drop=True)


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


def _predict_saved(loaded: Any, df: pd.DataFrame, specs: list[InputSpec]) -> np.ndarray:
    parts = [call_saved(loaded, to_feature_dict(df.iloc[i:i + PREDICT_BATCH], specs))
             for i in range(0, len(df), PREDICT_BATCH)]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become null (strict JSON), numpy scalars become floats."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(_clean(payload), indent=2, allow_nan=False) + "\n")


def train(settings: Settings, contract: Contract, run_id: str, item_features: pd.DataFrame,
          epochs: int = 3, batch_size: int = 1024, *,
          config: ModelConfig | None = None) -> Path:
    """Train, export and evaluate one run; return ``settings.models_dir / run_id``.

    Args:
        settings: Locations (reads ``datasets_dir``, writes ``models_dir``) and the seed.
        contract: Feature contract; decides every model input.
        run_id: Folder name of the run; an existing folder of that name is replaced.
        item_features: Every catalogue item: ``item_id`` + ``two_tower_item`` features, as
            served by the Feast online store; the FAISS index is built from it.
        epochs: Passes over each training set.
        batch_size: Rows per step (also the number of in-batch negatives for retrieval).
        config: Model hyper-parameters; defaults to :class:`ModelConfig`.

    Returns:
        The run directory with ``user_tower/``, ``item_tower/``, ``ranker/``,
        ``item_index.faiss``, ``item_ids.npy``, ``metrics.json`` and ``manifest.json``.
    """
    tf = tensorflow()
    cfg = config or ModelConfig()
    tf.keras.utils.set_random_seed(settings.seed)
    ranker_df = pd.read_parquet(settings.datasets_dir / "ranker.parquet")
    retr_df = pd.read_parquet(settings.datasets_dir / "retrieval.parquet")
    cutoff = time_cutoff([ranker_df["event_ts"], retr_df["event_ts"]])
    rk_train, rk_val = split_by_time(ranker_df, cutoff)
    tt_train, tt_val = split_by_time(retr_df, cutoff)
    if rk_train.empty or tt_train.empty:
        raise ValueError("time split left no training rows; need data spanning some time")
    u_specs, i_specs = user_inputs(contract), item_inputs(contract)
    r_specs = ranker_inputs(contract)

    two_tower = build_two_tower(contract, tt_train, cfg)
    # Each row is a positive (user, item) pair carrying both towers' inputs.
    tt_ds = make_dataset(tt_train, u_specs + i_specs, batch_size, settings.seed,
                         cfg.shuffle_buffer)
    tt_fit = _fit(two_tower, tt_ds, len(tt_train), epochs, cfg)
    ranker = build_ranker(contract, rk_train, cfg)
    rk_ds = make_dataset(rk_train, r_specs, batch_size, settings.seed, cfg.shuffle_buffer,
                         extra=(contract.label,))
    rk_fit = _fit(ranker, rk_ds, len(rk_train), epochs, cfg)

    run_dir = settings.models_dir / run_id
    tmp = settings.models_dir / f".{run_id}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    exports = {"user_tower": (two_tower.user_tower, u_specs, tt_train, export_tower),
               "item_tower": (two_tower.item_tower, i_specs, tt_train, export_tower),
               "ranker": (ranker, r_specs, rk_train, export_ranker)}
    loaded: dict[str, Any] = {}
    for name, (model, specs, sample_df, exporter) in exports.items():
        exporter(model, specs, tmp / name)
        sample = to_feature_dict(sample_df.head(VERIFY_ROWS), specs)
        verify_export(tmp / name, model(sample, training=False).numpy(), sample)
        loaded[name] = tf.saved_model.load(str(tmp / name))

    missing = {"item_id", *(s.name for s in i_specs)} - set(item_features.columns)
    if missing:
        raise KeyError(f"item_features lacks columns {sorted(missing)}")
    item_emb = _predict_saved(loaded["item_tower"], item_features, i_specs)
    build_index(item_emb, item_features["item_id"].to_numpy(np.int64), tmp,
                hnsw_threshold=cfg.hnsw_threshold)
    index, index_ids = load_index(tmp)

    queries, relevant = heldout_queries(tt_val)
    q_emb = (_predict_saved(loaded["user_tower"], queries, u_specs) if len(queries)
             else np.zeros((0, cfg.embedding_dim), np.float32))
    retrieval = retrieval_metrics(q_emb, relevant, index, index_ids)
    scores = _predict_saved(loaded["ranker"], rk_val, r_specs)
    rank = ranker_metrics(rk_val[contract.label].to_numpy(), scores, rk_val["user_id"].to_numpy())

    metrics = {"retrieval": retrieval, "ranker": rank, "train_rows": len(rk_train),
               "retrieval_train_rows": len(tt_train), "validation_rows": len(rk_val),
               "retrieval_validation_rows": len(tt_val), "validation_users": len(queries),
               "catalogue_items": len(item_features), "split_cutoff": cutoff.isoformat(),
               "training": {"two_tower": tt_fit, "ranker": rk_fit}}
    _write_json(tmp / "metrics.json", metrics)
    _write_json(tmp / "manifest.json", _manifest(run_id, cfg, settings, contract,
                                                 {"user_tower": u_specs, "item_tower": i_specs,
                                                  "ranker": r_specs}, index, epochs, batch_size))
    shutil.rmtree(run_dir, ignore_errors=True)
    tmp.rename(run_dir)
    return run_dir


def _manifest(run_id: str, cfg: ModelConfig, settings: Settings, contract: Contract,
              specs: dict[str, list[InputSpec]], index: Any, epochs: int,
              batch_size: int) -> dict[str, Any]:
    import faiss

    return {
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(),
        "contract_project": contract.project,
        "features": {m: [s.name for s in ss if s.kind != "id"] for m, ss in specs.items()},
        "inputs": {m: [{"name": s.name, "dtype": s.dtype, "kind": s.kind} for s in ss]
                   for m, ss in specs.items()},
        "outputs": {"user_tower": "embedding", "item_tower": "embedding", "ranker": "score"},
        "signature": "serving_default",
        "embedding_dim": cfg.embedding_dim,
        "index": {"type": type(index).__name__, "metric": "inner_product", "size": index.ntotal},
        "tf_version": tensorflow().__version__,
        "tfrs_version": tfrs().__version__,
        "faiss_version": faiss.__version__,
        "seed": settings.seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "config": asdict(cfg),
    }
