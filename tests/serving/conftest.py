"""Serving fixtures: one run folder of small real SavedModels + FAISS index per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoprec.contract import CONTRACT
from tests.serving.models import make_run_dir


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("models") / "run-1", CONTRACT, run_id="run-1")


@pytest.fixture(scope="session")
def artifacts(run_dir: Path):
    from serving.artifacts import load_artifacts

    return load_artifacts(run_dir)
