"""Six hand-made events, every new recipe computed by hand: 1/7/30-day counts, Beta-smoothed
rates, recency, top-3 categories, price bands, and the behaviour history (order, truncation,
padding, time gaps) as the feature builder stores it and as models receive it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from feature_repo.build import build_snapshots
from feature_repo.online import conform
from shoprec.contract import CONTRACT, ITEM_SCHEMA, RANKER, USER_SCHEMA, USER_TOWER
from shoprec.sequences import decode_lists, pad_sequences
from shoprec.settings import Settings
from tests.data.feature_fixtures import typed_events, write_event_store, write_tables

TS = CONTRACT.timestamp_field
D = pd.Timestamp("2025-05-31", tz="UTC")  # the snapshot checked: events strictly before it
D_1 = pd.Timestamp("2025-05-30", tz="UTC")

# (item, type, time): user 7 only. Item 9 is not in the catalogue (category unknown: -1).
SIX = [
    (9, "fav", "2025-04-30 23:00:00"),         # day 04-30: in D-1's 30 days, not in D's
    (1, "click", "2025-05-01 10:00:00"),       # first day of D's 30-day window
    (2, "impression", "2025-05-25 12:00:00"),  # D-7 = 05-24: in the 7-day window
    (2, "click", "2025-05-25 12:00:30"),
    (3, "cart", "2025-05-30 08:00:00"),        # the 1-day window of D
    (3, "purchase", "2025-05-30 18:00:00"),
]
ITEMS = {1: (5, 12.0), 2: (6, 250.0), 3: (5, 0.5), 4: (6, 5000.0)}  # item: (category, price)


def write_six(settings: Settings) -> None:
    """The six events of user 7, the four-item catalogue and the user table."""
    events = pd.DataFrame([{"event_id": f"h{i}", "user_id": 7, "item_id": item,
                            "event_type": kind, "event_ts": pd.Timestamp(ts, tz="UTC"),
                            "session_id": "s", "device": "ios", "strength": 1.0}
                           for i, (item, kind, ts) in enumerate(SIX)])
    write_event_store(settings, typed_events(events))
    items = pd.DataFrame({
        "item_id": np.array(list(ITEMS), np.int64),
        "category_id": np.array([c for c, _ in ITEMS.values()], np.int64),
        "shop_id": np.array([1, 1, 2, 2], np.int64), "price": [p for _, p in ITEMS.values()],
        "launch_ts": [pd.Timestamp("2025-01-01", tz="UTC")] * 4,
        "stock": np.array([1, 2, 3, 4], np.int64)})[ITEM_SCHEMA.names]
    users = pd.DataFrame({"user_id": np.array([7], np.int64), "age_band": np.array([1], np.int64),
                          "city_tier": np.array([1], np.int64),
                          "signup_ts": [pd.Timestamp("2025-01-01", tz="UTC")]})[USER_SCHEMA.names]
    write_tables(settings, items, users)


@pytest.fixture(scope="module")
def snaps(tmp_path_factory) -> dict[str, pd.DataFrame]:
    settings = Settings(home=tmp_path_factory.mktemp("six") / "home")
    write_six(settings)
    return {view: pd.read_parquet(path)
            for view, path in build_snapshots(settings, CONTRACT).items()}


def at(df: pd.DataFrame, key: str, ident: int, day: pd.Timestamp) -> pd.Series:
    hit = df[(df[key] == ident) & (df[TS] == day)]
    assert len(hit) == 1, (key, ident, day)
    return hit.iloc[0]


def test_counts_per_behaviour_and_window(snaps):
    r = at(snaps["user_stats"], "user_id", 7, D)
    got = {f"{b}_{w}": r[f"u_{b}_{w}d"] for b in ("impressions", "clicks", "carts", "favs",
                                                  "purchases") for w in (1, 7, 30)}
    assert got == {"impressions_1": 0, "impressions_7": 1, "impressions_30": 1,
                   "clicks_1": 0, "clicks_7": 1, "clicks_30": 2,
                   "carts_1": 1, "carts_7": 1, "carts_30": 1,
                   "favs_1": 0, "favs_7": 0, "favs_30": 0,  # 04-30 fell out of the window
                   "purchases_1": 1, "purchases_7": 1, "purchases_30": 1}
    assert at(snaps["user_stats"], "user_id", 7, D_1)["u_favs_30d"] == 1


def test_rates_prices_categories_and_recency(snaps):
    r = at(snaps["user_stats"], "user_id", 7, D)
    assert r["u_ctr_30d"] == pytest.approx((2 + 1) / (1 + 1 + 19))  # Beta(1, 19)
    assert r["u_cvr_30d"] == pytest.approx((1 + 1) / (2 + 1 + 49))  # purchases / clicks
    assert r["u_avg_price_30d"] == pytest.approx((12.0 + 250.0) / 2)  # clicked items
    assert r["u_avg_paid_30d"] == pytest.approx(0.5)  # purchased item
    # positives in 30 days: click 1 (cat 5), click 2 (cat 6), cart 3 + purchase 3 (cat 5)
    assert (r["u_top_category"], r["u_top_category_2"], r["u_top_category_3"]) == (5, 6, -1)
    assert r["u_days_since_last"] == pytest.approx(6 / 24)  # purchase at 18:00 the day before
    r = at(snaps["user_stats"], "user_id", 7, D_1)  # last event: 05-25 12:00:30
    assert r["u_days_since_last"] == pytest.approx(4 + (11 * 3600 + 59 * 60 + 30) / 86400)
    # categories at D-1: fav 9 is unknown (not counted), click 1 -> 5, click 2 -> 6: a tie
    assert (r["u_top_category"], r["u_top_category_2"]) == (5, 6)


def test_item_popularity_and_price_band(snaps):
    st = snaps["item_stats"]
    assert [at(st, "item_id", 3, D)[f"i_popularity_{w}d"] for w in (1, 7, 30)] == [2, 2, 2]
    assert [at(st, "item_id", 2, D)[f"i_popularity_{w}d"] for w in (1, 7, 30)] == [0, 1, 1]
    assert at(st, "item_id", 2, D)["i_ctr_30d"] == pytest.approx((1 + 1) / (1 + 20))
    pr = snaps["item_profile"]
    # bands of the 1-2-5 series: 0.5 < 1 -> 0; [10, 20) -> 4; [200, 500) -> 8; >= 5000 -> 12
    assert [at(pr, "item_id", i, D)["i_price_band"] for i in (3, 1, 2, 4)] == [0, 4, 8, 12]


def test_history_order_gaps_and_unknown_category(snaps):
    r = at(snaps["user_sequence"], "user_id", 7, D)
    assert r["u_hist_item_ids"] == "1 2 3 3"  # stored encoding; positives only, oldest first
    assert r["u_hist_category_ids"] == "5 6 5 5"
    (gaps,) = decode_lists([r["u_hist_gap_hours"]], "float64")
    np.testing.assert_allclose(gaps, [29 * 24 + 14, 5 * 24 + 11 + 59.5 / 60, 16.0, 6.0])
    r = at(snaps["user_sequence"], "user_id", 7, D_1)
    assert r["u_hist_item_ids"] == "9 1 2"
    assert r["u_hist_category_ids"] == "-1 5 6"  # item 9: not in the catalogue
    (gaps,) = decode_lists([r["u_hist_gap_hours"]], "float64")
    np.testing.assert_allclose(gaps, [29 * 24 + 1, 28 * 24 + 14, 4 * 24 + 11 + 59.5 / 60])


def test_models_get_newest_last_left_padded(snaps):
    frame = snaps["user_sequence"][snaps["user_sequence"][TS] == D].reset_index(drop=True)
    served = conform(frame, CONTRACT, USER_TOWER)
    cell = served.loc[0, "u_hist_item_ids"]
    assert len(cell) == 50 and cell.tolist() == [-1] * 46 + [1, 2, 3, 3]
    assert served.loc[0, "u_hist_gap_hours"][:46].tolist() == [0.0] * 46
    short = dataclasses.replace(CONTRACT.feature("u_hist_item_ids"), max_len=3)
    assert pad_sequences(frame["u_hist_item_ids"], short).tolist() == [[2, 3, 3]]
    # an entity without a row (cold start, TTL miss) is all padding on every consumer
    cold = conform(pd.DataFrame({"user_id": [8], "item_id": [1]}), CONTRACT, RANKER)
    assert cold.loc[0, "u_hist_category_ids"].tolist() == [-1] * 50
    assert cold.loc[0, "ctx_device"] == -1 and cold.loc[0, "u_days_since_last"] == 30.0


def test_builder_keeps_only_max_len_newest(settings):
    """max_len is part of the recipe's meaning: the stored list is already cut to it."""
    short = tuple(dataclasses.replace(f, max_len=2) if f.kind == "sequence" else f
                  for f in CONTRACT.features)
    write_six(settings)
    seq = pd.read_parquet(build_snapshots(settings, dataclasses.replace(
        CONTRACT, features=short))["user_sequence"])
    r = at(seq, "user_id", 7, D)
    assert (r["u_hist_item_ids"], r["u_hist_category_ids"]) == ("3 3", "5 5")
