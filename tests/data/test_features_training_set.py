"""Point-in-time training sets through the FeatureServices, with the offline store's drop/NaN
traps reproduced, repaired and counted (tiny hand-made log, real Feast file offline store)."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from feature_repo import store as fstore
from feature_repo.build import build_snapshots
from feature_repo.historical import service_features
from feature_repo.training_set import DATASETS, build_training_sets, dataset_columns
from shoprec.contract import CONTRACT, ITEM_TOWER, RANKER, USER_TOWER
from shoprec.settings import Settings
from tests.data.feature_fixtures import write_tiny


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
        assert set(df.columns) - {"user_id", "item_id", "event_ts", CONTRACT.label} == feats
        for f in CONTRACT.features:
            if f.name in feats:
                assert str(df[f.name].dtype) == f.dtype, f.name
        assert not df.isna().any().any()


def test_ranker_rows_labels_and_point_in_time_values(built):
    _, _, out = built
    df = pd.read_parquet(out["ranker"])
    assert df["event_ts"].is_monotonic_increasing and len(df) == 8  # one row per impression
    assert df[CONTRACT.label].tolist() == [1, 0, 0, 1, 1, 1, 0, 1]
    r = df.iloc[3].to_dict()  # u1 x item 12 on 03-02 08:00: user snapshot 03-02
    assert (r["u_impressions_30d"], r["u_clicks_30d"], r["u_top_category"]) == (2, 1, 1)
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


def test_report_counts_the_repairs(built):
    settings, _, out = built
    ranker = out["summary"]["ranker"]
    # rows 0-2 (03-01, before any snapshot), 3 (item 12), 6 (u3), 7 (u2 past ttl)
    assert ranker["services"][RANKER]["dropped_refilled"] == 6
    assert ranker["services"][RANKER]["recovered_from_views"] == 3  # rows 3, 6, 7
    assert ranker["services"][RANKER]["nan_filled"] == 0
    assert ranker["positives"] == 5 and ranker["rows"] == 8
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
