"""Shared fixtures: every test gets its own SHOPREC_HOME, never the developer's ./var."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from shoprec.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ.setdefault("FEAST_USAGE", "False")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings rooted in a fresh temporary folder."""
    return Settings(home=tmp_path / "home")


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """Address ``127.0.0.1:PORT`` of a real, throw-away redis-server (installed if missing).

    One server per test session; tests pick their own database (``,db=N``) and flush it.
    """
    from tests.data.redis_fixture import running_redis

    with running_redis(tmp_path_factory.mktemp("redis")) as address:
        yield address
