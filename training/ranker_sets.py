"""Ranker benchmark datasets: the synthetic set through the platform, Amazon Beauty + negatives.

Used by ``benchmarks/bench_rankers.py`` (and reusable by anything that compares rankers):

* :func:`synthetic_set`: ``shoprec.generator`` (its planted short-term sequence effect
  included) through the real platform path in a SHOPREC_HOME: ingest + GX gate → feature
  snapshots → ``feast apply`` → point-in-time ranker training set; split by time (train |
  validation = next 10% of the span | test = last 10%).
* :func:`amazon_set`: Amazon Beauty ingested with the ``amazon-seq`` source, the same features,
  negatives from :mod:`training.negatives` (k per positive, popularity^0.75 over TRAINING
  positives, the user's own items excluded); leave-last-out by time (each user's last item is
  test, the one before validation).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

BEAUTY = ("Beauty.txt", "Beauty_item2attributes.json")


def synthetic_set(home: Path, overrides: dict[str, Any], log: Any
                  ) -> tuple[Any, dict[str, Any]]:
    """Generate (default preset + ``overrides``), ingest, build features and the ranker set."""
    from feature_repo import build, store, training_set
    from shoprec.cli import PRESETS
    from shoprec.contract import CONTRACT
    from shoprec.generator import GeneratorConfig, generate
    from shoprec.ingest import ingest_tables
    from shoprec.settings import Settings
    from validation.run import run_batch

    settings = Settings(home=home)
    preset = {**PRESETS["default"], **overrides}
    t0 = time.perf_counter()
    summary = generate(GeneratorConfig(**preset, seed=settings.seed), settings.landing_dir)
    ingest_tables(settings, settings.landing_dir)
    run_batch(sorted((settings.landing_dir / "events").glob("*.parquet")), settings, "bench")
    build.build_snapshots(settings, CONTRACT)
    store.apply(settings, CONTRACT)
    training_set.build_training_sets(settings, CONTRACT, store.open_store(settings))
    splits = time_splits(settings.datasets_dir / "ranker.parquet")
    info = {"preset": preset, "events": summary["total_events"],
            "platform_seconds": round(time.perf_counter() - t0, 1)}
    log(f"synthetic set: {sum(splits.rows.values())} impressions from "
        f"{summary['total_events']} events ({info['platform_seconds']} s through "
        "ingest/features/Feast)")
    return splits, info


def time_splits(path: Path) -> Any:
    """Train | validation (next 10% of the time span) | test (last 10%) of a ranker set."""
    import pandas as pd

    ts = pd.read_parquet(path, columns=["event_ts"])["event_ts"]
    lo, span = ts.min(), ts.max() - ts.min()
    return _splits(path, lo + 0.8 * span, lo + 0.9 * span)


def amazon_set(home: Path, src: Path, users: int | None, k: int, log: Any
               ) -> tuple[Any, dict[str, Any]]:
    """Ingest Beauty from folder ``src`` (optionally its first ``users`` users) + negatives."""
    from feature_repo import build, store
    from shoprec.contract import CONTRACT
    from shoprec.settings import Settings
    from shoprec.sources_amazon import SEQUENCE_END, SEQUENCE_STEP
    from training.implicit_set import build_implicit_ranker_set
    from training.negatives import NegativeSampling
    from validation.run import run_batch

    settings = Settings(home=home)
    files = [src / f for f in BEAUTY]
    if users:  # the first N users' lines, unchanged: still the amazon-seq format
        cut = home / "beauty_subset"
        cut.mkdir(parents=True)
        lines = (src / BEAUTY[0]).read_text().splitlines(keepends=True)[:users]
        (cut / BEAUTY[0]).write_text("".join(lines))
        shutil.copy(src / BEAUTY[1], cut / BEAUTY[1])
        files = [cut / f for f in BEAUTY]
    t0 = time.perf_counter()
    run = run_batch(files, settings, "beauty", fmt="amazon-seq")
    build.build_snapshots(settings, CONTRACT)
    store.apply(settings, CONTRACT)
    half = SEQUENCE_STEP / 2
    sampling = NegativeSampling(k=k, distribution="popularity", alpha=0.75, seed=settings.seed)
    out = build_implicit_ranker_set(settings, CONTRACT, store.open_store(settings), sampling,
                                    train_end=SEQUENCE_END - SEQUENCE_STEP - half)
    info = {"positives": out["positives"], "rows": out["rows"], "sampling": out["sampling"],
            "ingest_balanced": run.ledger["balanced"], "users": users or "all",
            "platform_seconds": round(time.perf_counter() - t0, 1)}
    log(f"amazon beauty: {out['positives']} positives, {out['rows']} rows with negatives "
        f"({info['platform_seconds']} s)")
    return leave_last_out(out["path"]), info


def leave_last_out(path: Path) -> Any:
    """Leave-last-out: each user's last item is test, the one before it validation."""
    import pandas as pd

    from shoprec.sources_amazon import SEQUENCE_END, SEQUENCE_STEP

    end, half = pd.Timestamp(SEQUENCE_END), SEQUENCE_STEP / 2
    return _splits(path, end - SEQUENCE_STEP - half, end - half)


def _splits(path: Path, val_start: Any, test_start: Any) -> Any:
    from training.ranker_compare import Splits
    from training.ranker_data import ParquetSource

    splits = Splits(ParquetSource(path, end=val_start),
                    ParquetSource(path, start=val_start, end=test_start),
                    ParquetSource(path, start=test_start))
    splits.rows = {k: getattr(splits, k).count() for k in ("train", "validation", "test")}
    return splits
