"""Benchmark the features stage on a synthetic funnel log: snapshots, apply, materialize, sets.

    python benchmarks/bench_features.py                    # ~1M events, 20k users, 60 days
    python benchmarks/bench_features.py --events 200000 --days 14

Everything runs in a temporary SHOPREC_HOME (real Parquet, real Feast registry and sqlite).
Prints a table, then one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from shoprec.contract import CONTRACT
from shoprec.settings import Settings
from tests.data.feature_fixtures import synthetic_log, write_event_store, write_tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--skip-sets", action="store_true", help="stop after materialize")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-features-"))
    figures: dict[str, float | int] = {}
    try:
        settings = Settings(home=home)
        events, items, users = synthetic_log(args.events, args.users, args.items, args.days)
        write_event_store(settings, events)
        write_tables(settings, items, users)
        figures["events"] = len(events)

        from feature_repo import build, store, training_set

        t = time.perf_counter()
        paths = build.build_snapshots(settings, CONTRACT)
        figures["build_s"] = round(time.perf_counter() - t, 2)
        import pandas as pd

        figures["snapshot_rows"] = sum(len(pd.read_parquet(p, columns=[CONTRACT.timestamp_field]))
                                       for p in paths.values())
        t = time.perf_counter()
        store.apply(settings, CONTRACT)  # includes the one-off Feast import
        figures["apply_s"] = round(time.perf_counter() - t, 2)
        fs = store.open_store(settings)
        t = time.perf_counter()
        mat = store.materialize(settings, fs, CONTRACT)
        figures["materialize_s"] = round(time.perf_counter() - t, 2)
        figures["materialized_rows"] = sum(v["rows"] for v in mat.values())
        if not args.skip_sets:
            t = time.perf_counter()
            out = training_set.build_training_sets(settings, CONTRACT, fs)
            figures["training_sets_s"] = round(time.perf_counter() - t, 2)
            for name in training_set.DATASETS:
                figures[f"{name}_rows"] = out["summary"][name]["rows"]
                for svc, counts in out["summary"][name]["services"].items():
                    figures[f"hist_{svc}_s"] = counts["seconds"]
                    figures[f"hist_{svc}_dropped"] = counts["dropped_refilled"]
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    finally:
        shutil.rmtree(home, ignore_errors=True)
    width = max(map(len, figures))
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")
    print(json.dumps({"bench": "features", **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
