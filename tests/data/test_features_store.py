"""Real Feast store (file registry, sqlite online store) over the tiny snapshots: apply,
explicit-range materialization of months-old data, incremental runs and online reads."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from feature_repo import store as fstore
from feature_repo.build import build_snapshots
from shoprec.contract import CONTRACT, ITEM_TOWER, RANKER, USER_TOWER
from shoprec.settings import Settings
from tests.data.feature_fixtures import typed_events, write_event_store, write_tiny

TS = CONTRACT.timestamp_field


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("store") / "home")
    write_tiny(settings)
    build_snapshots(settings, CONTRACT)
    fstore.apply(settings, CONTRACT)
    return settings


@pytest.fixture(scope="module")
def first_run(home):
    store = fstore.open_store(home)
    return store, fstore.materialize(home, store, CONTRACT)


def test_config_is_absolute_and_sqlite(home):
    text = (home.feast_dir / "feature_store.yaml").read_text()
    assert f"project: {CONTRACT.project}\n" in text
    assert f"registry: {home.feast_dir / 'registry.db'}\n" in text
    assert f"path: {home.feast_dir / 'online.db'}\n" in text
    assert "type: sqlite" in text and "entity_key_serialization_version: 3" in text


def test_open_store_before_apply_is_a_clear_error(settings):
    with pytest.raises(FileNotFoundError, match="run the features stage"):
        fstore.open_store(settings)


def test_first_materialization_loads_all_old_snapshots(home, first_run):
    _, result = first_run
    for spec in CONTRACT.views:
        snap = pd.read_parquet(home.features_dir / f"{spec.name}.parquet")
        key = CONTRACT.entity(spec.entity).join_key
        assert result[spec.name]["rows"] == len(snap) > 0
        assert result[spec.name]["entities"] == snap[key].nunique() == 3
        assert result[spec.name]["start"] == "2025-03-02T00:00:00+00:00"
    state = json.loads((home.feast_dir / "materialized.json").read_text())
    assert state["item_profile"]["end"] == "2025-04-11T00:00:01+00:00"


def test_online_store_answers_latest_snapshot(home, first_run):
    store, _ = first_run
    users = fstore.online_features(store, CONTRACT, USER_TOWER,
                                   pd.DataFrame({"user_id": [2, 1, 404]}))
    assert list(users.columns) == ["user_id",
                                   *(f.name for f in CONTRACT.service_features(USER_TOWER))]
    # u2 at 04-11 (its latest): the 04-10 impression + click on item 11 (category 2)
    u2 = users.iloc[0].to_dict()
    assert {k: u2[k] for k in ("user_id", "u_clicks_30d", "u_purchases_30d", "u_ctr_30d",
                               "u_top_category", "u_days_since_last")} == {
        "user_id": 2, "u_clicks_30d": 1, "u_purchases_30d": 0, "u_ctr_30d": pytest.approx(2 / 21),
        "u_top_category": 2, "u_days_since_last": pytest.approx((17 * 3600 - 9) / 86400)}
    # the Array feature comes back as a list and is padded like in training
    assert u2["u_hist_item_ids"].tolist() == [-1] * 49 + [11]
    # u1's latest row is its 04-02 exit row (zero counts, empty history), not its 03-xx activity
    assert users.iloc[1]["u_clicks_30d"] == 0 and users.iloc[1]["u_ctr_30d"] == 0.05
    assert users.iloc[1]["u_hist_category_ids"].tolist() == [-1] * 50
    # unknown user: contract defaults (all padding for a history), contract dtypes
    unknown = users.iloc[2].to_dict()
    for f in CONTRACT.service_features(USER_TOWER):
        want = [f.default] * f.max_len if f.kind == "sequence" else f.default
        got = unknown[f.name].tolist() if f.kind == "sequence" else unknown[f.name]
        assert got == want, f.name
    assert str(users["u_clicks_30d"].dtype) == "int64"
    items = fstore.online_features(store, CONTRACT, ITEM_TOWER, pd.DataFrame({"item_id": [11]}))
    assert items.iloc[0].to_dict() == {"item_id": 11, "i_clicks_30d": 1, "i_popularity_7d": 1,
                                       "i_category_id": 2, "i_shop_id": 100, "i_price": 30.0,
                                       "i_price_band": 5}
    ranked = fstore.online_features(store, CONTRACT, RANKER,
                                    pd.DataFrame({"user_id": [2], "item_id": [11]}))
    assert ranked.iloc[0]["i_age_days"] == 39.5  # 04-11 minus launch 03-02 12:00
    assert ranked.iloc[0]["i_cvr_30d"] == pytest.approx(1 / 51)


def test_rerun_without_new_snapshots_loads_nothing(home, first_run):
    store, _ = first_run
    again = fstore.materialize(home, store, CONTRACT)
    assert all(r["rows"] == 0 and r["skipped"] == "nothing new" for r in again.values())


def test_incremental_run_loads_only_new_days(home, first_run):
    store, _ = first_run
    fstore.materialize(home, store, CONTRACT)  # whatever earlier tests did, start up to date
    new = typed_events(pd.DataFrame([
        {"event_id": "n1", "user_id": 1, "item_id": 10, "event_type": "impression",
         "event_ts": pd.Timestamp("2025-04-12 10:00", tz="UTC"), "session_id": "s9",
         "device": "ios", "strength": 1.0},
        {"event_id": "n2", "user_id": 1, "item_id": 10, "event_type": "click",
         "event_ts": pd.Timestamp("2025-04-12 10:00:02", tz="UTC"), "session_id": "s9",
         "device": "ios", "strength": 1.0}]))
    write_event_store(home, new, batch_id="t2")
    build_snapshots(home, CONTRACT)
    result = fstore.materialize(home, store, CONTRACT)
    # user_stats rows after the old end: u2 on 04-12 and 04-13, u1 on 04-13
    assert result["user_stats"]["start"] == "2025-04-11T00:00:01+00:00"
    assert (result["user_stats"]["rows"], result["user_stats"]["entities"]) == (3, 2)
    assert result["item_profile"]["rows"] == 3 * 2
    u1 = fstore.online_features(store, CONTRACT, USER_TOWER, pd.DataFrame({"user_id": [1]}))
    assert u1.iloc[0]["u_clicks_30d"] == 1 and u1.iloc[0]["u_top_category"] == 1


def test_apply_follows_a_changed_contract(settings):
    """Dropping a feature and a whole service shows in the registry and the online reads."""
    write_tiny(settings)
    dropped = CONTRACT.service_features(USER_TOWER)[-1]
    features = tuple(dataclasses.replace(f, used_by=f.used_by - {RANKER})
                     for f in CONTRACT.features if f is not dropped)
    contract = dataclasses.replace(CONTRACT, features=features, services=(USER_TOWER, ITEM_TOWER))
    build_snapshots(settings, CONTRACT)
    fstore.apply(settings, CONTRACT)
    build_snapshots(settings, contract)
    report = fstore.apply(settings, contract)
    assert report["deleted_services"] == [RANKER]
    assert report["deleted_entities"] == report["deleted_views"] == []  # feast's own kept
    store = fstore.open_store(settings)
    assert sorted(s.name for s in store.list_feature_services()) == sorted(contract.services)
    fv = store.get_feature_view(dropped.view)
    assert dropped.name not in [f.name for f in fv.features]
    fstore.materialize(settings, store, contract)
    got = fstore.online_features(store, contract, USER_TOWER, pd.DataFrame({"user_id": [2]}))
    assert dropped.name not in got.columns
    assert list(got.columns) == ["user_id", *(f.name for f in contract.service_features(
        USER_TOWER))]
