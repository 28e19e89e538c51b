"""Evaluate every recall source and their merge on generated and real data; time swing at 1M.

    python benchmarks/eval_recall.py                          # all datasets found, swing at 1M
    python benchmarks/eval_recall.py --datasets beauty --swing-events 0
    python benchmarks/eval_recall.py --data /path/to/data --out /tmp/eval

Datasets (``--datasets``, comma separated):

* ``generated`` — the committed event store of ``--home`` (default ``$SHOPREC_HOME``) when it has
  events, else a fresh ``shoprec.generator`` run of ``--preset``; evaluated leave-last-out and
  with a time split (last 10% of the time span);
* ``beauty`` — Amazon Beauty (S3-Rec files) under ``--data``: leave-last-out, full ranking over
  all items, history excluded;
* ``ml100k`` — MovieLens-100K under ``--data``, TFRS basic-retrieval protocol: random 80/20
  split of ratings (seed 42), top-100 accuracy over all movies, with and without excluding the
  movies a user already rated.

Sources (``--sources``) default to every one of :data:`training.recall_eval_run.SOURCE_NAMES`,
including four two-tower variants (id-only; + uniform random negatives; + pooled item history;
multi-interest), so the report states the random-negatives and multi-interest differences
measured in the same run. They make it long: on 2 loaded cores, Amazon Beauty with all of them
takes over an hour (MovieLens-100K: 43 minutes at load ~10).

A real dataset that is missing is reported as missing (terminal, JSON and HTML) — never replaced.
Writes ``recall_eval.json`` and ``recall_eval.html`` under ``--out`` (default
``$SHOPREC_HOME/reports/eval``) and prints the table.
"""

from __future__ import annotations

import argparse
import functools
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shoprec.settings import Settings
from training.graph_embedding import GraphEmbeddingConfig
from training.recall_datasets import (
    Interactions,
    from_frame,
    generate_interactions,
    load_beauty,
    load_event_store,
    load_movielens,
)
from training.recall_eval import leave_last_out, random_split, time_split
from training.recall_eval_report import format_table, write_html, write_json
from training.recall_eval_run import SOURCE_NAMES, run_protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("generated", "beauty", "ml100k")


