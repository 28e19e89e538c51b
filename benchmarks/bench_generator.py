"""Benchmark the synthetic data generator: events/s and peak memory at a target scale.

    python benchmarks/bench_generator.py                      # ~1M events (default preset shape)
    python benchmarks/bench_generator.py --events 10000000    # 10M events
    python benchmarks/bench_generator.py --preset large       # a preset exactly as defined

With ``--events`` the preset's user/item/shop counts are scaled so the run lands near the target:
a pilot run of the unscaled preset measures events per user first. Prints a table, then one JSON
line with the figures (for CI logs and comparisons).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from shoprec.cli import PRESETS
from shoprec.generator import GeneratorConfig, generate


def scaled_config(preset: str, events: int | None, pilot_dir: Path) -> GeneratorConfig:
    base = GeneratorConfig(**PRESETS[preset])
    if events is None:
        return base
    per_user = generate(base, pilot_dir)["total_events"] / base.n_users
    factor = events / per_user / base.n_users
    n_items = max(base.n_categories, round(base.n_items * factor))
    return GeneratorConfig(**{**PRESETS[preset], "n_users": max(1, round(base.n_users * factor)),
                              "n_items": n_items,
                              "n_shops": max(1, round(base.n_shops * factor))})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--events", type=int, default=None,
                        help="target event count (default 1,000,000 unless --preset is given)")
    parser.add_argument("--out", help="keep the landing files here (default: a temp folder)")
    args = parser.parse_args(argv)
    target = args.events if args.events is not None else (
        None if "--preset" in (argv if argv is not None else sys.argv[1:]) else 1_000_000)

    work = Path(tempfile.mkdtemp(prefix="bench-generator-"))
    try:
        config = scaled_config(args.preset, target, work / "pilot")
        shutil.rmtree(work / "pilot", ignore_errors=True)
        out = Path(args.out) if args.out else work / "landing"
        start = time.perf_counter()
        summary = generate(config, out)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "bench": "generator", "preset": args.preset, "target_events": target,
        "events": summary["total_events"], "users": config.n_users, "items": config.n_items,
        "days": config.days, "seconds": round(seconds, 3),
        "events_per_s": round(summary["total_events"] / seconds),
        "peak_rss_mb": round(peak_mb, 1), "parquet_mb": round(size / 2**20, 1),
    }
    rows = [("preset", args.preset), ("users / items / days",
                                      f"{config.n_users} / {config.n_items} / {config.days}"),
            ("events", f"{figures['events']:,}"), ("seconds", f"{seconds:.2f}"),
            ("events/s", f"{figures['events_per_s']:,}"), ("peak RSS", f"{peak_mb:,.0f} MB"),
            ("parquet size", f"{figures['parquet_mb']} MB")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
