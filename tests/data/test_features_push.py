"""Streaming freshness: a pushed click reaches the user's online features at once, with the
values the batch builder computes once the click is committed (sqlite and a real Redis)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from feature_repo import store as fstore
from feature_repo.build import build_snapshots
from feature_repo.push import push_events
from feature_repo.push_sources import push_source_name, pushable_views
from shoprec.contract import CONTRACT
from shoprec.recipes import Count, SmoothedRatio
from shoprec.settings import Settings
from tests.data.feature_fixtures import TINY_EVENTS, typed_events, write_event_store, write_tiny
from tests.data.redis_fixture import redis_db

NOW = pd.Timestamp("2025-04-12 10:00:05", tz="UTC")
SNAPSHOT = pd.Timestamp("2025-04-13", tz="UTC")  # the next midnight: what a push previews
USER_VIEWS = pushable_views(CONTRACT, "user")


def clicks(*rows: tuple[str, int, int, str]) -> pd.DataFrame:
    """Click events ``(event_id, user, item, ts)``, typed like committed events."""
    return typed_events(pd.DataFrame([
        {"event_id": e, "user_id": u, "item_id": i, "event_type": "click",
         "event_ts": pd.Timestamp(ts, tz="UTC"), "session_id": "p", "device": "web",
         "strength": 1.0} for e, u, i, ts in rows]))


# u2 already clicked item 11 on 04-10 (in the tiny log); u7 has never been seen.
NEW = clicks(("p1", 2, 10, "2025-04-12 10:00:00"), ("p2", 7, 12, "2025-04-12 10:00:01"))


def online(store, users: list[int]) -> pd.DataFrame:
    """Every feature of the user views, straight from ``get_online_features``."""
    refs = [f"{v}:{f.name}" for v in USER_VIEWS for f in CONTRACT.view_features(v)]
    got = store.get_online_features(features=refs, entity_rows=[{"user_id": u} for u in users])
    return got.to_df().set_index("user_id")


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def home(request, tmp_path_factory):
    redis = (redis_db(request.getfixturevalue("redis_server"), 7)
             if request.param == "redis" else "localhost:6379")
    settings = Settings(home=tmp_path_factory.mktemp(request.param) / "home",
                        online_store=request.param, redis=redis)
    write_tiny(settings)
    build_snapshots(settings, CONTRACT)
    fstore.apply(settings, CONTRACT)
    store = fstore.open_store(settings)
    fstore.materialize(settings, store, CONTRACT)
    return settings, store


def test_user_views_are_fed_by_push_sources(home):
    _, store = home
    assert USER_VIEWS
    for view in USER_VIEWS:
        source = store.get_feature_view(view).stream_source
        assert source.name == push_source_name(view)
        assert source.batch_source.path.endswith(f"{view}.parquet")


def test_pushed_click_is_online_at_once_with_the_batch_values(home):
    settings, store = home
    click30 = next(f.name for v in USER_VIEWS for f in CONTRACT.view_features(v)
                   if f.recipe == Count(("click",), 30))
    before = online(store, [2, 7])  # also warms the read path: the timing below is steady
    assert before.loc[2, click30] == 1 and pd.isna(before.loc[7, click30])
    started = time.perf_counter()
    report = push_events(settings, CONTRACT, store, NEW, now=NOW)
    got = online(store, [2, 7])
    took = time.perf_counter() - started
    print(f"\npush + get_online_features: {took * 1000:.0f} ms ({store.config.online_store.type}; "
          f"push alone {report['seconds'] * 1000:.0f} ms)")
    assert report["snapshot_ts"] == SNAPSHOT.isoformat()
    assert all(report["views"][v]["rows"] == 2 for v in USER_VIEWS)

    # Every 30-day count by hand: tiny log + pushed clicks in [03-14, 04-13).
    log = [(u, kind, pd.Timestamp(ts, tz="UTC")) for u, _, kind, ts, _ in TINY_EVENTS]
    log += [(u, "click", ts) for u, ts in zip(NEW["user_id"], NEW["event_ts"], strict=True)]
    counts = [f for v in USER_VIEWS for f in CONTRACT.view_features(v)
              if isinstance(f.recipe, Count)]
    assert counts
    for f in counts:
        lo = SNAPSHOT - pd.Timedelta(days=f.recipe.window_days)
        for user in (2, 7):
            want = sum(1 for u, kind, ts in log
                       if u == user and kind in f.recipe.events and lo <= ts < SNAPSHOT)
            assert got.loc[user, f.name] == want, (f.name, user)
    assert (got.loc[2, click30], got.loc[7, click30]) == (2, 1)
    for f in (f for v in USER_VIEWS for f in CONTRACT.view_features(v)
              if isinstance(f.recipe, SmoothedRatio)):
        r = f.recipe
        want = (got.loc[2, r.numerator] + r.alpha) / (got.loc[2, r.denominator] + r.alpha
                                                     + r.beta)
        assert got.loc[2, f.name] == pytest.approx(want)

    # Once the clicks are committed, the batch builder's 04-13 rows are what was pushed.
    write_event_store(settings, NEW, batch_id="pushed")
    build_snapshots(settings, CONTRACT)
    for view in USER_VIEWS:
        snap = pd.read_parquet(settings.features_dir / f"{view}.parquet")
        snap = snap[snap[CONTRACT.timestamp_field] == SNAPSHOT].set_index("user_id")
        for f in CONTRACT.view_features(view):
            for user in (2, 7):
                want = snap.loc[user, f.name]  # a sequence: its stored string, exactly
                assert got.loc[user, f.name] == (want if f.kind == "sequence"
                                                 else pytest.approx(want)), (f.name, user)


def test_pushing_again_or_after_commit_counts_each_event_once(home):
    settings, store = home
    push_events(settings, CONTRACT, store, NEW, now=NOW)
    first = online(store, [2, 7])
    write_event_store(settings, NEW, batch_id="pushed")  # now committed as well
    push_events(settings, CONTRACT, store, NEW, now=NOW)
    pd.testing.assert_frame_equal(online(store, [2, 7]), first)


@pytest.mark.parametrize(("events", "message"), [
    (NEW.assign(event_type=["click", "teleport"]), "'event_type' value 'teleport' in row 1"),
    (NEW.drop(columns=["item_id"]), r"lack required columns \['item_id'\]"),
    (NEW.assign(user_id=[2, None]), "'user_id' is null in row 1"),
    (NEW.assign(event_ts=[NOW, NOW + pd.Timedelta(minutes=5)]), "later than now"),
])
def test_bad_pushed_events_are_rejected_naming_the_problem(home, events, message):
    settings, store = home
    before = online(store, [2, 7])
    with pytest.raises(ValueError, match=message):
        push_events(settings, CONTRACT, store, events, now=NOW)
    pd.testing.assert_frame_equal(online(store, [2, 7]), before)


def test_events_landed_but_not_ingested_are_counted_by_the_next_push(home, tmp_path):
    """/feedback lands each batch, then pushes it: a second push before the pipeline ingests
    the first must still count the first (the ``pending`` landing folders)."""
    settings, store = home
    click30 = next(f.name for v in USER_VIEWS for f in CONTRACT.view_features(v)
                   if f.recipe == Count(("click",), 30))
    stored = int(online(store, [2]).loc[2, click30])  # committed clicks (and earlier tests')
    pending = tmp_path / "feedback"
    first, second = NEW.iloc[[0]].assign(event_id="q1"), NEW.iloc[[0]].assign(event_id="q2")
    (pending / "dt=2025-04-12").mkdir(parents=True)
    first.to_parquet(pending / "dt=2025-04-12" / "a.parquet", index=False)
    push_events(settings, CONTRACT, store, first, now=NOW, pending=(pending,))
    assert online(store, [2]).loc[2, click30] == stored + 1
    push_events(settings, CONTRACT, store, second, now=NOW, pending=(pending,))
    assert online(store, [2]).loc[2, click30] == stored + 2
    push_events(settings, CONTRACT, store, second, now=NOW)  # without it the first is lost
    assert online(store, [2]).loc[2, click30] == stored + 1
