"""Benchmark monitoring: the serving-path cost of the feature log, and drift on wide snapshots.

    python benchmarks/bench_monitoring.py                       # 2000 requests x 100 rows
    python benchmarks/bench_monitoring.py --rows-per-day 50000 --days 30

* ``append``: :meth:`serving.feature_log.FeatureLog.append` of one ``/recommend`` feature read
  (``--candidates`` rows, every ranker feature of the contract, sequences included) - the
  latency the hook adds to a request - and the time of the flushes it triggers;
* ``drift``: :func:`validation.drift.drift_report` over synthetic snapshots of every batch view
  of the contract (``--rows-per-day`` rows per view and day, ``--days`` days), end to end.

Synthetic data only (no real dataset is needed), in a temporary SHOPREC_HOME. Prints a table,
then one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from serving.feature_log import FeatureLog
from shoprec.contract import CONTRACT, RANKER
from shoprec.intervals import resolve
from shoprec.settings import Settings
from tests.data.monitoring_fixtures import random_values, write_snapshots
from validation.drift import drift_report


def _request(n: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame({"user_id": np.full(n, 7, np.int64),
                          "item_id": np.arange(n, dtype=np.int64)})
    for field in CONTRACT.service_request_fields(RANKER):
        frame[field.name] = pd.Timestamp.now(tz="UTC") if field.dtype == "timestamp" else "web"
    for feat in CONTRACT.service_features(RANKER):
        frame[feat.name] = random_values(feat, n, rng)
    return frame


def bench_append(settings: Settings, requests: int, candidates: int) -> dict[str, float]:
    """Per-request append latency (p50/p99, flushes included) and parts written."""
    rng = np.random.default_rng(0)
    frames = [_request(candidates, rng) for _ in range(20)]
    log = FeatureLog(settings, CONTRACT, max_rows=20_000, max_seconds=3600, background=True)
    when = pd.Timestamp("2025-06-01 12:00", tz="UTC").to_pydatetime()
    took = []
    for i in range(requests):
        t = time.perf_counter()
        log.append(frames[i % len(frames)], when)
        took.append(time.perf_counter() - t)
    t = time.perf_counter()
    log.close()
    last_flush = time.perf_counter() - t
    ms = np.array(took) * 1000
    parts = list(settings.home.rglob("part-*.parquet"))
    return {"append_p50_ms": round(float(np.percentile(ms, 50)), 3),
            "append_p99_ms": round(float(np.percentile(ms, 99)), 3),
            "append_max_ms": round(float(ms.max()), 1),
            "final_flush_ms": round(last_flush * 1000, 1), "log_parts": len(parts),
            "log_rows": requests * candidates,
            "log_mb": round(sum(p.stat().st_size for p in parts) / 2**20, 2)}


def bench_drift(settings: Settings, rows_per_day: int, days: int) -> dict[str, float]:
    """Time of one drift report over ``days`` daily snapshots of every batch view."""
    t = time.perf_counter()
    last = write_snapshots(settings, CONTRACT, days, rows_per_day)
    written = time.perf_counter() - t
    interval = resolve(last.to_pydatetime(), (last + pd.Timedelta(days=1)).to_pydatetime())
    t = time.perf_counter()
    report = drift_report(settings, CONTRACT, interval)
    return {"snapshot_write_s": round(written, 2),
            "snapshot_rows": rows_per_day * days * len(CONTRACT.views),
            "drift_s": round(time.perf_counter() - t, 2), "drift_metrics": len(report.metrics)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=15)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    try:
        settings = Settings(home=home)
        figures = {**bench_append(settings, args.requests, args.candidates),
                   **bench_drift(settings, args.rows_per_day, args.days),
                   "load_avg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
    finally:
        shutil.rmtree(home, ignore_errors=True)
    width = max(map(len, figures))
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")
    print(json.dumps({"bench": "monitoring", **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
