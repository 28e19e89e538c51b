"""``shoprec`` command line: generate data, ingest files, inspect the installation.

The CLI is an entry point: it is the one place (besides DAG tasks and the Bento service)
that reads settings from the environment. It covers the core package only; the full
pipeline runs through Airflow (``make pipeline`` / ``make airflow``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING

from shoprec.settings import Settings

if TYPE_CHECKING:
    from shoprec.contract import Contract
    from shoprec.intervals import Interval

PRESETS: dict[str, dict[str, int | float]] = {
    "tiny": {"n_users": 150, "n_items": 120, "n_categories": 6, "n_shops": 12, "days": 6,
             "sessions_per_user_day": 0.6, "impressions_per_session": 10},
    "default": {"n_users": 3000, "n_items": 1500, "n_categories": 20, "n_shops": 120, "days": 14},
    "large": {"n_users": 100_000, "n_items": 50_000, "n_categories": 200, "n_shops": 2000,
              "days": 30},
}
"""Named generator scales; any field can still be overridden with ``--set name=value``."""


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from shoprec.generator import GeneratorConfig, generate

    landing = Path(args.out) if args.out else settings.landing_dir
    if args.if_empty and any((landing / "events").glob("*")):
        print(f"{landing / 'events'} already has event files; nothing generated (--if-empty)")
        return 0
    overrides: dict[str, object] = dict(PRESETS[args.preset])
    known = {f.name: f.type for f in fields(GeneratorConfig)}
    for item in args.set or []:
        name, _, value = item.partition("=")
        if name not in known:
            raise SystemExit(f"unknown generator setting {name!r}; known: {sorted(known)}")
        overrides[name] = value if name == "start_date" else float(value) if "." in value \
            else int(value)
    overrides.setdefault("seed", args.seed if args.seed is not None else settings.seed)
    config = GeneratorConfig(**overrides)
    summary = generate(config, landing)
    print(json.dumps({"config": asdict(config), "summary": summary}, default=str, indent=2))
    return 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Stage → validate (GX) → commit one batch; exit code 1 when validation fails."""
    from shoprec.sources_base import FORMATS

    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"no such file: {', '.join(missing)}")
    if args.mapping and args.format != "events":
        raise SystemExit(f"--mapping applies to --format events only, not {args.format!r}")
    if args.format not in FORMATS:
        raise SystemExit(f"unknown format {args.format!r}; known: {sorted(FORMATS)}")
    try:
        from validation.gate import ValidationFailed
        from validation.run import run_batch
    except ImportError as exc:
        raise SystemExit(f"cannot validate: the validation stage is not importable ({exc}); "
                         "nothing was ingested") from exc
    try:
        run_batch(paths, settings, args.batch_id, fmt=args.format, mapping=args.mapping,
                  log=print)
    except ValidationFailed as exc:
        print(f"validation failed, batch {args.batch_id} not committed: {exc}", file=sys.stderr)
        return 1
    return 0


def _info(_: argparse.Namespace, settings: Settings) -> int:
    contract = settings.load_contract()
    print(f"SHOPREC_HOME = {settings.home}")
    print(f"contract     = {settings.contract} (project {contract.project})")
    for service in contract.services:
        names = [f.name for f in contract.service_features(service)]
        print(f"FeatureService {service}: {', '.join(names)}")
    return 0


def _monitoring_interval(args: argparse.Namespace, settings: Settings,
                         contract: Contract) -> Interval:
    """The interval of ``--date-from``/``--date-to``, else the newest snapshot day."""
    from validation.monitoring_report import monitoring_interval

    try:
        return monitoring_interval(settings, contract, date_from=args.date_from,
                                   date_to=args.date_to)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(str(err)) from err


def _drift(args: argparse.Namespace, settings: Settings) -> int:
    """PSI per contract feature; exit code 1 with ``--strict`` when a feature alerts."""
    from validation.drift import DriftConfig, drift_report

    contract = settings.load_contract()
    interval = _monitoring_interval(args, settings, contract)
    try:
        config = DriftConfig(threshold=args.threshold, reference_days=args.reference_days)
        report = drift_report(settings, contract, interval, config)
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise SystemExit(f"drift check failed for {interval.key}: {err}") from err
    for m in report.metrics:
        value = "-" if m["psi"] is None else f"{m['psi']:.4f}"
        print(f"{m['name']:<36} {m['kind']:<12} PSI {value:>8}{'  ALERT' if m['alert'] else ''}")
    print(f"alerts ({interval.key}, threshold {config.threshold}): "
          f"{', '.join(report.alerts) or 'none'}\nreport: {report.paths['html']}")
    return 1 if args.strict and report.alerts else 0


