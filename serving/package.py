"""Package a training run: BentoML models ``shoprec_retrieval``/``shoprec_ranker``, then a bento.

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
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def _labels_and_metadata(run_dir: Path) -> tuple[dict[str, str], dict]:
    manifest = read_json(run_dir / MANIFEST_FILE)
    metrics = read_json(run_dir / METRICS_FILE)
    run_id = str(manifest.get("run_id", run_dir.name))
    return {"run_id": run_id, "project": "shoprec"}, {"run_id": run_id, "metrics": metrics,
                                                      "run_dir": str(run_dir)}


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def save_models(settings: Settings, run_dir: Path) -> dict[str, str]:
    """Save a run's serving artifacts as the two BentoML models; return ``{name: tag}``.

    The retrieval model holds the user tower and the FAISS index (they must change
    together: the index is only meaningful for the towers that produced it); the ranker is
    separate so it can be retrained on its own.

    Raises:
        FileNotFoundError: naming missing artifacts, before anything is written to the store.
    """
    run_dir = Path(run_dir).resolve()
    parts = {RETRIEVAL_MODEL: RETRIEVAL_FILES, RANKER_MODEL: RANKER_FILES}
    missing = [str(run_dir / f) for files in parts.values() for f in files
               if not (run_dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"run {run_dir} lacks serving artifacts: {missing}")
    _check_store_home(settings)
    import bentoml

    labels, metadata = _labels_and_metadata(run_dir)
    tags: dict[str, str] = {}
    for name, files in parts.items():
        with bentoml.models.create(name, labels=labels, metadata=metadata) as model:
            for f in (*files, MANIFEST_FILE, METRICS_FILE):
                if (run_dir / f).exists():
                    _copy(run_dir / f, Path(model.path) / f)
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


def build(settings: Settings) -> str:
    """``bentoml build`` the repo's bentofile against the settings' store; return the bento tag.

    Raises:
        RuntimeError: with the tail of bentoml's output if the build fails.
    """
    cmd = [str(Path(sys.executable).parent / "bentoml"), "build", str(REPO_ROOT),
           "-f", str(BENTOFILE), "--output", "tag"]
    out = subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(settings), capture_output=True,
                         text=True)
    tags = [line.split("__tag__:", 1)[1].strip() for line in out.stdout.splitlines()
            if "__tag__:" in line]
    if out.returncode != 0 or not tags:
        raise RuntimeError(f"bentoml build failed ({out.returncode}):\n"
                           f"{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return tags[-1]


def package(settings: Settings, run_dir: Path) -> str:
    """Save the run's models (in a subprocess) and build the bento; return the bento tag."""
    save_models_subprocess(settings, run_dir)
    return build(settings)


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
    tags = save_models(settings, run_dir)
    if ns.args[0] == "save":
        print(json.dumps(tags))
    else:
        print(build(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
