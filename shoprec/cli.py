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

from shoprec.settings import Settings

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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args, Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
