"""Benchmark the ranker zoo against GBDT / logistic regression on generated and real data.

    python benchmarks/bench_rankers.py                 # quick (a few minutes): W&D vs DIN
    python benchmarks/bench_rankers.py --full          # every model, full data and grid (hours)
    python benchmarks/bench_rankers.py --models wide_deep,din,dien --skip-real

Datasets (``training.ranker_sets``):

(a) Synthetic: ``shoprec.generator`` (its planted short-term sequence effect included) through
    the real platform path in a temporary SHOPREC_HOME: ingest + GX gate → feature snapshots →
    ``feast apply`` → point-in-time training set (the online store is not materialised: nothing
    here reads it). Split by time: train | validation (10% of the span, selection and early
    stopping) | test (last 10%, reported).
(b) Amazon Beauty from ``--data``: ingested with the ``amazon-seq`` source, the same features,
    negatives sampled by ``training.negatives`` (k per positive, popularity^alpha from training
    positives, the user's own items excluded); leave-last-out by time: each user's last item is
    test, the second last validation. Missing data is reported as skipped, never replaced.
(c) Throughput on this machine's 2 cores: the pure train step on in-memory batches vs the
    streaming fit over the same rows, both fitted as training does (a repeated stream, two
    passes per fit(), reading the stream cache filled before training); ratio =
    in-memory time / streaming time >= 0.9: the input pipeline is not the bottleneck
    (``training.ranker_compare.throughput``).

Prints tables, then one JSON line. Timings are taken under whatever load the machine has; the
load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BEAUTY = ("Beauty.txt", "Beauty_item2attributes.json")
"""The Amazon Beauty files (``training.ranker_sets.BEAUTY``; kept here: no import at load)."""
QUICK_PRESET = {"n_users": 800, "days": 8}
"""Generator scale of the default (quick) run: the planted effects, on less traffic."""
QUICK_USERS = 1000
"""Beauty users of the quick run (the first ones of the file)."""
QUICK_MODELS = ("wide_deep", "din")
"""The quick run's pair: the baseline and the sequence model the acceptance compares."""
QUICK_THROUGHPUT_ROWS = 20_000


def QUICK_BUDGET() -> Any:  # noqa: N802 - a constant, built lazily (no TF-side import at load)
    """One config per family, <= 3 epochs: enough to see the ordering, not to tune."""
    from training.ranker_compare import Budget

    return Budget(epochs=3, learning_rates=(3e-3,), gbdt_grid=({"learning_rate": 0.1},),
                  lr_grid=({"C": 1.0},))


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def synthetic_set(home: Path, quick: bool, log: Any) -> tuple[Any, dict[str, Any]]:
    from training.ranker_sets import synthetic_set as build

    return build(home, QUICK_PRESET if quick else {}, log)


def time_splits(path: Path) -> Any:
    from training.ranker_sets import time_splits as split

    return split(path)


def leave_last_out(path: Path) -> Any:
    from training.ranker_sets import leave_last_out as split

    return split(path)


def amazon_set(*args: Any) -> tuple[Any, dict[str, Any]]:
    from training.ranker_sets import amazon_set as build

    return build(*args)


def compare(splits: Any, models: list[str], budget: Any, out: Path, seed: int,
            log: Any) -> list[dict[str, Any]]:
    from shoprec.contract import CONTRACT
    from training.dcn import ranker_inputs
    from training.ranker_compare import baseline_rows, neural_row
    from training.ranker_data import task_label_columns
    from training.rankers import default_tasks

    specs = ranker_inputs(CONTRACT)
    rows = []
    for name in models:
        labels = task_label_columns(CONTRACT, default_tasks(name))
        rows.append(neural_row(name, splits, specs, labels, budget, out, seed, log))
    return rows + baseline_rows(splits, specs, task_label_columns(CONTRACT, ("ctr",)), budget,
                                seed, log)


def table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}\n{'model':<12} {'AUC':>7} {'GAUC':>7} {'logloss':>8} {'cvr AUC':>8} "
          f"{'val AUC':>8} {'ep':>3} {'train s':>8}")
    for r in rows:
        ctr, cvr = r["test"]["ctr"], r["test"].get("cvr", {})
        val = f"{r['val_auc']:.4f}" if "val_auc" in r else "-"
        print(f"{r['model']:<12} {ctr['auc']:7.4f} {ctr['gauc']:7.4f} {ctr['logloss']:8.4f} "
              f"{cvr.get('auc', float('nan')):8.4f} {val:>8} {r.get('best_epoch', '-'):>3} "
              f"{r['train_seconds']:8.1f}")


