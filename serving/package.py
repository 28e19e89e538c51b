"""Package ONE training run: BentoML models ``shoprec_retrieval``/``shoprec_ranker``, then a bento.

A run folder holds a ``retrieval/`` and a ``ranker/`` part (see docs/architecture.md; runs from
before the split keep everything in the run folder itself). Both models are saved in one step
with the same ``run_id`` label, and the bento is built right after with the exact model tags as
build arguments (``--arg retrieval_model=... --arg ranker_model=... --arg run_id=...``), which
``serving.service`` reads via ``bentoml.use_arguments``. A bento therefore never resolves
``:latest`` and never mixes runs, however many models are saved later; the service also refuses
to start if its models' ``run_id`` labels differ. Packaging the same run content again returns
the existing bento (a rerun changes nothing).

BentoML reads ``BENTOML_HOME`` once, when it is first imported, so the model store of a process
cannot be moved afterwards. :func:`package` therefore saves models in a child process
(``python -m serving.package save RUN_DIR``) whose environment comes from
:meth:`Settings.env`, and runs ``bentoml build`` as a child too. :func:`save_models` works
in-process only when BentoML is not yet imported or already points at ``settings.bentoml_home``.

Usage: ``python -m serving.package RUN_DIR`` (save + build, prints the bento tag) or
``python -m serving.package save RUN_DIR`` (models only, prints their tags as JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serving.artifacts import (
    MANIFEST_FILE,
    METRICS_FILE,
    RANKER_FILES,
    RETRIEVAL_FILES,
    read_json,
)
from shoprec.settings import Settings

RETRIEVAL_MODEL = "shoprec_retrieval"
RANKER_MODEL = "shoprec_ranker"
REPO_ROOT = Path(__file__).resolve().parent.parent
BENTOFILE = REPO_ROOT / "bentofile.yaml"
RETRIEVAL_PART = "retrieval"
RANKER_PART = "ranker"
"""Part folders of a run; the same names as ``training.runs`` (serving never imports training)."""


def child_env(settings: Settings) -> dict[str, str]:
    """Environment for ``bentoml``/``python`` children: settings plus a PATH with ``uv``.

    ``bentoml build`` shells out to ``uv``; the venv's own ``bin`` comes first so the child
    uses the same interpreter and tools as this process.
    """
    env = {**os.environ, **settings.env(), "BENTOML_DO_NOT_TRACK": "True"}
    dirs = [str(Path(sys.executable).parent)]
    uv = shutil.which("uv")
    if uv:
        dirs.append(str(Path(uv).parent))
    env["PATH"] = os.pathsep.join([*dirs, env.get("PATH", "")])
    return env


def _check_store_home(settings: Settings) -> None:
    """Point BentoML at ``settings.bentoml_home`` or fail if it already uses another store."""
    if "bentoml" not in sys.modules:
        os.environ["BENTOML_HOME"] = str(settings.bentoml_home)
        return
    from bentoml._internal.configuration.containers import BentoMLContainer

    current = Path(BentoMLContainer.bentoml_home.get()).resolve()
    if current != settings.bentoml_home.resolve():
        raise RuntimeError(
            f"bentoml was imported with BENTOML_HOME={current}, not {settings.bentoml_home}; "
            "use serving.package.package() (saves in a subprocess) instead"
        )


def part_dirs(run_dir: Path) -> tuple[Path, Path]:
    """``(retrieval folder, ranker folder)`` of a run; both are ``run_dir`` for flat runs."""
    run_dir = Path(run_dir)
    if (run_dir / RETRIEVAL_PART).is_dir() or (run_dir / RANKER_PART / RANKER_PART).is_dir():
        return run_dir / RETRIEVAL_PART, run_dir / RANKER_PART
    return run_dir, run_dir


def _served_files(run_dir: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    retr, rank = part_dirs(run_dir)
    return {RETRIEVAL_MODEL: (retr, RETRIEVAL_FILES), RANKER_MODEL: (rank, RANKER_FILES)}


def run_identity(run_dir: Path) -> tuple[str, str]:
    """``(run_id, content fingerprint)`` of the run's served artifacts.

    The run id comes from the parts' manifests, which must agree: a run folder whose parts
    name different runs would produce exactly the mixed bento this module exists to prevent.
    The fingerprint is a SHA-256 over every file that goes into the two models.

    Raises:
        FileNotFoundError: naming missing artifacts.
        ValueError: if the parts' manifests lack a run id or disagree.
    """
    parts = _served_files(Path(run_dir).resolve())
    missing = [str(d / f) for d, files in parts.values() for f in (*files, MANIFEST_FILE)
               if not (d / f).exists()]
    if missing:
        raise FileNotFoundError(f"run {run_dir} lacks serving artifacts: {missing}")
    ids = {name: read_json(d / MANIFEST_FILE).get("run_id") for name, (d, _) in parts.items()}
    if not all(ids.values()) or len(set(ids.values())) != 1:
        raise ValueError(f"run {run_dir}: the parts' manifests name runs {ids}; both parts "
                         "must come from one run with a run_id")
    digest = hashlib.sha256()
    for d, files in parts.values():
        for f in (*files, MANIFEST_FILE):
            paths = sorted(p for p in (d / f).rglob("*") if p.is_file()) if (d / f).is_dir() \
                else [d / f]
            for p in paths:
                digest.update(str(p.relative_to(d)).encode() + b"\0" + p.read_bytes())
    return str(next(iter(ids.values()))), digest.hexdigest()[:32]


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def without_nulls(value: Any) -> Any:
    """``value`` with every ``None`` dropped (from dicts and lists, recursively).

    BentoML refuses ``None`` in model metadata, and a run's metrics legitimately hold some
    (e.g. a ranker trained without a warm start records ``"warm_start": null``).
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value if v is not None]
    return value


