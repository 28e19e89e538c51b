"""Run the Feast UI (registry browser) for this installation: ``python -m feature_repo.ui``.

The UI reads the registry written by :func:`feature_repo.store.apply`; with ``--apply`` the
contract is (re)applied first, so the UI also works on a fresh ``SHOPREC_HOME``. The process
``exec``s the ``feast`` CLI, so the PID that started it is the server's PID: stopping that PID
stops everything (no orphaned server).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from feature_repo.online import feature_store_yaml
from shoprec.settings import Settings

REPO_DIR = Path(__file__).resolve().parent


def feast_cli() -> str:
    """The ``feast`` console script of the running interpreter's environment."""
    path = Path(sys.executable).parent / "feast"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; is Feast installed in this environment?")
    return str(path)


def ui_command(settings: Settings, host: str, port: int) -> list[str]:
    """``feast -c <feature_repo> -f <feast_dir>/feature_store.yaml ui --host H --port P``."""
    return [feast_cli(), "-c", str(REPO_DIR), "-f", str(feature_store_yaml(settings)),
            "ui", "--host", host, "--port", str(port)]


def main(argv: list[str] | None = None) -> None:
    """Entry point: read settings from the environment and replace this process by the UI."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--apply", action="store_true",
                        help="apply the contract to the registry before starting")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.apply:
        from feature_repo.store import apply

        apply(settings, settings.load_contract())
    if not feature_store_yaml(settings).exists():
        raise SystemExit(f"{feature_store_yaml(settings)} does not exist; run the features "
                         "stage or pass --apply")
    cmd = ui_command(settings, args.host, args.port)
    print(f"Feast UI on http://{args.host}:{args.port} ({' '.join(cmd)})", flush=True)
    os.execve(cmd[0], cmd, {**os.environ, **settings.env()})


if __name__ == "__main__":
    main()
