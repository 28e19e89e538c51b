"""RankerInputs: the fast assembly equals the per-pair store read, by hand and on real Feast."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from feature_repo.online import feast_fetcher
from serving.columns import feature_array
from serving.fallback import DEFAULTED
from serving.item_cache import ItemCache
from serving.ranker_inputs import RankerInputs
from serving.recommender import model_inputs
from shoprec.contract import CONTRACT, DEVICES, RANKER
from shoprec.settings import Settings
from tests.serving.models import ITEM_IDS, TableFetcher, item_id, item_price

WHEN = pd.Timestamp("2026-03-04 17:25", tz="UTC")  # a Wednesday: weekday 2, hour 17


def fast(store, user_id: int, items: np.ndarray, request: dict):
    plan, cache = RankerInputs(CONTRACT), ItemCache(store, CONTRACT)
    user = store(plan.user_part, pd.DataFrame({"user_id": [user_id]}))
    cols, defaulted = cache.gather(items)
    return plan.rows(user, items, cols, request, defaulted)


def test_user_row_repeated_item_rows_by_id_request_features_computed_once():
    items = np.array([item_id(3), item_id(1)], dtype=np.int64)
    rows = fast(TableFetcher(CONTRACT), 7, items,
                {"request_ts": WHEN, "request_device": "android"})
    c = rows.columns
    assert list(c)[:2] == ["user_id", "item_id"]
    assert list(c)[2:] == [f.name for f in CONTRACT.service_features(RANKER)]
    assert c["user_id"].tolist() == [7, 7] and c["item_id"].tolist() == items.tolist()
    assert c["u_clicks_30d"].tolist() == [3, 3] and c["u_ctr_30d"].tolist() == [0.5, 0.5]
    assert c["i_price"].tolist() == [item_price(3), item_price(1)] == [11.0, 37.0]
    assert c["ctx_hour"].tolist() == [17, 17] and c["ctx_weekday"].tolist() == [2, 2]
    assert c["ctx_device"].tolist() == [DEVICES.index("android")] * 2 == [1, 1]
    hist = c["u_hist_item_ids"]  # user 7 has no history row: all padding
    assert hist.shape == (2, CONTRACT.feature("u_hist_item_ids").max_len)
    assert (hist == -1).all()
    assert len(rows) == 2 and not rows.defaulted


def test_missing_request_fields_mean_now_and_an_unknown_device():
    plan = RankerInputs(CONTRACT)
    now = datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert plan.request_values({}, now) == {"request_ts": pd.Timestamp(now),
                                            "request_device": None}
    rows = fast(TableFetcher(CONTRACT), 7, ITEM_IDS[:1], {"request_ts": WHEN})
    assert rows.columns["ctx_device"].tolist() == [-1]


def test_equals_the_per_pair_read_on_every_stored_feature():
    """The table store computes no request features, so those are compared elsewhere."""
    store = TableFetcher(CONTRACT)
    items = ITEM_IDS[[5, 0, 9, 0]]
    rows = fast(store, 8, items, {})
    pairs = pd.DataFrame({"user_id": np.full(len(items), 8), "item_id": items})
    ref = model_inputs(store(RANKER, pairs), ["user_id", "item_id"], CONTRACT, RANKER)
    for name, want in ref.items():
        if not name.startswith("ctx_"):
            np.testing.assert_array_equal(rows.columns[name], want, err_msg=name)
            assert rows.columns[name].dtype == want.dtype, name


def test_frame_and_take_keep_rows_together():
    rows = fast(TableFetcher(CONTRACT), 7, ITEM_IDS[:3], {"request_ts": WHEN})
    sub = rows.take(np.array([2, 0]))
    assert sub.columns["item_id"].tolist() == [ITEM_IDS[2], ITEM_IDS[0]]
    assert sub.columns["i_price"].tolist() == [item_price(2), item_price(0)]
    frame = sub.frame()
    assert frame["request_ts"].tolist() == [WHEN, WHEN]
    assert frame["request_device"].tolist() == [None, None]
    back = feature_array(frame, "u_hist_item_ids", CONTRACT)
    np.testing.assert_array_equal(back, sub.columns["u_hist_item_ids"])


def test_defaulted_parts_are_reported_separately():
    store = TableFetcher(CONTRACT)
    plan = RankerInputs(CONTRACT)
    user = store(plan.user_part, pd.DataFrame({"user_id": [7]}))
    user.attrs[DEFAULTED] = True
    cols, _ = ItemCache(store, CONTRACT).gather(ITEM_IDS[:2])
    rows = plan.rows(user, ITEM_IDS[:2], cols, {}, items_defaulted=False)
    assert rows.user_defaulted and not rows.items_defaulted and rows.defaulted


def test_a_feature_keyed_by_neither_part_is_refused():
    import dataclasses

    from shoprec.contract_model import Entity, FeatureViewSpec

    shop = Entity("shop", "shop_id", "A seller.")
    view = FeatureViewSpec("shop_stats", "shop", 2, "Shop aggregates.")
    feat = dataclasses.replace(CONTRACT.feature("i_clicks_30d"), name="s_clicks_30d",
                               view="shop_stats")
    odd = dataclasses.replace(CONTRACT, entities=(*CONTRACT.entities, shop),
                              views=(*CONTRACT.views, view), features=(*CONTRACT.features, feat))
    with pytest.raises(ValueError, match=r"keyed by neither user nor item: \['s_clicks_30d'\]"):
        RankerInputs(odd)


@pytest.mark.integration
def test_equals_feast_per_pair_read_including_on_demand_features(tmp_path):
    """Real Feast store (sqlite online, on-demand request view), recent events: all equal."""
    from feature_repo import store as fstore
    from feature_repo.build import build_snapshots
    from tests.data.feature_fixtures import synthetic_log, write_event_store, write_tables

    settings = Settings(home=tmp_path / "home")
    start = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=6)).strftime("%Y-%m-%d")
    events, items_table, users_table = synthetic_log(4000, n_users=12, n_items=30, days=6,
                                                     start=start)
    write_event_store(settings, events)
    write_tables(settings, items_table, users_table)
    build_snapshots(settings, CONTRACT)
    fstore.apply(settings, CONTRACT)
    store = fstore.open_store(settings)
    fstore.materialize(settings, store, CONTRACT)
    fetch = feast_fetcher(store, CONTRACT)
    items = np.array([12, 0, 7, 3, 999], dtype=np.int64)  # 999: no row anywhere
    checked = 0
    for user_id in (1, 2, 4242):  # 4242: no row
        for device in ("ios", None):
            request = {"request_ts": WHEN} if device is None else \
                {"request_ts": WHEN, "request_device": device}
            rows = fast(fetch, user_id, items, request)
            pairs = pd.DataFrame({"user_id": np.full(len(items), user_id), "item_id": items,
                                  "request_ts": [WHEN] * len(items),
                                  "request_device": [device] * len(items)})
            ref = model_inputs(fetch(RANKER, pairs), ["user_id", "item_id"], CONTRACT, RANKER)
            assert set(ref) == set(rows.columns)
            for name, want in ref.items():
                np.testing.assert_array_equal(rows.columns[name], want,
                                              err_msg=f"{name} user {user_id} {device}")
                assert rows.columns[name].dtype == want.dtype, name
                checked += 1
    assert checked == 6 * len(rows.columns)
    # the compared values are store values, not defaults: they differ by item and by user
    one = fast(fetch, 1, items, {"request_ts": WHEN}).columns
    two = fast(fetch, 2, items, {"request_ts": WHEN}).columns
    assert len(set(one["i_price"][:4].tolist())) == 4 and one["i_price"][4] == 0.0
    assert (one["u_hist_item_ids"] >= 0).any() and one["u_impressions_30d"][0] > 0
    assert not np.array_equal(one["u_hist_item_ids"], two["u_hist_item_ids"])
