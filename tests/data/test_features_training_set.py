"""Point-in-time training sets through the FeatureServices, with the offline store's drop/NaN
traps reproduced, repaired and counted (tiny hand-made log, real Feast file offline store)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from feature_repo import store as fstore
from feature_repo.build import build_snapshots
from feature_repo.historical import service_features
from feature_repo.online import feast_fetcher
from feature_repo.training_set import DATASETS, build_training_sets, dataset_columns, ranker_rows
from shoprec.contract import CONTRACT, DEVICES, ITEM_TOWER, RANKER, USER_TOWER
from shoprec.settings import Settings
from tests.data.feature_fixtures import typed_events, write_tiny

LABELS = list(dict.fromkeys([CONTRACT.label, *CONTRACT.task_labels.values()]))


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def prepare(settings: Settings, contract=CONTRACT):
    write_tiny(settings)
    build_snapshots(settings, contract)
    fstore.apply(settings, contract)
    return fstore.open_store(settings)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("sets") / "home")
    store = prepare(settings)
    out = build_training_sets(settings, CONTRACT, store)
    return settings, store, out


def test_columns_come_from_the_contract_services(built):
    _, _, out = built
    for name, services in DATASETS.items():
        df = pd.read_parquet(out[name])
        feats = {f.name for s in services for f in CONTRACT.service_features(s)}
        assert list(df.columns) == dataset_columns(CONTRACT, name)
        assert set(df.columns) - {"user_id", "item_id", "event_ts", *LABELS} == feats
        for f in CONTRACT.features:
            if f.name in feats and f.kind == "sequence":  # padded: fixed length, element dtype
                assert {(len(v), str(v.dtype)) for v in df[f.name]} == {(f.max_len, f.dtype)}
            elif f.name in feats:
                assert str(df[f.name].dtype) == f.dtype, f.name
        assert not df.isna().any().any()
    assert dataset_columns(CONTRACT, "ranker")[3:5] == ["label", "label_purchase"]


def test_ranker_rows_labels_and_point_in_time_values(built):
    _, _, out = built
    df = pd.read_parquet(out["ranker"])
    assert df["event_ts"].is_monotonic_increasing and len(df) == 8  # one row per impression
    assert df[CONTRACT.label].tolist() == [1, 0, 0, 1, 1, 1, 0, 1]
    # only u1's impression of item 12 (s3, 08:00) is followed by a purchase (08:00:30, s3)
    assert df[CONTRACT.task_labels["cvr"]].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    # request-time features from the impression itself: 03-01 is a Saturday; web; u2's 04-10
    # impression has no session and no device
    assert df["ctx_hour"].tolist() == [9, 9, 10, 8, 8, 12, 23, 7]
    assert df["ctx_weekday"].tolist() == [5, 5, 5, 6, 6, 0, 0, 3]
    assert df["ctx_device"].tolist() == [DEVICES.index("web")] * 7 + [-1]
    r = df.iloc[3].to_dict()  # u1 x item 12 on 03-02 08:00: user snapshot 03-02
    assert (r["u_impressions_30d"], r["u_clicks_30d"], r["u_top_category"]) == (2, 1, 1)
    # history as of 03-02: the 03-01 click on item 10 (category 1), 15 h before midnight
    assert r["u_hist_item_ids"].tolist() == [-1] * 49 + [10]
    assert r["u_hist_category_ids"].tolist() == [-1] * 49 + [1]
    assert r["u_hist_gap_hours"][-1] == pytest.approx(15 - 5 / 3600)
    # item 12 has no item_stats row before 03-03 (dropped by Feast): defaults, but its
    # item_profile values are recovered from the same FeatureService's other view
    assert (r["i_impressions_30d"], r["i_ctr_30d"]) == (0, 0.05)
    assert (r["i_category_id"], r["i_shop_id"], r["i_price"], r["i_age_days"]) == (2, 101, 20.0,
                                                                                   60.0)
    r = df.iloc[5].to_dict()  # u2 x item 12 on 03-03 12:00: snapshots of 03-03
    assert (r["u_impressions_30d"], r["i_impressions_30d"], r["i_purchases_30d"]) == (1, 1, 1)
    assert r["i_cvr_30d"] == pytest.approx(2 / 51)
    r = df.iloc[6].to_dict()  # u3's first event (03-03 23:59:59) does not see itself
    assert (r["u_impressions_30d"], r["i_impressions_30d"]) == (0, 2)
    r = df.iloc[7].to_dict()  # 04-10: u2's last row (04-03) is older than the 2-day ttl
    assert (r["u_impressions_30d"], r["u_ctr_30d"], r["i_age_days"]) == (0, 0.05, 38.5)
    assert r["u_hist_item_ids"].tolist() == [-1] * 50  # dropped sequence: refilled as empty
    assert r["u_days_since_last"] == 30.0


def test_report_counts_the_repairs(built):
    settings, _, out = built
    ranker = out["summary"]["ranker"]
    # rows 0-2 (03-01, before any snapshot), 3 (item 12), 6 (u3), 7 (u2 past ttl)
    assert ranker["services"][RANKER]["dropped_refilled"] == 6
    assert ranker["services"][RANKER]["recovered_from_views"] == 3  # rows 3, 6, 7
    assert ranker["services"][RANKER]["nan_filled"] == 0
    assert ranker["positives"] == 5 and ranker["rows"] == 8
    assert ranker["positives_by_task"] == {"ctr": 5, "cvr": 1}
    assert json.loads((settings.datasets_dir / "report.json").read_text()) == json.loads(
        json.dumps(out["summary"]))


def test_retrieval_rows_are_positive_events(built):
    _, _, out = built
    df = pd.read_parquet(out["retrieval"])
    assert len(df) == 6 and df["event_ts"].is_monotonic_increasing
    r = df.iloc[1].to_dict()  # u1 clicks item 12 on 03-02: user 03-02, item profile 03-02
    assert (r["user_id"], r["item_id"], r["u_clicks_30d"], r["i_clicks_30d"],
            r["i_price"]) == (1, 12, 1, 0, 20.0)


def test_drop_and_nan_traps_are_repaired_in_order(built):
    _, store, _ = built
    rows = pd.DataFrame({"user_id": [2, 404, 1, 1, 2],
                         "event_ts": [utc("2025-03-05 09:00"), utc("2025-03-05 09:00"),
                                      utc("2025-04-10 12:00"), utc("2025-03-04 10:00"),
                                      utc("2025-03-05 09:00")]})
    feats, counts = service_features(store, CONTRACT, USER_TOWER, rows, "event_ts")
    assert list(feats.columns) == [f.name for f in CONTRACT.service_features(USER_TOWER)]
    # order kept; duplicate (key, ts) rows both answered
    assert feats["u_clicks_30d"].tolist() == [1, 0, 0, 3, 1]
    assert feats["u_top_category"].tolist() == [2, -1, -1, 2, 2]
    hist = np.stack(feats["u_hist_item_ids"].to_numpy())  # u2 on 03-05: its 03-03 click
    assert hist[:, -4:].tolist() == [[-1, -1, -1, 12], [-1] * 4, [-1] * 4, [10, 12, 12, 11],
                                     [-1, -1, -1, 12]]
    assert (hist[:, :-4] == -1).all()
    # user 1 on 04-10 has only rows older than ttl: dropped by Feast and re-added;
    # user 404 is absent from the source: NaN from Feast, filled with defaults
    assert (counts["rows"], counts["dropped_refilled"], counts["nan_filled"]) == (5, 1, 1)


def test_dropping_a_feature_changes_sets_and_service(settings):
    dropped = CONTRACT.service_features(RANKER)[-1]
    contract = dataclasses.replace(
        CONTRACT, features=tuple(f for f in CONTRACT.features if f is not dropped))
    store = prepare(settings, contract)
    svc = store.get_feature_service(RANKER)
    served = [f.name for p in svc.feature_view_projections for f in p.features]
    assert dropped.name not in served
    assert sorted(served) == sorted(f.name for f in contract.service_features(RANKER))
    out = build_training_sets(settings, contract, store)
    ranker = pd.read_parquet(out["ranker"])
    assert dropped.name not in ranker.columns
    assert list(ranker.columns) == dataset_columns(contract, "ranker")
    retrieval = pd.read_parquet(out["retrieval"])
    assert list(retrieval.columns) == dataset_columns(contract, "retrieval")
    assert set(dataset_columns(CONTRACT, "retrieval")) - set(retrieval.columns) == (
        {dropped.name} & {f.name for s in (USER_TOWER, ITEM_TOWER)
                          for f in CONTRACT.service_features(s)})


def test_purchase_label_rule_by_hand():
    """cvr: a purchase of the same user and item at/after the impression, in its session;
    without a session, on the same UTC day among events without a session."""
    rows = [("impression", 1, "2025-03-01 10:00", "a"), ("purchase", 1, "2025-03-01 10:05", "a"),
            ("impression", 2, "2025-03-01 10:00", "a"), ("purchase", 2, "2025-03-01 10:05", "b"),
            ("purchase", 3, "2025-03-01 09:00", "a"), ("impression", 3, "2025-03-01 10:00", "a"),
            ("impression", 4, "2025-03-01 23:00", None), ("purchase", 4, "2025-03-01 23:30", None),
            ("impression", 5, "2025-03-01 23:00", None), ("purchase", 5, "2025-03-02 00:10", None)]
    events = typed_events(pd.DataFrame([
        {"event_id": f"p{i}", "user_id": 1, "item_id": item, "event_type": kind,
         "event_ts": pd.Timestamp(ts, tz="UTC"), "session_id": sess, "device": None,
         "strength": 1.0} for i, (kind, item, ts, sess) in enumerate(rows)]))
    got = ranker_rows(events.astype({"session_id": object, "device": object}), CONTRACT)
    assert got["item_id"].tolist() == [1, 2, 3, 4, 5]
    # same session; other session; purchase before; same day w/o session; next day w/o session
    assert got[CONTRACT.task_labels["cvr"]].tolist() == [1, 0, 0, 1, 0]
    assert got["request_ts"].equals(got["event_ts"]) and got["request_device"].isna().all()


def test_request_features_same_offline_and_online(built):
    """The on-demand view computes hour/weekday/device with feature_repo.request_context.compute
    both in get_historical_features (training) and get_online_features (serving)."""
    settings, store, _ = built
    fstore.materialize(settings, store, CONTRACT)
    view = CONTRACT.request_views[0].name
    udf_text = store.get_on_demand_feature_view(view).feature_transformation.udf_string
    assert "from feature_repo.request_context import compute" in udf_text
    when = pd.Series([utc("2025-03-02 08:00"), utc("2025-04-10 07:00"), utc("2025-03-05 21:30")])
    rows = pd.DataFrame({"user_id": [1, 2, 404], "item_id": [10, 11, 12], "event_ts": when,
                         "request_ts": when, "request_device": ["ios", None, "android"]})
    names = [f.name for f in CONTRACT.view_features(view)]
    # row 1 (u2 past its ttl) is dropped by Feast's join and recomputed by the same function
    offline, counts = service_features(store, CONTRACT, RANKER, rows, "event_ts")
    assert counts["dropped_refilled"] == 1
    online = feast_fetcher(store, CONTRACT)(RANKER, rows.drop(columns="event_ts"))
    want = {"ctx_hour": [8, 7, 21], "ctx_weekday": [6, 3, 2],  # Sunday, Thursday, Wednesday
            "ctx_device": [DEVICES.index("ios"), -1, DEVICES.index("android")]}
    assert offline[names].to_dict("list") == want
    assert online[names].to_dict("list") == want
    # a serving request without request fields: now, unknown device
    bare = feast_fetcher(store, CONTRACT)(RANKER, rows[["user_id", "item_id"]])
    assert bare["ctx_device"].tolist() == [-1, -1, -1]
    assert bare["ctx_hour"].tolist() == [pd.Timestamp.now(tz="UTC").hour] * 3 or \
        pd.Timestamp.now(tz="UTC").minute == 0  # (unless the hour just turned)
