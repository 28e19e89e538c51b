"""Benchmark materialization: 1,000,000 synthetic entity rows into sqlite and into Redis.

    python benchmarks/bench_materialize.py                   # 1M rows, sqlite and redis
    python benchmarks/bench_materialize.py --rows 20000 --writer feast   # Feast's own path

The rows are synthetic snapshot rows of every contract view (one snapshot day, one row per
entity, the rows split evenly over the views; values drawn per contract dtype, 2% nulls,
string features of kind ``sequence`` as space-separated id lists up to ``max_len``), written as
the ``features/<view>.parquet`` files the Feast views read. Each store is loaded by
``feature_repo.store.materialize`` (bulk writer by default) in its own child process, so the
peak RSS reported is that store's alone; the child then reads 50 entities per view back with
Feast's ``get_online_features`` and compares them with the Parquet rows. Redis is a
throw-away ``redis-server`` started like the test fixture (installed with apt-get if missing);
if it cannot be started the Redis figures say so and the sqlite ones still count.
Target: each store within 60 s. Prints a table, then ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = pd.Timestamp("2025-01-02", tz="UTC")
TARGET_S = 60.0


def synthetic_view(contract, view: str, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """``rows`` snapshot rows of ``view`` with plausible values of each feature's dtype."""
    spec = contract.view(view)
    frame = pd.DataFrame({contract.entity(spec.entity).join_key: np.arange(rows, dtype=np.int64)})
    for f in contract.view_features(view):
        missing = rng.random(rows) < 0.02
        if f.kind == "sequence":  # stored encoded (shoprec.sequences), whatever the element
            ids = rng.integers(0, 10_000, (rows, max(f.max_len, 1))).astype(str)
            lengths = rng.integers(0, max(f.max_len, 1) + 1, rows)
            col = pd.array([" ".join(r[:n]) for r, n in zip(ids, lengths, strict=True)],
                           dtype="string")
        elif f.dtype == "int64":
            col = pd.array(rng.integers(0, max(f.vocab_size, 100), rows), dtype="Int64")
        elif f.dtype == "float64":
            col = pd.array(rng.random(rows) * 100.0, dtype="Float64")
        else:
            col = pd.array(rng.integers(0, 100, rows).astype(str), dtype="string")
        col[missing] = pd.NA
        frame[f.name] = col
    frame[contract.timestamp_field] = SNAPSHOT
    return frame


def even_split(contract, rows: int) -> dict[str, int]:
    """``rows`` split evenly over the contract's batch views."""
    views = [v.name for v in contract.views]
    return {v: rows // len(views) + (i < rows % len(views)) for i, v in enumerate(views)}


def write_snapshots(settings, contract, counts: dict[str, int], seed: int = 7) -> dict[str, int]:
    """Write ``counts[view]`` synthetic rows per view as its Parquet file; returns ``counts``."""
    rng = np.random.default_rng(seed)
    settings.features_dir.mkdir(parents=True, exist_ok=True)
    for view, n in counts.items():
        synthetic_view(contract, view, n, rng).to_parquet(
            settings.features_dir / f"{view}.parquet", index=False)
    return counts


def _plain(value):
    """Nulls as None, numbers rounded: online and Parquet values compare equal."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, str) else round(float(value), 9)


def _cpu_s() -> float:
    """CPU seconds of this process so far (all threads): less sensitive to a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(home: Path, kind: str, redis: str, writer: str) -> dict:
    """Apply + materialize one store (run in a child process); also spot-checks values."""
    from feature_repo import store as fstore
    from shoprec.settings import Settings

    settings = Settings(home=home, online_store=kind, redis=redis)
    contract = settings.load_contract()
    t0 = time.perf_counter()
    fstore.apply(settings, contract)
    store = fstore.open_store(settings)
    apply_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), _cpu_s()
    result = fstore.materialize(settings, store, contract, writer=writer)
    seconds, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    rows = sum(r["rows"] for r in result.values())
    checked = 0
    for spec in contract.views:  # read 50 entities back and compare with the Parquet rows
        names = [f.name for f in contract.view_features(spec.name)]
        key = contract.entity(spec.entity).join_key
        want = pd.read_parquet(settings.features_dir / f"{spec.name}.parquet",
                               columns=[key, *names])
        want = want.iloc[::max(1, len(want) // 50)].head(50).astype(object)
        got = store.get_online_features(features=[f"{spec.name}:{n}" for n in names],
                                        entity_rows=want[[key]].to_dict("records")).to_df()
        for name in [key, *names]:
            g, w = [_plain(v) for v in got[name]], [_plain(v) for v in want[name]]
            assert g == w, (name, [(a, b) for a, b in zip(g, w, strict=True) if a != b][:2])
        checked += len(want)
    return {"rows": rows, "writer": sorted({r.get("writer", "") for r in result.values()}),
            "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "cpu_s": round(cpu, 2),
            "apply_s": round(apply_s, 2), "checked_rows": checked,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "within_target": seconds <= TARGET_S}


def run_worker(home: Path, kind: str, redis: str, writer: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", kind, "--home", str(home),
                           "--redis", redis, "--writer", writer], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    return figures


def redis_memory(address: str) -> float:
    import redis

    host, port = address.split(",")[0].rsplit(":", 1)
    return round(redis.Redis(host=host, port=int(port)).info("memory")["used_memory"] / 2**20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="entity rows in total")
    parser.add_argument("--stores", default="sqlite,redis", help="comma-separated store kinds")
    parser.add_argument("--writer", default="auto", choices=["auto", "bulk", "feast"],
                        help="materialize path (auto: the bulk writer for sqlite and redis)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--redis", default="localhost:6379", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("FEAST_USAGE", "False")
    if args.worker:
        print(json.dumps(worker(Path(args.home), args.worker, args.redis, args.writer)))
        return 0

    from shoprec.settings import Settings
    from tests.data.redis_fixture import running_redis

    work = Path(tempfile.mkdtemp(prefix="bench-materialize-"))
    figures: dict = {"rows": args.rows, "target_s": TARGET_S, "writer": args.writer}
    try:
        shared = Settings(home=work / "snapshots")
        contract = shared.load_contract()
        t0 = time.perf_counter()
        figures["rows_per_view"] = write_snapshots(shared, contract,
                                                   even_split(contract, args.rows))
        figures["write_parquet_s"] = round(time.perf_counter() - t0, 1)
        for kind in args.stores.split(","):
            home = work / kind
            home.mkdir()
            (home / "features").symlink_to(shared.features_dir, target_is_directory=True)
            if kind != "redis":
                figures[kind] = run_worker(home, kind, "localhost:6379", args.writer)
                continue
            try:
                with running_redis(work / "redis-server") as address:
                    figures[kind] = run_worker(home, kind, address, args.writer)
                    figures[kind]["redis_used_memory_mb"] = redis_memory(address)
            except RuntimeError as err:  # no redis-server and no way to install it
                figures[kind] = {"skipped": f"redis-server could not be started: {err}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{'store':8} {'rows':>9} {'seconds':>8} {'cpu s':>6} {'rows/s':>8} "
          f"{'peak RSS MB':>12}  target")
    for kind in args.stores.split(","):
        r = figures[kind]
        if "seconds" in r:
            print(f"{kind:8} {r['rows']:>9} {r['seconds']:>8} {r['cpu_s']:>6} {r['rows_per_s']:>8} "
                  f"{r['peak_rss_mb']:>12}  {'ok' if r['within_target'] else 'OVER'}")
        else:
            print(f"{kind:8} {r}")
    print(f"load average: {' '.join(figures['loadavg'])}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