def save_models(settings: Settings, run_dir: Path) -> dict[str, str]:
    """Save a run's serving artifacts as the two BentoML models; return ``{name: tag}``.

    The retrieval model holds the user tower and the FAISS index (they must change
    together: the index is only meaningful for the towers that produced it); the ranker is
    separate. Both carry the labels ``run_id`` and ``run_fingerprint``.

    Raises:
        FileNotFoundError: naming missing artifacts, before anything is written to the store.
        ValueError: if the two parts do not come from one run.
    """
    run_dir = Path(run_dir).resolve()
    run_id, fingerprint = run_identity(run_dir)
    _check_store_home(settings)
    import bentoml

    labels = {"run_id": run_id, "run_fingerprint": fingerprint, "project": "shoprec"}
    tags: dict[str, str] = {}
    for name, (src, files) in _served_files(run_dir).items():
        metadata = {"run_id": run_id, "run_dir": str(run_dir),
                    "metrics": without_nulls(read_json(src / METRICS_FILE))}
        with bentoml.models.create(name, labels=labels, metadata=metadata) as model:
            for f in (*files, MANIFEST_FILE, METRICS_FILE):
                if (src / f).exists():
                    _copy(src / f, Path(model.path) / f)
        tags[name] = str(model.tag)
    return tags


def save_models_subprocess(settings: Settings, run_dir: Path) -> dict[str, str]:
    """Run :func:`save_models` in a child process so BENTOML_HOME is set before import."""
    out = subprocess.run(
        [sys.executable, "-m", "serving.package", "save", str(Path(run_dir).resolve())],
        cwd=REPO_ROOT, env=child_env(settings), capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"saving models failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def build(settings: Settings, args: Mapping[str, str] | None = None) -> str:
    """``bentoml build`` the repo's bentofile against the settings' store; return the bento tag.

    Args:
        settings: Locations (the BentoML store).
        args: Bento build arguments, stored in the bento and read by ``serving.service``.

    Raises:
        RuntimeError: with the tail of bentoml's output if the build fails.
    """
    cmd = [str(Path(sys.executable).parent / "bentoml"), "build", str(REPO_ROOT),
           "-f", str(BENTOFILE), "--output", "tag"]
    for key, value in (args or {}).items():
        cmd += ["--arg", f"{key}={value}"]
    out = subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(settings), capture_output=True,
                         text=True)
    tags = [line.split("__tag__:", 1)[1].strip() for line in out.stdout.splitlines()
            if "__tag__:" in line]
    if out.returncode != 0 or not tags:
        raise RuntimeError(f"bentoml build failed ({out.returncode}):\n"
                           f"{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return tags[-1]


def find_bento(settings: Settings, run_id: str, fingerprint: str) -> str | None:
    """Tag of an existing bento built from exactly this run content, if any (newest first)."""
    import yaml

    found = []
    for meta in (settings.bentoml_home / "bentos").glob("*/*/bento.yaml"):
        info = yaml.safe_load(meta.read_text()) or {}
        args = info.get("args") or {}
        if args.get("run_id") == run_id and args.get("run_fingerprint") == fingerprint:
            found.append((str(info.get("creation_time", "")), f"{info['name']}:{info['version']}"))
    return max(found)[1] if found else None


def bento_args(run_id: str, fingerprint: str, tags: Mapping[str, str]) -> dict[str, str]:
    """The build arguments that pin a bento to one run's exact model tags."""
    return {"run_id": run_id, "run_fingerprint": fingerprint,
            "retrieval_model": tags[RETRIEVAL_MODEL], "ranker_model": tags[RANKER_MODEL]}


def package(settings: Settings, run_dir: Path) -> str:
    """Save one run's two models (in a subprocess) and build its bento; return the bento tag.

    If a bento of exactly this run content already exists, its tag is returned and nothing is
    saved or built.
    """
    run_id, fingerprint = run_identity(run_dir)
    existing = find_bento(settings, run_id, fingerprint)
    if existing:
        return existing
    tags = save_models_subprocess(settings, run_dir)
    return build(settings, bento_args(run_id, fingerprint, tags))


def package_run(settings: Settings, run_id: str) -> str:
    """:func:`package` for ``settings.models_dir / run_id``."""
    return package(settings, settings.models_dir / run_id)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; reads settings from the environment."""
    parser = argparse.ArgumentParser(prog="python -m serving.package", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("args", nargs="+", metavar="[save] RUN_DIR")
    ns = parser.parse_args(argv)
    if len(ns.args) > 2 or (len(ns.args) == 2 and ns.args[0] != "save"):
        parser.error("expected RUN_DIR or 'save RUN_DIR'")
    settings = Settings.from_env()
    run_dir = Path(ns.args[-1])
    if ns.args[0] == "save":
        print(json.dumps(save_models(settings, run_dir)))
    else:
        print(package(settings, run_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
