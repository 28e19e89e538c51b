"""Incremental, resumable materialization into a real Redis: a run SIGKILLed between views,
then rerun, leaves exactly the online content of an uninterrupted run; a rebuilt open day is
loaded again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pandas as pd
import pytest

from feature_repo import store as fstore
from feature_repo.build import build_snapshots
from shoprec.contract import CONTRACT, USER_TOWER
from shoprec.recipes import Count
from shoprec.settings import Settings
from tests.conftest import REPO_ROOT
from tests.data.feature_fixtures import typed_events, write_event_store, write_tiny
from tests.data.redis_fixture import redis_db, redis_dump

KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from feature_repo import store as fstore
from shoprec.settings import Settings

settings = Settings(home=Path(sys.argv[1]), online_store="redis", redis=sys.argv[2])

def die(view, result):
    print("loaded", view, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit: as if the worker vanished

fstore.materialize(settings, fstore.open_store(settings), settings.load_contract(),
                   on_loaded=die)
"""


def prepared(home, redis: str) -> Settings:
    settings = Settings(home=home, online_store="redis", redis=redis)
    write_tiny(settings)
    build_snapshots(settings, CONTRACT)
    fstore.apply(settings, CONTRACT)
    return settings


def view_fields(dump: dict[bytes, dict], view: str) -> dict[bytes, dict]:
    """The hash fields Feast writes for ``view`` (``_ts:<view>`` and one per feature)."""
    from feast.infra.online_stores.helpers import _mmh3

    names = {f"_ts:{view}".encode(), *(_mmh3(f"{view}:{f.name}")
                                       for f in CONTRACT.view_features(view))}
    return {k: {f: v for f, v in h.items() if f in names} for k, h in dump.items()
            if names & set(h)}


def test_killed_run_resumes_to_the_uninterrupted_content(tmp_path, redis_server):
    reference = prepared(tmp_path / "reference", redis_db(redis_server, 2))
    fstore.materialize(reference, fstore.open_store(reference), CONTRACT)
    expected = redis_dump(reference.redis)

    settings = prepared(tmp_path / "killed", redis_db(redis_server, 3))
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, str(settings.home),
                           settings.redis], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600)
    first, *rest = [v.name for v in CONTRACT.views]
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    loaded = [line for line in done.stdout.splitlines() if line.startswith("loaded ")]
    assert loaded == [f"loaded {first}"], done.stdout[-3000:]

    # The state claims the first view only, and Redis holds all of that view and nothing else.
    state = json.loads((settings.feast_dir / "materialized.json").read_text())
    assert sorted(k for k in state if not k.startswith("_")) == [first]
    partial = redis_dump(settings.redis)
    assert view_fields(partial, first) == view_fields(expected, first) != {}
    assert all(view_fields(partial, view) == {} for view in rest)

    result = fstore.materialize(settings, fstore.open_store(settings), CONTRACT)
    assert result[first]["skipped"] == "nothing new"
    assert all(result[view]["rows"] > 0 for view in rest)
    assert redis_dump(settings.redis) == expected


def test_a_rebuilt_last_day_is_loaded_again(settings):
    """The newest snapshot day grows while its events are committed hour by hour."""
    write_tiny(settings)
    build_snapshots(settings, CONTRACT)
    fstore.apply(settings, CONTRACT)
    store = fstore.open_store(settings)
    fstore.materialize(settings, store, CONTRACT)
    clicks = next(f.name for f in CONTRACT.service_features(USER_TOWER)
                  if f.recipe == Count(("click",), 30))
    before = fstore.online_features(store, CONTRACT, USER_TOWER, pd.DataFrame({"user_id": [3]}))
    assert before.loc[0, clicks] == 0
    # u3 clicks late on 04-10, the last event day: only the 04-11 snapshot (already loaded)
    # changes, so no new snapshot day appears.
    write_event_store(settings, typed_events(pd.DataFrame([
        {"event_id": "late", "user_id": 3, "item_id": 12, "event_type": "click",
         "event_ts": pd.Timestamp("2025-04-10 12:00", tz="UTC"), "session_id": "s7",
         "device": "web", "strength": 1.0}])), batch_id="t2")
    build_snapshots(settings, CONTRACT)
    again = fstore.materialize(settings, store, CONTRACT)
    user_view = CONTRACT.feature(clicks).view
    assert again[user_view]["reopened"] == again[user_view]["start"] == \
        "2025-04-11T00:00:00+00:00"
    after = fstore.online_features(store, CONTRACT, USER_TOWER, pd.DataFrame({"user_id": [3]}))
    assert after.loc[0, clicks] == 1
    assert fstore.materialize(settings, store, CONTRACT)[user_view]["skipped"] == "nothing new"


@pytest.fixture
def settings(tmp_path) -> Settings:  # sqlite: the default online store
    return Settings(home=tmp_path / "home")
