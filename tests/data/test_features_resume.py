"""Incremental materialization: a rebuilt open day is loaded again (the killed-and-resumed run
is tested against real Redis in ``test_features_redis``)."""

from __future__ import annotations

import pandas as pd

from feature_repo import store as fstore
from feature_repo.build import build_snapshots
from shoprec.contract import CONTRACT, USER_TOWER
from shoprec.recipes import Count
from tests.data.feature_fixtures import typed_events, write_event_store, write_tiny


def test_a_rebuilt_last_day_is_loaded_again(settings):
    """The newest snapshot day grows while its events are committed hour by hour (sqlite)."""
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
