"""Benchmark ingestion: a generated Taobao-format CSV through stage → GX gate → commit.

    python benchmarks/bench_ingest.py                    # 10,000,000 rows (default)
    python benchmarks/bench_ingest.py --rows 1000000     # a smaller run
    python benchmarks/bench_ingest.py --real             # the real files in ../shared/data
    python benchmarks/bench_ingest.py --real --data /path/to/data

The synthetic file (UserBehavior layout, Unix seconds over nine days of late 2017, behaviours
in Taobao's proportions) is written in a temporary folder by a child process, so the peak RSS
reported is that of the ingest alone; the folder is deleted afterwards. The ingest is the real
path, GX included: :func:`validation.run.run_batch` (stage in chunks → validate chunk by chunk
→ commit through per-day spill files). Prints a table, then ONE JSON line.

``--real`` ingests ``amazon_beauty`` (Beauty.txt + Beauty_item2attributes.json) and
``movielens-100k`` (u.data + u.item + u.user) through their adapters into temporary homes and
reports rows, users, items and quarantined rows. These files are never used by the tests.
"""

from __future__ import annotations

import argparse
import json
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
START = 1_511_568_000  # 2017-11-25T00:00:00Z, first day of the public UserBehavior dump
BEHAVIORS = np.array(["pv", "cart", "fav", "buy"])
SHARES = [0.895, 0.055, 0.030, 0.020]


def generate(path: Path, rows: int, seed: int = 7, block: int = 1_000_000) -> None:
    """Write ``rows`` UserBehavior lines in blocks (bounded memory)."""
    rng = np.random.default_rng(seed)
    users, items, categories = max(1, rows // 100), max(1, rows // 25), 9439
    with open(path, "w") as f:
        for lo in range(0, rows, block):
            n = min(block, rows - lo)
            item = rng.integers(1, items + 1, n)
            frame = pd.DataFrame({
                "u": rng.integers(1, users + 1, n), "i": item, "c": item % categories + 1,
                "b": BEHAVIORS[rng.choice(4, n, p=SHARES)],
                "t": START + rng.integers(0, 9 * 86400, n)})
            frame.to_csv(f, header=False, index=False)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(rows: int, chunk_rows: int) -> dict:
    from shoprec.settings import Settings
    from validation.run import run_batch

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        path = work / "UserBehavior.csv"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(path), "--rows", str(rows)],
                       check=True, cwd=REPO)
        gen_s = time.perf_counter() - t0
        marks: list[float] = []  # when stage, validation and commit reported
        start = time.perf_counter()

        def log(_text: str) -> None:
            marks.append(time.perf_counter())

        run = run_batch([path], Settings(home=work / "home"), "bench", fmt="taobao",
                        now=pd.Timestamp("2017-12-04T00:00:00Z"), chunk_rows=chunk_rows, log=log)
        total = time.perf_counter() - start
        times = np.diff([start, *marks[:3]])
        return {"rows": rows, "file_mb": round(path.stat().st_size / 2**20, 1),
                "generate_s": round(gen_s, 1), "stage_s": round(times[0], 1),
                "validate_s": round(times[1], 1), "commit_s": round(times[2], 1),
                "total_s": round(total, 1), "rows_per_s": round(rows / total),
                "peak_rss_mb": round(_rss_mb()), "stored": run.ledger["stored"],
                "duplicates": run.ledger["duplicates"],
                "quarantined": run.ledger["quarantined_ingest"]
                + run.ledger["quarantined_validation"],
                "balanced": run.ledger["balanced"], "chunk_rows": chunk_rows}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def real(data: Path) -> dict:
    from shoprec.ingest import read_events
    from shoprec.settings import Settings
    from validation.run import run_batch

    sets = {"amazon_beauty": ("amazon-seq", ["Beauty.txt", "Beauty_item2attributes.json"]),
            "movielens-100k": ("movielens", ["u.data", "u.item", "u.user"])}
    missing = [str(data / d / f) for d, (_, fs) in sets.items() for f in fs
               if not (data / d / f).is_file()]
    if missing:
        raise SystemExit(f"real data not found: {', '.join(missing)}\n(pass --data FOLDER "
                         "holding amazon_beauty/ and movielens-100k/)")
    out = {}
    for name, (fmt, _files) in sets.items():
        work = Path(tempfile.mkdtemp(prefix=f"bench-real-{name}-"))
        try:
            settings = Settings(home=work / "home")
            t0 = time.perf_counter()
            # the whole folder, as the pipeline passes it: the adapter picks its files by name
            folder = sorted(p for p in (data / name).iterdir() if p.is_file())
            run = run_batch(folder, settings, "real", fmt=fmt)
            events = read_events(settings, columns=["user_id", "item_id"])
            tables = run.stage.tables
            out[name] = {
                "format": fmt, "rows": run.ledger["read"], "stored": run.ledger["stored"],
                "duplicates": run.ledger["duplicates"],
                "quarantined": run.ledger["quarantined_ingest"]
                + run.ledger["quarantined_validation"],
                "users": int(events["user_id"].nunique()),
                "items": int(events["item_id"].nunique()),
                "item_table_rows": tables["items"]["rows"],
                "user_table_rows": tables["users"]["rows"],
                "table_quarantined": sum(t["quarantined"] for t in tables.values()),
                "first_event": str(read_events(settings, columns=["event_ts"])["event_ts"].min()),
                "seconds": round(time.perf_counter() - t0, 1),
                "balanced": run.ledger["balanced"], "notes": run.stage.notes}
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--real", action="store_true", help="ingest the real data sets instead")
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:
        generate(args.generate, args.rows)
        return 0
    if args.real:
        result = real(args.data.resolve())
        print(f"{'data set':<16}{'rows':>9}{'stored':>9}{'users':>8}{'items':>8}"
              f"{'quarant.':>9}{'seconds':>9}")
        for name, r in result.items():
            print(f"{name:<16}{r['rows']:>9}{r['stored']:>9}{r['users']:>8}{r['items']:>8}"
                  f"{r['quarantined']:>9}{r['seconds']:>9}")
        print(json.dumps({"benchmark": "ingest_real", **result}))
        return 0
    r = synthetic(args.rows, args.chunk_rows)
    for key, value in r.items():
        print(f"{key:<14}{value:>14}")
    print(json.dumps({"benchmark": "ingest_taobao", **r}))
    return 0 if r["peak_rss_mb"] < 2048 and r["balanced"] else 1


if __name__ == "__main__":
    sys.exit(main())
