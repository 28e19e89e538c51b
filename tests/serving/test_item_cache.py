"""ItemCache: chunked reads, lookups by id, updates, refresh and defaulted rows."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from serving.fallback import DEFAULTED, CounterLog, ResilientFetch
from serving.item_cache import ItemCache
from shoprec.contract import CONTRACT
from tests.serving.models import ITEM_IDS, TableFetcher, item_id, item_price


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_load_reads_the_item_part_in_chunks_and_gathers_in_request_order():
    store = TableFetcher(CONTRACT)
    cache = ItemCache(store, CONTRACT, chunk=10)
    table = cache.load(ITEM_IDS[::-1])  # any order in, sorted ids kept
    assert [len(df) for _, df in store.calls] == [10, 10, 10, 6]
    assert {service for service, _ in store.calls} == {"ranker@item"}
    assert table.ids.tolist() == sorted(ITEM_IDS.tolist())
    cols, defaulted = cache.gather(np.array([item_id(5), item_id(0), item_id(5)]))
    assert cols["i_price"].tolist() == [item_price(5), item_price(0), item_price(5)]
    assert cols["i_price"].tolist() == [85.0, 0.0, 85.0]  # (5 * 37) % 100
    assert cols["i_stock"].dtype == np.int64 and cols["i_stock"].tolist() == [1, 1, 1]
    assert not defaulted
    assert set(cols) == {f.name for f in CONTRACT.service_features("ranker@item")}
    assert "u_clicks_30d" not in cols and "ctx_hour" not in cols


def test_unknown_item_is_read_once_then_served_from_memory_with_defaults_for_no_row():
    store = TableFetcher(CONTRACT)
    cache = ItemCache(store, CONTRACT)
    cache.load(ITEM_IDS[:3])
    calls = len(store.calls)
    cols, _ = cache.gather(np.array([item_id(1), 77, item_id(30)]))
    assert len(store.calls) == calls + 1
    assert store.calls[-1][1]["item_id"].tolist() == [77, item_id(30)]
    assert cols["i_price"].tolist() == [item_price(1), 0.0, item_price(30)]  # 77: no row
    assert cols["i_category_id"].tolist() == [1, -1, 1]  # the contract default of a missing row
    cache.gather(np.array([77, item_id(30)]))
    assert len(store.calls) == calls + 1  # cached now
    assert cache.table.ids.tolist() == sorted([*ITEM_IDS[:3].tolist(), 77, item_id(30)])


def test_update_replaces_only_the_named_rows():
    store = TableFetcher(CONTRACT)
    cache = ItemCache(store, CONTRACT)
    cache.load(ITEM_IDS)
    store.items.loc[store.items["item_id"] == item_id(2), "i_price"] = 999.0
    store.items.loc[store.items["item_id"] == item_id(3), "i_price"] = 555.0
    assert cache.update(np.array([item_id(2)])) == 1
    cols, _ = cache.gather(np.array([item_id(2), item_id(3)]))
    assert cols["i_price"].tolist() == [999.0, item_price(3)]  # item 3 not re-read yet
    cache.refresh()
    assert cache.gather(np.array([item_id(3)]))[0]["i_price"].tolist() == [555.0]
    assert len(cache.table.ids) == len(ITEM_IDS)


class FlakyStore:
    """Fails while ``down`` is set, else answers like the table store."""

    def __init__(self) -> None:
        self.inner = TableFetcher(CONTRACT)
        self.down = False

    def __call__(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        if self.down:
            raise ConnectionError("online store unreachable")
        return self.inner(service, entity_df)


def test_rows_read_while_the_store_is_down_are_defaults_flagged_and_retried():
    store, clock, counters = FlakyStore(), Clock(), CounterLog()
    fetch = ResilientFetch(store, CONTRACT, counters, retry_after_s=5.0, clock=clock)
    cache = ItemCache(fetch, CONTRACT, chunk=20, clock=clock)
    store.down = True
    cache.load(ITEM_IDS)
    cols, defaulted = cache.gather(np.array([item_id(4)]))
    assert defaulted and cols["i_price"].tolist() == [0.0]
    assert counters.get("fallback", reason="feature_store") == 2  # one per chunk read
    store.down = False
    clock.now += 5.0  # the breaker lets the store be tried again
    assert cache.retry_defaulted() == len(ITEM_IDS)
    cols, defaulted = cache.gather(np.array([item_id(4)]))
    assert not defaulted and cols["i_price"].tolist() == [item_price(4)]
    assert cache.retry_defaulted() == 0


def test_background_refresh_picks_up_new_values_and_stops():
    store = TableFetcher(CONTRACT)
    cache = ItemCache(store, CONTRACT)
    cache.load(ITEM_IDS)
    store.items.loc[store.items["item_id"] == item_id(0), "i_price"] = 42.0
    stop = cache.start(every_s=0.05, retry_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while cache.gather(np.array([item_id(0)]))[0]["i_price"][0] != 42.0:
            assert time.monotonic() < deadline, "the refresh thread never re-read the store"
            time.sleep(0.02)
    finally:
        stop()
    calls = len(store.calls)
    time.sleep(0.2)
    assert len(store.calls) == calls  # stopped


def test_wrong_row_count_and_bad_arguments_are_errors():
    def short(service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        out = TableFetcher(CONTRACT)(service, entity_df).iloc[:-1]
        out.attrs[DEFAULTED] = False
        return out

    with pytest.raises(RuntimeError, match="returned 2 rows for 3 items"):
        ItemCache(short, CONTRACT).load(ITEM_IDS[:3])
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        ItemCache(TableFetcher(CONTRACT), CONTRACT, chunk=0)
    with pytest.raises(ValueError, match="refresh intervals must be > 0"):
        ItemCache(TableFetcher(CONTRACT), CONTRACT).start(0, 1)


def test_a_refresh_during_an_outage_keeps_the_last_good_rows():
    store, clock, counters = FlakyStore(), Clock(), CounterLog()
    fetch = ResilientFetch(store, CONTRACT, counters, retry_after_s=5.0, clock=clock)
    cache = ItemCache(fetch, CONTRACT, clock=clock)
    cache.load(ITEM_IDS[:4])
    store.down = True
    cache.refresh()
    cache.update(np.array([item_id(1), 77]))  # 77 was never read: it can only be defaults
    cols, defaulted = cache.gather(ITEM_IDS[:4])
    assert not defaulted and cols["i_price"].tolist() == [item_price(i) for i in range(4)]
    assert cols["i_category_id"].tolist() == [1, 1, 1, 1]
    cols, defaulted = cache.gather(np.array([77]))
    assert defaulted and cols["i_price"].tolist() == [0.0]
    assert counters.get("fallback", reason="feature_store") == 2  # refresh, then update
