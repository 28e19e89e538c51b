"""serving.fallback: counters, the defaulting feature fetch, the popularity catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.fallback import (
    DEFAULTED,
    FALLBACK,
    CounterLog,
    ResilientFetch,
    default_features,
    load_catalogue,
)
from shoprec.contract import CONTRACT, RANKER, USER_TOWER
from tests.serving.models import TableFetcher, item_id

ROLES = {"category": "i_category_id", "stock": "i_stock", "age_days": "i_age_days",
         "popularity": "i_clicks_30d"}


class Outage:
    """A real in-memory store that can be switched off (raises like a lost connection)."""

    def __init__(self) -> None:
        self.store, self.down, self.calls = TableFetcher(CONTRACT), False, 0

    def __call__(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        if self.down:
            raise ConnectionError("online store unreachable")
        return self.store(service, entity_df)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counters_count_by_labels_and_mirror_to_a_sink() -> None:
    seen = []
    log = CounterLog(lambda metric, labels, n: seen.append((metric, dict(labels), n)))
    log.inc(FALLBACK, reason="ranker")
    log.inc(FALLBACK, reason="ranker")
    log.inc("variant", layer="ranker", variant="champion")
    assert log.get(FALLBACK, reason="ranker") == 2 and log.get(FALLBACK, reason="x") == 0
    assert log.snapshot() == {"fallback{reason=ranker}": 2.0,
                              "variant{layer=ranker,variant=champion}": 1.0}
    assert seen[0] == (FALLBACK, {"reason": "ranker"}, 1.0) and len(seen) == 3
    with pytest.raises(ValueError, match=r"takes labels \('reason',\)"):
        log.inc(FALLBACK, layer="x")


def test_defaults_are_the_contract_defaults() -> None:
    df = default_features(pd.DataFrame({"user_id": [3]}), CONTRACT, USER_TOWER)
    assert df.attrs[DEFAULTED] is True
    for f in CONTRACT.service_features(USER_TOWER):
        if f.kind == "sequence":  # no history: max_len pad elements
            assert np.asarray(df[f.name].iloc[0]).tolist() == [f.default] * f.max_len
        else:
            assert df[f.name].tolist() == [f.default]


def test_store_outage_serves_defaults_and_retries_after_the_interval() -> None:
    store, clock, counters = Outage(), Clock(), CounterLog()
    fetch = ResilientFetch(store, CONTRACT, counters, retry_after_s=5.0, clock=clock)
    keys = pd.DataFrame({"user_id": [7, 7], "item_id": [item_id(1), item_id(2)]})
    ok = fetch(RANKER, keys)
    assert ok.attrs[DEFAULTED] is False and ok["i_price"].tolist() == [37.0, 74.0]
    store.down = True
    down = fetch(RANKER, keys)
    assert down.attrs[DEFAULTED] is True and down["i_price"].tolist() == [0.0, 0.0]
    assert down["item_id"].tolist() == keys["item_id"].tolist()
    clock.now += 4.9
    fetch(RANKER, keys)  # within the interval: the store is not called at all
    assert store.calls == 2 and counters.get(FALLBACK, reason="feature_store") == 2
    store.down = False
    clock.now += 0.2
    assert fetch(RANKER, keys).attrs[DEFAULTED] is False and store.calls == 3


def test_short_answer_counts_as_a_failure() -> None:
    counters = CounterLog()
    fetch = ResilientFetch(lambda s, df: TableFetcher(CONTRACT)(s, df).head(1), CONTRACT,
                           counters)
    out = fetch(USER_TOWER, pd.DataFrame({"user_id": [7, 8]}))
    assert out.attrs[DEFAULTED] and len(out) == 2
    assert counters.get(FALLBACK, reason="feature_store") == 1


def snapshot(tmp_path, view: str, rows: dict) -> None:
    pd.DataFrame(rows).to_parquet(tmp_path / f"{view}.parquet")


def test_catalogue_uses_the_newest_snapshot_and_ranks_popularity(tmp_path) -> None:
    ts = pd.to_datetime(["2026-03-01", "2026-03-02"] * 2 + ["2026-03-02"], utc=True)
    # Item 1: 9 clicks on day 1 but 2 on day 2 (the newest counts); 2 and 3 tie at 5.
    snapshot(tmp_path, "item_stats", {
        "item_id": [1, 1, 2, 2, 3], "feature_ts": ts, "i_impressions_30d": [0] * 5,
        "i_clicks_30d": [9, 2, 1, 5, 5]})
    snapshot(tmp_path, "item_profile", {
        "item_id": [1, 2, 3, 4], "feature_ts": ts[:4], "i_category_id": [7, 7, 8, 9],
        "i_stock": [0, 3, 1, 1], "i_age_days": [1.0, 2.0, 3.0, 4.0]})
    cat = load_catalogue(tmp_path, CONTRACT, ROLES, "popularity", np.array([1, 2, 3, 4, 5]))
    assert cat.popular.tolist() == [2, 3, 1]  # 4 and 5 have no item_stats row
    attrs = cat.attributes(np.array([3, 5, 1]))
    assert attrs["popularity"].tolist()[::2] == [5.0, 2.0] and np.isnan(attrs["stock"].iloc[1])
    assert attrs["category"].tolist()[0] == 8.0


def test_catalogue_without_snapshots_knows_nothing(tmp_path) -> None:
    cat = load_catalogue(tmp_path, CONTRACT, ROLES, "popularity", np.array([1, 2]))
    assert cat.popular.tolist() == []
    assert cat.attributes(np.array([1])).isna().all(axis=None)
