"""Redis as the online store: settings, config, the same online rows as sqlite, and a
materialization SIGKILLed between views that a rerun completes.

A real redis-server (``redis_server`` fixture) and a real Feast store over the tiny snapshots;
the sqlite store loaded from the same snapshots is the reference.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import signal
import subprocess
import sys

import pandas as pd
import pytest

from feature_repo import store as fstore
from feature_repo.build import build_snapshots
from shoprec.contract import CONTRACT, RANKER
from shoprec.recipes import Count
from shoprec.settings import Settings
from tests.conftest import REPO_ROOT
from tests.data.feature_fixtures import write_tiny
from tests.data.redis_fixture import redis_db, redis_dump

USERS, ITEMS = [1, 2, 3, 404], [10, 11, 12, 999]


def loaded(home, kind: str, redis: str = "localhost:6379") -> tuple[Settings, object]:
    """Tiny snapshots applied and materialized into the ``kind`` online store."""
    settings = Settings(home=home, online_store=kind, redis=redis)
    write_tiny(settings)
    build_snapshots(settings, CONTRACT)
    fstore.apply(settings, CONTRACT)
    store = fstore.open_store(settings)
    fstore.materialize(settings, store, CONTRACT)
    return settings, store


def ranker_rows() -> pd.DataFrame:
    """Every (user, item) pair of the tiny data plus unknown ids."""
    return pd.DataFrame(list(itertools.product(USERS, ITEMS)), columns=["user_id", "item_id"])


@pytest.fixture(scope="module")
def both(tmp_path_factory, redis_server):
    root = tmp_path_factory.mktemp("online")
    return {"sqlite": loaded(root / "sqlite", "sqlite"),
            "redis": loaded(root / "redis", "redis", redis_db(redis_server, 1))}


def test_settings_read_the_online_store_from_env_only_there(tmp_path):
    s = Settings.from_env({"SHOPREC_HOME": str(tmp_path), "SHOPREC_ONLINE_STORE": "Redis",
                           "SHOPREC_REDIS": "cache.internal:6380,db=2"})
    assert (s.online_store, s.redis) == ("redis", "cache.internal:6380,db=2")
    assert Settings.from_env(s.env()) == s
    plain = Settings.from_env({"SHOPREC_HOME": str(tmp_path)})
    assert (plain.online_store, plain.redis) == ("sqlite", "localhost:6379")


@pytest.mark.parametrize(("env", "message"), [
    ({"SHOPREC_ONLINE_STORE": "mongo"}, "SHOPREC_ONLINE_STORE must be one of"),
    ({"SHOPREC_REDIS": "localhost"}, "SHOPREC_REDIS must look like host:port"),
    ({"SHOPREC_REDIS": "localhost:99999"}, "SHOPREC_REDIS must look like host:port"),
    ({"SHOPREC_REDIS": "localhost:6379,db=one"}, "db must be a number"),
    ({"SHOPREC_REDIS": "localhost:6379,verbose"}, "is not key=value"),
])
def test_bad_online_store_settings_are_named(tmp_path, env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"SHOPREC_HOME": str(tmp_path), **env})


def test_redis_config_is_what_feast_reads(both):
    settings, store = both["redis"]
    text = (settings.feast_dir / "feature_store.yaml").read_text()
    assert "  type: redis\n" in text and "online.db" not in text
    cfg = store.config.online_store
    assert type(cfg).__name__ == "RedisOnlineStoreConfig"
    assert cfg.connection_string == (f"{settings.redis},socket_connect_timeout=1,"
                                     "socket_timeout=5,retry=null") and cfg.skip_dedup is True
    assert not (settings.feast_dir / "online.db").exists()


def test_a_stopped_server_fails_a_read_at_once_without_retries(tmp_path):
    """What serving's fallback relies on: no backoff retries hold the request (were ~4.6 s)."""
    import time

    from feature_repo.online import feast_fetcher
    from tests.data.redis_fixture import running_redis

    with running_redis(tmp_path / "redis") as address:
        settings = Settings(home=tmp_path / "home", online_store="redis", redis=address)
        fstore.apply(settings, CONTRACT)
        fetch = feast_fetcher(fstore.open_store(settings), CONTRACT)
        assert len(fetch(RANKER + "@user", pd.DataFrame({"user_id": [1]}))) == 1  # connected
    t0 = time.perf_counter()  # the server is stopped now, its pooled connection dead
    with pytest.raises(Exception, match="(?i)connect|closed"):
        fetch(RANKER + "@user", pd.DataFrame({"user_id": [1]}))
    assert time.perf_counter() - t0 < 1.0