def synthetic_interactions(n_events: int, seed: int = 0,
                           n_items: int | None = None) -> Interactions:
    """Power-law shop interactions for timing: Zipf item popularity, lognormal user activity.

    Users have 3 favourite categories (80% of their items); items within a category are drawn
    by popularity. ≈ 20 events per user; ``n_items`` defaults to one item per 20 events (fewer
    items = denser co-occurrence = more swing work).
    """
    rng = np.random.default_rng(seed)
    n_users, n_cats = max(10, n_events // 20), 200
    n_items = max(n_cats, n_items or n_events // 20)
    item_cat = rng.integers(0, n_cats, n_items)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    rng.shuffle(pop)
    activity = rng.lognormal(0, 1, n_users)
    user = rng.choice(n_users, n_events, p=activity / activity.sum())
    fav = rng.integers(0, n_cats, (n_users, 3))
    by_cat = [np.flatnonzero(item_cat == c) for c in range(n_cats)]
    cdfs = [np.cumsum(pop[ix]) for ix in by_cat]
    cat = np.where(rng.random(n_events) < 0.8, fav[user, rng.integers(0, 3, n_events)],
                   rng.integers(0, n_cats, n_events))
    item = np.empty(n_events, dtype=np.int64)
    for c in range(n_cats):
        sel = np.flatnonzero(cat == c)
        pos = np.searchsorted(cdfs[c], rng.random(len(sel)) * cdfs[c][-1], side="right")
        item[sel] = by_cat[c][np.minimum(pos, len(by_cat[c]) - 1)]
    import pandas as pd

    frame = pd.DataFrame({"user_id": user, "item_id": item,
                          "ts": rng.integers(0, 30 * 86_400, n_events)})
    items = pd.DataFrame({"item_id": np.arange(n_items), "category_id": item_cat})
    return from_frame("synthetic", frame, items=items)


def swing_timing(n_events: int, n_items: int | None = None) -> dict[str, object]:
    """Seconds to build the capped matrix and swing (+ item-CF) neighbours on ``n_events``."""
    import resource

    from training.recall_itemcf import fit_itemcf
    from training.recall_swing import fit_swing

    data = synthetic_interactions(n_events, n_items=n_items)
    out: dict[str, object] = {"events": len(data), "users": data.n_users, "items": data.n_items}
    for name, fit in (("swing", fit_swing), ("itemcf", fit_itemcf)):
        start = time.perf_counter()
        model = fit(data)
        out[f"{name}_fit_seconds"] = round(time.perf_counter() - start, 2)
        out[f"{name}_neighbour_pairs"] = int(model.sim.nnz)
        users = np.arange(data.n_users)
        start = time.perf_counter()
        model.recommend(data, users, 100)
        out[f"{name}_recommend_all_users_seconds"] = round(time.perf_counter() - start, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def _generated(args: argparse.Namespace, settings: Settings) -> Interactions:
    try:
        return load_event_store(settings)
    except FileNotFoundError as exc:
        from shoprec.cli import PRESETS
        from shoprec.generator import GeneratorConfig

        print(f"  {exc}\n  -> generating preset {args.preset!r} on the fly")
        return generate_interactions(GeneratorConfig(**PRESETS[args.preset], seed=settings.seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated subset of {DATASETS}")
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"),
                        help="folder with amazon_beauty/ and movielens-100k/")
    parser.add_argument("--home", help="SHOPREC_HOME with an event store (default: env)")
    parser.add_argument("--preset", default="default", help="generator preset if no store")
    parser.add_argument("--out", help="report folder (default $SHOPREC_HOME/reports/eval)")
    parser.add_argument("--sources", default=",".join(SOURCE_NAMES))
    parser.add_argument("--eges-epochs", type=int, default=GraphEmbeddingConfig.epochs)
    parser.add_argument("--eges-walks", type=int, default=GraphEmbeddingConfig.walks_per_node)
    parser.add_argument("--swing-events", type=int, default=1_000_000,
                        help="time swing on this many synthetic events (0 = skip)")
    parser.add_argument("--swing-items", type=int, default=5_000,
                        help="catalogue size of the swing timing data (fewer = denser)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.home:
        settings = settings.with_home(Path(args.home))
    out = Path(args.out) if args.out else settings.reports_dir / "eval"
    wanted = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(wanted) - set(DATASETS))
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {DATASETS}")
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    bad = sorted(set(sources) - set(SOURCE_NAMES))
    if bad:
        parser.error(f"unknown source(s) {bad}; choose from {SOURCE_NAMES}")
    eges = replace(GraphEmbeddingConfig(), epochs=args.eges_epochs, walks_per_node=args.eges_walks)
    run = functools.partial(run_protocol, sources=sources, eges=eges)
    results, missing = [], {}
    started = time.perf_counter()
    for name in wanted:
        print(f"[{name}]")
        try:
            if name == "generated":
                data = _generated(args, settings)
                results.append(run(data, leave_last_out))
                results.append(run(data, functools.partial(time_split, holdout=0.1)))
            elif name == "beauty":
                results.append(run(load_beauty(Path(args.data)), leave_last_out))
            else:
                results.append(run(load_movielens(Path(args.data)),
                                   functools.partial(random_split, test_fraction=0.2, seed=42),
                                   excludes=(False, True), target="accuracy@100"))
        except FileNotFoundError as exc:
            missing[name] = str(exc)
            print(f"  MISSING: {exc}")
    timing = None
    if args.swing_events > 0:
        print(f"[swing timing on {args.swing_events:,} synthetic events]")
        timing = swing_timing(args.swing_events, args.swing_items)
        print("  " + ", ".join(f"{k}={v}" for k, v in timing.items()))
    payload = {"created_at": datetime.now(UTC).isoformat(), "results": results,
               "missing": missing, "swing_timing": timing,
               "total_seconds": round(time.perf_counter() - started, 1),
               "notes": "recall@K = mean per-user share of held-out items in the top K; "
                        "accuracy@K = pair-weighted (TFRS top-K accuracy); merge tuned on a "
                        "validation split carved from the training side"}
    print(format_table(results))
    for name, reason in missing.items():
        print(f"{name}: MISSING — {reason}")
    print(f"json: {write_json(out / 'recall_eval.json', payload)}")
    print(f"html: {write_html(out / 'recall_eval.html', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
