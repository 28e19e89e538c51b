"""Fixtures for whole-system tests: tiny generated landing data, Airflow environments."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Landing files of the ``tiny`` generator preset, generated once per test session."""
    out = tmp_path_factory.mktemp("tiny") / "landing"
    subprocess.run([sys.executable, "-m", "shoprec.cli", "generate", "--preset", "tiny",
                    "--out", str(out)], check=True, capture_output=True)
    return out


def fresh_home(tmp_path: Path, landing: Path) -> Path:
    """A new SHOPREC_HOME whose landing folder is a copy of ``landing``."""
    home = tmp_path / "home"
    shutil.copytree(landing, home / "landing")
    return home
