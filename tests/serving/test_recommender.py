"""Recommender logic on real SavedModels and a real FAISS index (see tests/serving/models.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.recommender import InvalidRequest, Recommender, validate_request
from shoprec.contract import CONTRACT, RANKER, USER_TOWER
from tests.serving.models import ITEM_IDS, N_ITEMS, TableFetcher, item_id, item_price


def make(artifacts, n_candidates: int = 5) -> tuple[Recommender, TableFetcher]:
    fetch = TableFetcher(CONTRACT)
    return Recommender(artifacts, fetch, CONTRACT, n_candidates=n_candidates), fetch


def test_hand_computed_ranking(artifacts):
    # User 7 sits at 7 + (3 + 1 + 0.45 + 3) = 14.45 degrees. Nearest items by angle:
    # i1 (10), i2 (20), i0 (0), i3 (30), i35 (350); prices 37, 74, 0, 11, 95.
    rec, _ = make(artifacts, n_candidates=5)
    got = rec.recommend(7, 3)
    assert [r["item_id"] for r in got] == [item_id(35), item_id(2), item_id(1)]
    assert [r["score"] for r in got] == pytest.approx([0.953, 0.743, 0.373], abs=1e-5)


def test_cold_start_user_uses_contract_defaults(artifacts):
    # No feature row: every feature at its default -> 123 degrees;
    # candidates i12, i13, i11, i14, i10 (prices 44, 81, 7, 18, 70).
    rec, _ = make(artifacts, n_candidates=5)
    got = rec.recommend(123, 3)
    assert [r["item_id"] for r in got] == [item_id(13), item_id(10), item_id(12)]
    assert [r["score"] for r in got] == pytest.approx([0.81, 0.70, 0.44], abs=1e-5)


@pytest.mark.parametrize("user_id,k", [(7, 10), (8, 1), (50, 25), (99_999, 100)])
def test_k_distinct_items_from_index_scores_descending(artifacts, user_id, k):
    rec, _ = make(artifacts, n_candidates=20)
    got = rec.recommend(user_id, k)
    ids = [r["item_id"] for r in got]
    scores = [r["score"] for r in got]
    assert len(ids) == min(k, N_ITEMS)
    assert len(set(ids)) == len(ids)
    assert set(ids) <= set(ITEM_IDS.tolist())
    assert scores == sorted(scores, reverse=True)


def test_full_candidate_set_is_price_order(artifacts):
    # With every item retrieved, the order is the ranker's, i.e. by price (all distinct).
    rec, _ = make(artifacts, n_candidates=100)
    got = rec.recommend(8, 10)
    prices = {item_id(i): item_price(i) for i in range(N_ITEMS)}
    expected = sorted(prices, key=prices.get, reverse=True)[:10]
    assert [r["item_id"] for r in got] == expected


def test_fetcher_called_per_feature_service_with_one_batched_ranker_call(artifacts):
    rec, fetch = make(artifacts, n_candidates=7)
    rec.recommend(7, 4)
    assert [s for s, _ in fetch.calls] == [USER_TOWER, RANKER]
    user_df, ranker_df = fetch.calls[0][1], fetch.calls[1][1]
    assert user_df.to_dict("list") == {"user_id": [7]}
    assert list(ranker_df.columns) == ["user_id", "item_id"]
    assert len(ranker_df) == 7 and set(ranker_df["user_id"]) == {7}
    assert ranker_df["item_id"].is_unique


def test_candidates_are_raised_to_k(artifacts):
    rec, fetch = make(artifacts, n_candidates=2)
    assert len(rec.recommend(7, 6)) == 6
    assert len(fetch.calls[1][1]) == 6


def test_duplicate_index_ids_are_returned_once(artifacts):
    import dataclasses

    dup = dataclasses.replace(artifacts, item_ids=np.where(ITEM_IDS == item_id(2), item_id(1),
                                                           ITEM_IDS))
    rec = Recommender(dup, TableFetcher(CONTRACT), CONTRACT, n_candidates=5)
    ids = [r["item_id"] for r in rec.recommend(7, 5)]
    assert len(ids) == len(set(ids)) == 4


@pytest.mark.parametrize("user_id,k,match", [
    (-1, 10, "user_id must be >= 0"),
    (7, 0, "k must be between 1 and 100"),
    (7, 101, "k must be between 1 and 100"),
    ("7", 10, "user_id must be an integer"),
    (7, 2.5, "k must be an integer"),
    (True, 10, "user_id must be an integer"),
])
def test_invalid_requests(artifacts, user_id, k, match):
    rec, fetch = make(artifacts)
    with pytest.raises(InvalidRequest, match=match):
        rec.recommend(user_id, k)
    assert fetch.calls == []  # rejected before any feature lookup


def test_validate_request_accepts_numpy_ints():
    assert validate_request(np.int64(3), np.int32(5)) == (3, 5)


def test_fetch_returning_wrong_row_count_is_an_error(artifacts):
    def short(service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        return TableFetcher(CONTRACT)(service, entity_df).head(1)

    rec = Recommender(artifacts, short, CONTRACT, n_candidates=5)
    with pytest.raises(RuntimeError, match="returned 1 rows for 5 pairs"):
        rec.recommend(7, 3)
