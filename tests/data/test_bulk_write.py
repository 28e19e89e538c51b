"""The bulk writer against Feast's own materialize, in real sqlite and real Redis stores.

One hand-written snapshot file per view (two days, so the latest row per entity must win),
with every value type the contract uses: Int64, Float64, String and String holding an encoded
id sequence, plus nulls, NaN, an empty string, unicode, negative and large numbers; a third
view has a timestamp feature, which the bulk writer does not encode (Feast writes it). Each
store is loaded by Feast's ``materialize`` (the reference), emptied, then loaded by the bulk
writer; the stored bytes, the values ``get_online_features`` returns and the materialization
intervals recorded in the registry must be identical.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from feature_repo import bulk_write
from feature_repo import store as fstore
from feature_repo.bulk_write import Unsupported
from shoprec.contract import CONTRACT, Contract, Feature, FeatureViewSpec
from shoprec.recipes import History
from shoprec.settings import Settings
from tests.data.redis_fixture import redis_db, redis_dump

SERVICE = "bulk_check"
VIEW, ITEM_VIEW, STAMPED = "user_mixed", "item_mixed", "item_stamped"


def _feat(name: str, view: str, dtype: str, kind: str, default) -> Feature:
    return Feature(name, view, dtype, kind, default, frozenset({SERVICE}))


MIXED = Contract(
    project="bulkcheck", entities=CONTRACT.entities,
    views=(FeatureViewSpec(STAMPED, "item", 400), FeatureViewSpec(VIEW, "user", 400),
           FeatureViewSpec(ITEM_VIEW, "item", 400)),
    features=(_feat("m_seen", STAMPED, "timestamp", "numeric", 0),
              _feat("m_count", VIEW, "int64", "count", 0),
              _feat("m_score", VIEW, "float64", "numeric", 0.0),
              _feat("m_label", VIEW, "string", "categorical", ""),
              Feature("m_hist", VIEW, "int64", "sequence", -1, frozenset({SERVICE}),
                      History(("click",), "item_id", 30), max_len=5),  # stored as a String
              _feat("m_price", ITEM_VIEW, "float64", "numeric", 0.0)),
    services=(SERVICE,))
DAY1, DAY2 = pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-02", tz="UTC")
USERS = [1, 2, 3, 4, 5, 6, 2**40 + 7]
"""User 6 has only null values; user 2**40 + 7 tests a key wider than 32 bits."""


def snapshots() -> dict[str, pd.DataFrame]:
    user = pd.DataFrame({
        "user_id": [1, 2, 3, 4, 2, 3, 5, 6, 2**40 + 7],
        "m_count": pd.array([5, 1, None, -3, 2, 7, 0, None, 2**50], dtype="Int64"),
        "m_score": [0.1, 2.5, 1e300, float("nan"), -0.0, 3.25, None, None, 1 / 3],
        "m_label": pd.array(["web", "", "ünï", None, "ios", "x" * 300, "a", None, "z"],
                            dtype="string"),
        "m_hist": pd.array(["3 1 4", "", "15 9 2 6 5", "7", "1 5 9", None, "2 6", None,
                            "-1 -1 8"], dtype="string"),
        "feature_ts": [DAY1] * 4 + [DAY2] * 5})
    item = pd.DataFrame({"item_id": [10, 11, 10], "m_price": [9.99, None, 12.5],
                         "feature_ts": [DAY1, DAY1, DAY2]})
    stamped = pd.DataFrame({"item_id": [10], "m_seen": [DAY1], "feature_ts": [DAY2]})
    return {VIEW: user, ITEM_VIEW: item, STAMPED: stamped}


def sqlite_rows(settings: Settings) -> list[tuple]:
    with sqlite3.connect(settings.feast_dir / "online.db") as conn:
        return [row for view in (VIEW, ITEM_VIEW, STAMPED) for row in conn.execute(
            f"SELECT entity_key, feature_name, value, value_text, vector_value, event_ts, "
            f"created_ts FROM {MIXED.project}_{view} ORDER BY entity_key, feature_name")]


def intervals(store) -> dict[str, list]:
    return {v.name: store.get_feature_view(v.name).materialization_intervals
            for v in MIXED.views}


def stored(settings: Settings, store) -> dict:
    """Everything the online store and the registry hold after a materialization."""
    raw = redis_dump(settings.redis) if settings.online_store == "redis" else sqlite_rows(
        settings)
    return {"raw": raw, "online": online(store), "intervals": intervals(store)}


def emptied(settings: Settings) -> None:
    """Drop the online rows and the state file, as for a store that never held anything."""
    (settings.feast_dir / "materialized.json").unlink()
    if settings.online_store == "redis":
        redis_db(settings.redis.rsplit(",", 1)[0], int(settings.redis.rsplit("=", 1)[1]))
        return
    with sqlite3.connect(settings.feast_dir / "online.db") as conn:
        for view in MIXED.views:
            conn.execute(f"DELETE FROM {MIXED.project}_{view.name}")


def feast_then_bulk(home, kind: str = "sqlite", redis: str = "localhost:6379"):
    """(Feast's content, the bulk writer's content, settings, store) of one store."""
    settings = Settings(home=home, online_store=kind, redis=redis)
    settings.features_dir.mkdir(parents=True)
    for view, frame in snapshots().items():
        frame.to_parquet(settings.features_dir / f"{view}.parquet", index=False)
    fstore.apply(settings, MIXED)
    store = fstore.open_store(settings)
    result = fstore.materialize(settings, store, MIXED, writer="feast")
    assert {r["writer"] for r in result.values()} == {"feast"}
    reference = stored(settings, store)
    emptied(settings)
    with pytest.raises(Unsupported, match="m_seen"):  # the first view: nothing written yet
        fstore.materialize(settings, store, MIXED, writer="bulk")
    result = fstore.materialize(settings, store, MIXED)
    assert {v: r["writer"] for v, r in result.items()} == {
        STAMPED: "feast", VIEW: "bulk", ITEM_VIEW: "bulk"}
    return reference, stored(settings, store), settings, store


def online(store) -> pd.DataFrame:
    rows = [{"user_id": u, "item_id": i} for u in [*USERS, 404] for i in (10, 11, 999)]
    feats = store.get_feature_service(SERVICE)
    return store.get_online_features(features=feats, entity_rows=rows).to_df()


@pytest.fixture(scope="module")
def sqlite_pair(tmp_path_factory):
    return feast_then_bulk(tmp_path_factory.mktemp("bulk-sqlite"))


@pytest.fixture(scope="module")
def redis_pair(tmp_path_factory, redis_server):
    return feast_then_bulk(tmp_path_factory.mktemp("bulk-redis"), "redis",
                           redis_db(redis_server, 4))


@pytest.mark.parametrize("pair", ["sqlite_pair", "redis_pair"])
def test_stored_bytes_are_identical_to_feasts(pair, request):
    reference, bulk, _, _ = request.getfixturevalue(pair)
    # latest row per entity: 7 users x 4 features, 2 items x 1 feature (nulls stored too),
    # 1 stamped item x 1; Redis keeps one hash per entity (7 users + items 10 and 11)
    assert len(reference["raw"]) == (7 * 4 + 2 + 1 if pair == "sqlite_pair" else 7 + 2)
    assert bulk["raw"] == reference["raw"]


@pytest.mark.parametrize("pair", ["sqlite_pair", "redis_pair"])
def test_online_reads_and_registry_match_feasts(pair, request):
    reference, bulk, _, store = request.getfixturevalue(pair)
    got = bulk["online"]
    pd.testing.assert_frame_equal(got, reference["online"])
    user_cols = ["user_id", *(f.name for f in MIXED.view_features(VIEW))]
    by_user = got[user_cols].drop_duplicates("user_id").set_index("user_id")
    # hand-checked latest rows: user 2 and 3 from day 2, user 1 and 4 from day 1
    assert by_user.loc[2, ["m_count", "m_label", "m_hist"]].tolist() == [2, "ios", "1 5 9"]
    assert by_user.loc[3, "m_count"] == 7 and by_user.loc[3, "m_hist"] is None
    assert by_user.loc[1, "m_score"] == 0.1 and by_user.loc[4, "m_hist"] == "7"
    assert np.isnan(by_user.loc[4, "m_score"]) and by_user.loc[2, "m_label"] != ""
    assert by_user.loc[2**40 + 7, "m_count"] == 2**50
    assert by_user.loc[404].isna().all() and by_user.loc[6].isna().all()
    items = got.drop_duplicates("item_id").set_index("item_id")
    assert items.loc[10, "m_price"] == 12.5 and np.isnan(items.loc[11, "m_price"])
    assert np.isnan(items.loc[999, "m_price"]) and pd.Timestamp(items.loc[10, "m_seen"]) == DAY1
    # Feast's run appended one interval per view; the bulk run appended the same one again
    for view, spans in bulk["intervals"].items():
        assert spans == [reference["intervals"][view][0]] * 2, view
    assert store.get_feature_view(VIEW).most_recent_end_time == pd.Timestamp(
        "2025-03-02 00:00:01", tz="UTC")


def _indexes(settings: Settings) -> list[tuple]:
    with sqlite3.connect(settings.feast_dir / "online.db") as conn:
        return conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                            "ORDER BY name").fetchall()


def test_sqlite_indexes_survive_and_a_failed_load_rolls_back(sqlite_pair, monkeypatch):
    """Runs last: it empties and reloads the shared sqlite pair.

    A load that fails while encoding must leave rows and Feast's indexes as they were, and
    the next load must write exactly what the first one did.
    """
    _, bulk, settings, store = sqlite_pair
    before = _indexes(settings)
    ek = f"{MIXED.project}_{VIEW}_ek"
    assert ek in dict(before) and "(entity_key)" in dict(before)[ek]
    emptied(settings)

    def disk_full(*_args):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(bulk_write, "value_text", disk_full)
    with pytest.raises(OSError, match="injected"):
        fstore.materialize(settings, store, MIXED)
    assert _indexes(settings) == before
    with sqlite3.connect(settings.feast_dir / "online.db") as conn:
        assert conn.execute(f"SELECT COUNT(*) FROM {MIXED.project}_{VIEW}").fetchone() == (0,)
    monkeypatch.undo()
    fstore.materialize(settings, store, MIXED)  # the empty-table path again, now complete
    assert _indexes(settings) == before
    assert sqlite_rows(settings) == bulk["raw"]