def test_unreachable_redis_is_a_clear_error(tmp_path):
    from tests.conftest import free_port

    settings = Settings(home=tmp_path, online_store="redis", redis=f"127.0.0.1:{free_port()}")
    with pytest.raises(ConnectionError, match="SHOPREC_REDIS"):
        fstore.check_online_store(settings)


def test_redis_serves_the_same_ranker_rows_as_sqlite(both):
    got = {kind: fstore.online_features(store, CONTRACT, RANKER, ranker_rows())
           for kind, (_, store) in both.items()}
    pd.testing.assert_frame_equal(got["redis"], got["sqlite"])
    rows = got["redis"].set_index(["user_id", "item_id"])
    # hand-checked: u2's latest row (04-11) counts the 04-10 impression + click of item 11
    clicks = next(f.name for f in CONTRACT.service_features(RANKER)
                  if f.view in {v.name for v in CONTRACT.views if v.entity == "user"}
                  and f.recipe == Count(("click",), 30))
    assert rows.loc[(2, 11), clicks] == 1
    assert rows.loc[(1, 10), clicks] == 0  # u1's exit row: its March clicks left the window
    assert rows.loc[(404, 999), clicks] == CONTRACT.feature(clicks).default


def test_a_flushed_redis_is_reloaded_in_full(both):
    """Redis often runs without persistence: the state file alone must not claim its data."""
    settings, store = both["redis"]
    assert fstore.read_state(settings, CONTRACT)
    redis_db(settings.redis.rsplit(",", 1)[0], 1)  # flush, as a restart without RDB would
    assert fstore.read_state(settings, CONTRACT) == {}
    again = fstore.materialize(settings, store, CONTRACT)
    for spec in CONTRACT.views:
        snap = pd.read_parquet(settings.features_dir / f"{spec.name}.parquet")
        assert again[spec.name]["rows"] == len(snap)
    pd.testing.assert_frame_equal(
        fstore.online_features(store, CONTRACT, RANKER, ranker_rows()),
        fstore.online_features(both["sqlite"][1], CONTRACT, RANKER, ranker_rows()))


def test_switching_store_kind_reloads_everything(both, tmp_path):
    """A state file written for sqlite says nothing about Redis (and vice versa)."""
    settings, _ = both["sqlite"]
    assert fstore.read_state(settings, CONTRACT)
    as_redis = dataclasses.replace(settings, online_store="redis", redis=both["redis"][0].redis)
    assert fstore.read_state(as_redis, CONTRACT) == {}


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


def view_fields(dump: dict[bytes, dict], view: str) -> dict[bytes, dict]:
    """The hash fields Feast writes for ``view`` (``_ts:<view>`` and one per feature)."""
    from feast.infra.online_stores.helpers import _mmh3

    names = {f"_ts:{view}".encode(), *(_mmh3(f"{view}:{f.name}")
                                       for f in CONTRACT.view_features(view))}
    return {k: {f: v for f, v in h.items() if f in names} for k, h in dump.items()
            if names & set(h)}


def test_killed_run_resumes_to_the_uninterrupted_content(both):
    settings, store = both["redis"]
    fstore.materialize(settings, store, CONTRACT)  # whatever earlier tests did
    expected = redis_dump(settings.redis)
    redis_db(settings.redis.rsplit(",", 1)[0], 1)  # empty, as a Redis restarted without RDB
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

    result = fstore.materialize(settings, store, CONTRACT)
    assert result[first]["skipped"] == "nothing new"
    assert all(result[view]["rows"] > 0 for view in rest)
    assert redis_dump(settings.redis) == expected
