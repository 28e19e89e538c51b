"""Benchmark online reads: 1 user + 500 items through the ranking FeatureService.

    python benchmarks/bench_online_read.py                  # 300 reads per store
    python benchmarks/bench_online_read.py --reads 1000 --stores redis

This is the read a ``/recommend`` request makes after recall: one user's features and 500
candidate items' features in one ``get_online_features`` call of the ranker FeatureService.
Synthetic snapshots (``--users`` users, ``--items`` items, written like
``bench_materialize.py``) are materialized into sqlite and into a throw-away ``redis-server``
(started like the test fixture; the Redis figures say so if it cannot be started). Each read
asks for a different user and 500 random items. Two timings per read: Feast's
``get_online_features`` alone, and ``feature_repo.store.online_features`` (what serving gets:
defaults filled, contract dtypes). Prints a table, then ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_materialize import write_snapshots


def percentiles(ms: list[float]) -> dict[str, float]:
    arr = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 2),
            "p99_ms": round(float(np.percentile(arr, 99)), 2),
            "mean_ms": round(float(arr.mean()), 2)}


def measure(settings, contract, reads: int, users: int, items: int, candidates: int) -> dict:
    """Materialize, warm up, then time ``reads`` ranker reads of 1 user + ``candidates`` items."""
    from feature_repo import store as fstore
    from serving.recommender import request_values
    from shoprec.contract import DEVICES, RANKER

    fstore.apply(settings, contract)
    store = fstore.open_store(settings)
    fstore.materialize(settings, store, contract)
    service = store.get_feature_service(RANKER)
    keys = {e.name: e.join_key for e in contract.service_entities(RANKER)}
    rng = np.random.default_rng(11)
    raw_ms, served_ms = [], []
    for i in range(reads + 10):  # the first 10 warm caches and connections
        frame = pd.DataFrame({keys["user"]: np.int64(rng.integers(0, users)),
                              keys["item"]: rng.choice(items, candidates, replace=False)})
        for name, value in request_values(contract, {
                "event_ts": pd.Timestamp.now(tz="UTC"), "device": DEVICES[i % len(DEVICES)]}
                ).items():  # what a live /recommend passes to the on-demand view
            frame[name] = value
        rows = frame.to_dict("records")
        t0 = time.perf_counter()
        got = store.get_online_features(features=service, entity_rows=rows).to_df()
        t1 = time.perf_counter()
        served = fstore.online_features(store, contract, RANKER, frame)
        t2 = time.perf_counter()
        assert len(got) == len(served) == candidates
        if i >= 10:
            raw_ms.append((t1 - t0) * 1000)
            served_ms.append((t2 - t1) * 1000)
    return {"reads": reads, "feast": percentiles(raw_ms), "served": percentiles(served_ms)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=300, help="timed reads per store (>=200)")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--candidates", type=int, default=500, help="items per read")
    parser.add_argument("--stores", default="sqlite,redis", help="comma-separated store kinds")
    args = parser.parse_args(argv)
    os.environ.setdefault("FEAST_USAGE", "False")
    from shoprec.settings import Settings
    from tests.data.redis_fixture import running_redis

    work = Path(tempfile.mkdtemp(prefix="bench-online-read-"))
    figures: dict = {"candidates": args.candidates, "users": args.users, "items": args.items}
    try:
        shared = Settings(home=work / "snapshots")
        contract = shared.load_contract()
        write_snapshots(shared, contract, {v.name: args.users if v.entity == "user"
                                           else args.items for v in contract.views})
        for kind in args.stores.split(","):
            home = work / kind
            home.mkdir()
            (home / "features").symlink_to(shared.features_dir, target_is_directory=True)
            if kind != "redis":
                figures[kind] = measure(Settings(home=home), contract, args.reads,
                                        args.users, args.items, args.candidates)
                continue
            try:
                with running_redis(work / "redis-server") as address:
                    settings = Settings(home=home, online_store="redis", redis=address)
                    figures[kind] = measure(settings, contract, args.reads, args.users,
                                            args.items, args.candidates)
            except RuntimeError as err:  # no redis-server and no way to install it
                figures[kind] = {"skipped": f"redis-server could not be started: {err}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{'store':8} {'timing':8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}   "
          f"(1 user + {args.candidates} items, {args.reads} reads)")
    for kind in args.stores.split(","):
        for timing in ("feast", "served"):
            r = figures[kind].get(timing)
            if r is None:
                print(f"{kind:8} {figures[kind]}")
                break
            print(f"{kind:8} {timing:8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['mean_ms']:>8}")
    print(f"load average: {' '.join(figures['loadavg'])}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