def _skew(args: argparse.Namespace, settings: Settings) -> int:
    """Served vs offline feature vectors; exit code 1 with ``--strict`` when one is flagged."""
    from validation.skew import NoServedVectors, SkewConfig, served_rows, skew_report

    contract = settings.load_contract()
    interval = _monitoring_interval(args, settings, contract)
    try:
        config = SkewConfig(rel_tol=args.rel_tol, max_rows=args.max_rows or None,
                            alert_rate=args.alert_rate)
        served_rows(settings, contract, interval, config)  # fail before importing Feast
    except (NoServedVectors, ValueError) as err:
        raise SystemExit(f"skew check failed for {interval.key}: {err}") from err
    from feature_repo.online import open_feature_store

    report = skew_report(settings, contract, interval, open_feature_store(settings), config)
    print(f"{'feature':<36} {'checked':>8} {'mismatched':>10} {'rate':>8}")
    for f in report.features:
        rate = "-" if f["rate"] is None else f"{f['rate']:.4f}"
        print(f"{f['feature']:<36} {f['checked']:>8} {f['mismatched']:>10} {rate:>8}"
              f"{'  FLAGGED' if f['flagged'] else ''}")
    print(f"flagged ({interval.key}, {report.rows_checked} of {report.rows_logged} rows): "
          f"{', '.join(report.flagged) or 'none'}\nreport: {report.paths['html']}")
    return 1 if args.strict and report.flagged else 0


def _monitoring_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date-from", help="first day (YYYY-MM-DD); default: the newest "
                                            "feature-snapshot day")
    parser.add_argument("--date-to", help="last day, inclusive (default: --date-from)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with code 1 when anything is flagged")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, separate from :func:`main` so tests can inspect it."""
    parser = argparse.ArgumentParser(prog="shoprec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic landing files")
    gen.add_argument("--preset", choices=sorted(PRESETS), default="default")
    gen.add_argument("--set", action="append", metavar="NAME=VALUE",
                     help="override one GeneratorConfig field")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--out", help="landing folder (default: $SHOPREC_HOME/landing)")
    gen.add_argument("--if-empty", action="store_true",
                     help="do nothing when the landing folder already has event files")
    gen.set_defaults(func=_generate)

    ing = sub.add_parser("ingest", help="stage, validate and commit event files")
    ing.add_argument("paths", nargs="+", help="event files (and side files of the format)")
    ing.add_argument("--format", default="events",
                     help="source format: events (default), taobao, movielens, amazon-seq "
                          "(see docs/sources.md)")
    ing.add_argument("--mapping", help="column-mapping file (YAML/JSON) for --format events")
    ing.add_argument("--batch-id", default="cli")
    ing.set_defaults(func=_ingest)

    info = sub.add_parser("info", help="show settings and the FeatureServices of the contract")
    info.set_defaults(func=_info)

    drift = sub.add_parser("drift", help="feature drift (PSI) of an interval vs the training "
                                         "window; writes reports/drift/<interval>/")
    _monitoring_args(drift)
    drift.add_argument("--threshold", type=float, default=0.2, help="PSI alert threshold")
    drift.add_argument("--reference-days", type=int,
                       help="training window length (default: every earlier snapshot)")
    drift.set_defaults(func=_drift)

    skew = sub.add_parser("skew", help="training-serving skew of the logged served feature "
                                       "vectors; writes reports/skew/<interval>/")
    _monitoring_args(skew)
    skew.add_argument("--max-rows", type=int, default=50_000,
                      help="logged rows checked at most (seeded sample; 0: all)")
    skew.add_argument("--alert-rate", type=float, default=0.0,
                      help="flag a feature whose mismatch rate exceeds this")
    skew.add_argument("--rel-tol", type=float, default=1e-6,
                      help="relative tolerance for float features")
    skew.set_defaults(func=_skew)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args, Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