def main(argv: list[str] | None = None) -> int:
    from dataclasses import replace

    from training.rankers import RANKERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="the acceptance run: full data, every model, the 2-config grid "
                             "(default: quick, see QUICK_* in this file)")
    parser.add_argument("--quick", action="store_true",
                        help="the default; kept so that explicit calls keep working")
    parser.add_argument("--models", help="comma-separated zoo names (default: all with --full, "
                                          f"{','.join(QUICK_MODELS)} otherwise)")
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--amazon-users", type=int, help="first N Beauty users (default: all "
                                                         f"with --full, {QUICK_USERS} otherwise)")
    parser.add_argument("--negatives", type=int, default=4, help="negatives per positive")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--synthetic-set", type=Path,
                        help="use this ranker training set (built earlier) for (a) and (c) "
                             "instead of generating one")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--real-set", type=Path,
                        help="use this Beauty ranker set (built earlier by this script) for (b)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--throughput-rows", type=int,
                        help="rows of the timed epoch (default: the whole train window; "
                             "--quick: 30000)")
    parser.add_argument("--epochs", type=int, help="override the budget's most epochs")
    parser.add_argument("--lrs", help="override the budget's learning-rate grid, e.g. 0.003")
    parser.add_argument("--attention-pooling", choices=("sum", "softmax"),
                        help="DIN/DMR attention pooling (default: RankerConfig's)")
    parser.add_argument("--attention-positions", type=int,
                        help="width of the DIN/DMR recency embedding, 0 = none (default: "
                             "RankerConfig's)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.full and args.quick:
        parser.error("--full and --quick exclude each other")
    args.quick = not args.full
    from training.ranker_compare import Budget, gauc_margin

    models = [m for m in (args.models or ",".join(QUICK_MODELS if args.quick else RANKERS))
              .split(",") if m]
    unknown = sorted(set(models) - set(RANKERS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {list(RANKERS)}")
    budget = QUICK_BUDGET() if args.quick else Budget()
    if args.epochs:
        budget = replace(budget, epochs=args.epochs)
    overrides = {"attention_pooling": args.attention_pooling,
                 "attention_positions": args.attention_positions}
    if any(v is not None for v in overrides.values()):  # for every neural ranker alike
        budget = replace(budget, ranker_overrides=tuple(
            (k, v) for k, v in overrides.items() if v is not None))
    if args.lrs:  # the baselines keep a grid of the same size (its last configs)
        lrs = tuple(float(x) for x in args.lrs.split(","))
        budget = replace(budget, learning_rates=lrs, gbdt_grid=budget.gbdt_grid[-len(lrs):],
                         lr_grid=budget.lr_grid[-len(lrs):])
    result: dict[str, Any] = {"bench": "rankers", "quick": args.quick, "budget": budget.describe(),
                              "load_start": load()}
    print(f"tuning budget: {budget.describe()}\nload average: {result['load_start']}")
    t_all = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-rankers-"))
    os.environ.setdefault("FEAST_USAGE", "False")
    try:
        synth = None
        if args.synthetic_set:  # a set built earlier by this script (or the pipeline)
            synth, result["synthetic_data"] = time_splits(args.synthetic_set), {
                "reused": str(args.synthetic_set)}
            result["synthetic_data"]["rows"] = synth.rows
        elif not (args.skip_synthetic and args.skip_throughput):
            synth, result["synthetic_data"] = synthetic_set(work / "synthetic", args.quick, print)
            result["synthetic_data"]["rows"] = synth.rows
        if not args.skip_synthetic:
            rows = compare(synth, models, budget, work / "runs-synthetic", args.seed, print)
            table(f"(a) synthetic, test window ({synth.rows})", rows)
            margin = gauc_margin(rows, "din", "wide_deep")
            print(f"DIN - Wide&Deep test GAUC: {margin if margin is None else f'{margin:+.4f}'}")
            result["synthetic"] = rows
            result["din_minus_wide_deep_gauc"] = margin
        if not args.skip_real:
            result["amazon"] = real(args, models, budget, work)
        if not args.skip_throughput:
            result["throughput"] = speed(synth, models, budget, args.seed,
                                         args.throughput_rows or (QUICK_THROUGHPUT_ROWS
                                                                  if args.quick else None))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - t_all, 1)
    result["load_end"] = load()
    print(json.dumps(_jsonable(result)))
    return 0


def real(args: argparse.Namespace, models: list[str], budget: Any, work: Path) -> dict:
    from training.ranker_compare import gauc_margin

    missing = [str(args.data / "amazon_beauty" / f) for f in BEAUTY
               if not (args.data / "amazon_beauty" / f).is_file()]
    if missing:
        print(f"\n(b) Amazon Beauty skipped: not found: {', '.join(missing)}")
        return {"skipped": f"not found: {missing}"}
    provenance = args.data / "amazon_beauty" / "PROVENANCE.txt"
    if provenance.is_file():
        print("\n(b) " + provenance.read_text().splitlines()[0])
    users = args.amazon_users or (QUICK_USERS if args.quick else None)
    if args.real_set:  # built earlier by this script
        splits, info = leave_last_out(args.real_set), {"reused": str(args.real_set)}
    else:
        splits, info = amazon_set(work / "beauty", args.data / "amazon_beauty", users,
                                  args.negatives, print)
    rows = compare(splits, models, budget, work / "runs-beauty", args.seed, print)
    table(f"(b) Amazon Beauty, leave-last-out test ({splits.rows}; "
          f"{args.negatives} popularity negatives per positive)", rows)
    margin = gauc_margin(rows, "din", "wide_deep")
    print(f"DIN - Wide&Deep test GAUC: {margin if margin is None else f'{margin:+.4f}'}")
    return {"data": {**info, "rows": splits.rows}, "rows": rows,
            "din_minus_wide_deep_gauc": margin}


def speed(synth: Any, models: list[str], budget: Any, seed: int,
          max_rows: int | None) -> list[dict[str, Any]]:
    from dataclasses import replace

    from shoprec.contract import CONTRACT
    from training.dcn import ranker_inputs
    from training.ranker_compare import throughput
    from training.ranker_data import task_label_columns

    specs = ranker_inputs(CONTRACT)
    labels = task_label_columns(CONTRACT, tuple(CONTRACT.task_labels))
    source, rows = synth.train, synth.rows["train"]
    if max_rows and rows > max_rows:  # the window's newest rows: a shorter epoch that reads
        # only those rows' data (a Bernoulli sample would decode the whole file for a tenth)
        stamps = source.read([source.ts_col])[source.ts_col].sort_values()
        source = replace(source, start=stamps.iloc[-max_rows])
        rows = source.count()
    buffer = min(100_000, max(rows // 10, budget.batch_size))
    print(f"\n(c) throughput, fit() of 2 passes over {rows} synthetic train rows (repeated "
          f"stream with its stream cache, as training runs), four times each in ABBA order, "
          f"batch {budget.batch_size}, shuffle buffer {buffer}, load {load()}; ratio = median "
          "over neighbouring pairs of in-memory time / streaming time")
    print(f"{'model':<12} {'stream ex/s':>12} {'step ex/s':>10} {'ratio':>6} {'min pair':>8} "
          f"{'total':>6} {'cpu ratio':>9} {'fill s':>6}")
    rows = []
    for name in models:
        r = throughput(name, source, specs, labels, budget.batch_size, seed,
                       shuffle_buffer=buffer)
        rows.append({**r, "load": load()})
        worst = min(a / b for a, b in zip(r["seconds"]["cached"], r["seconds"]["stream"],
                                          strict=True))
        print(f"{name:<12} {r['examples_per_s']:>12} {r['step_examples_per_s']:>10} "
              f"{r['ratio']:>6.3f} {worst:>8.3f} {r['total_ratio']:>6.3f} "
              f"{r['cpu_ratio']:>9.3f} {r['fill_seconds']:>6.2f}")
    return rows


def _jsonable(obj: Any) -> Any:
    from training.runs import clean_json

    return clean_json(json.loads(json.dumps(obj, default=str)))


if __name__ == "__main__":
    raise SystemExit(main())
