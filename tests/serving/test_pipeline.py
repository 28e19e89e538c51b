"""serving.pipeline on real SavedModels, a real FAISS index and an in-memory store, by hand.

Geometry (tests/serving/models.py): user 7 sits at 14.45 degrees, so with 5 candidates the
two-tower list is i1, i2, i0, i3, i35 (10, 20, 0, 30, 350 degrees); prices 37, 74, 0, 11, 95;
the ranker scores 0.01 * price + 0.001 * clicks (user 7 has 3 clicks).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from serving.config import PipelineConfig, load_pipeline
from serving.experiments import Layer, Variant, check_layers
from serving.fallback import FALLBACK, VARIANT, Catalogue, CounterLog, ResilientFetch
from serving.feedback import PurchaseMemory
from serving.pipeline import Pipeline, RequestContext
from serving.recommender import InvalidRequest, Recommender
from serving.rerank import RerankConfig, mmr_order
from serving.similar import ItemNeighbours, UnknownItem
from shoprec.contract import CONTRACT
from tests.serving.models import TableFetcher, item_id

NOW = datetime(2026, 3, 4, tzinfo=UTC)
ROLES = load_pipeline(CONTRACT).roles  # the shipped roles


def i(*n: int) -> list[int]:
    return [item_id(x) for x in n]


NEUTRAL = RerankConfig()


def build(artifacts, *, store=None, rules=NEUTRAL, layers=(), feature_log=None,
          **config) -> Pipeline:
    store = store if store is not None else TableFetcher(CONTRACT)
    table = store.store.items if hasattr(store, "store") else store.items
    counters = CounterLog()
    cfg = PipelineConfig(roles=ROLES, **{"n_candidates": 5, "popularity_candidates": 3,
                                         "cold_start_popularity_quota": 2, "max_exclude": 2,
                                         "pages": ("home",), **config})
    rec = Recommender(artifacts, ResilientFetch(store, CONTRACT, counters), CONTRACT,
                      n_candidates=cfg.n_candidates)
    return Pipeline(rec, Catalogue.from_frame(table, ROLES, "popularity"), PurchaseMemory(30),
                    cfg, rules, layers, counters, ItemNeighbours(artifacts.index,
                                                                 artifacts.item_ids),
                    clock=lambda: NOW, feature_log=feature_log)


def ids(answer) -> list[int]:
    return [it["item_id"] for it in answer.items]


def test_warm_user_ranked_by_the_ranker(artifacts) -> None:
    ans = build(artifacts).recommend(7, 3)
    assert ids(ans) == i(35, 2, 1)
    assert [it["score"] for it in ans.items] == pytest.approx([0.953, 0.743, 0.373], abs=1e-5)
    assert all(it["sources"] == ["two_tower"] for it in ans.items)
    assert (ans.fallbacks, ans.cold_start, ans.variants) == ([], False, {})


def test_cold_user_gets_popularity_candidates(artifacts) -> None:
    """User 123 has no row: 123 degrees -> two-tower i12, i13, i11, i14, i10. Popularity
    (all items tie at 1 click -> by id) i0, i1, i2; cold quota 2 reserves i0, i1; the three
    free slots go by fused score to i12, i13, i11. Prices i0 0, i1 37, i11 7, i12 44, i13 81."""
    p = build(artifacts)
    ans = p.recommend(123, 3)
    assert ids(ans) == i(13, 12, 1)
    assert [it["sources"] for it in ans.items] == [["two_tower"], ["two_tower"], ["popularity"]]
    assert ans.cold_start and ans.fallbacks == ["cold_start"]
    assert p.counters.get(FALLBACK, reason="cold_start") == 1


def test_filters_use_the_ranker_features(artifacts) -> None:
    store = TableFetcher(CONTRACT)
    store.items.loc[store.items["item_id"] == item_id(35), "i_stock"] = 0
    p = build(artifacts, store=store, rules=RerankConfig(out_of_stock=True,
                                                         already_purchased=True))
    assert ids(p.recommend(7, 3)) == i(2, 1, 3)  # i35 is out of stock
    p.purchases.add(7, item_id(2), pd.Timestamp("2026-03-01", tz="UTC"))
    assert ids(p.recommend(7, 3)) == i(1, 3, 0)
    assert ids(p.recommend(8, 2, RequestContext(exclude=frozenset(i(2))))) == \
        ids(p.recommend(8, 3))[1:]  # user 8 bought nothing; exclude drops its top item


def test_category_filter_falls_back_to_popular_items(artifacts) -> None:
    store = TableFetcher(CONTRACT)
    store.items.loc[store.items["item_id"] == item_id(20), "i_category_id"] = 5
    p = build(artifacts, store=store)
    ans = p.recommend(7, 3, RequestContext(categories=frozenset({5})))
    assert ans.items == [{"item_id": item_id(20), "score": 0.0, "sources": ["popularity"]}]
    assert ans.fallbacks == ["popularity"]
    assert p.counters.get(FALLBACK, reason="popularity") == 1


def test_broken_ranker_keeps_the_recall_order(artifacts) -> None:
    def broken(inputs):
        raise RuntimeError("ranker graph failed")

    p = build(dataclasses.replace(artifacts, ranker=broken))
    ans = p.recommend(7, 3)
    assert ids(ans) == i(1, 2, 0)  # two-tower order; scores are 1 / (60 + rank)
    assert [it["score"] for it in ans.items] == pytest.approx([1 / 61, 1 / 62, 1 / 63])
    assert ans.fallbacks == ["ranker"] and p.counters.get(FALLBACK, reason="ranker") == 1
    items, fallbacks = p.rank(7, i(0, 35))
    assert items == [{"item_id": item_id(0), "score": None},
                     {"item_id": item_id(35), "score": None}] and fallbacks == ["ranker"]


def test_feature_store_outage_serves_defaults(artifacts) -> None:
    """Defaults put user 7 at 7 degrees: i1, i0, i2, i35, i3; cold quota adds
    popular i0, i1 (already there). Every ranker input is a default, so all scores are 0 and
    the merge order stands: i0 and i1 tie on fused score and best rank -> by id."""

    class Down:
        store = TableFetcher(CONTRACT)

        def __call__(self, service, entity_df):
            raise ConnectionError("sqlite online store unavailable")

    p = build(artifacts, store=Down())
    ans = p.recommend(7, 3)
    assert ids(ans) == i(0, 1, 2) and [it["score"] for it in ans.items] == [0.0] * 3
    assert ans.fallbacks == ["feature_store", "cold_start"]
    assert p.counters.get(FALLBACK, reason="feature_store") == 2  # user and ranker reads


def test_variant_switches_off_the_ranker_and_is_counted(artifacts) -> None:
    layers = check_layers([Layer("ranker", "s", (Variant("champion", 0, {"use_ranker": True}),
                                                 Variant("recall_only", 1,
                                                         {"use_ranker": False})))])
    p = build(artifacts, layers=layers)
    ans = p.recommend(7, 3)
    assert ids(ans) == i(1, 2, 0) and ans.variants == {"ranker": "recall_only"}
    assert ans.fallbacks == []
    assert p.counters.get(VARIANT, layer="ranker", variant="recall_only") == 1


def test_mmr_reorders_the_ranker_list_with_item_embeddings(artifacts) -> None:
    """10 candidates: 350, 0, ..., 60 degrees and 330, 340. lambda 0 = diversity only.

    1st: the ranker's best, i35 (350). 2nd: the least similar to it, i6 (60, cos 70).
    3rd: max similarity to {350, 60}: i2 (20) and i3 (30) tie at cos 30 -> earlier by price, i2.
    """
    p = build(artifacts, rules=RerankConfig(diversity="mmr", mmr_lambda=0.0), n_candidates=10)
    assert ids(p.recommend(7, 3)) == i(35, 6, 2)
    ranked = i(35, 5, 2, 34, 4, 1, 6, 33, 3, 0)  # by price: 95 85 74 58 48 37 22 21 11 0
    sim = p.neighbours.cosine(np.array(ranked))
    assert sim[0, 9] == pytest.approx(np.cos(np.deg2rad(10)), abs=1e-6)  # 350 vs 0 degrees
    assert [ranked[j] for j in mmr_order(np.arange(10.0)[::-1], sim, 0.0)][:3] == i(35, 6, 2)


def test_diversity_variant_overrides_the_config(artifacts) -> None:
    # rerank config: diversity none; the variant switches MMR (lambda 0) on -> the
    # hand-computed order of the test above instead of the price order i35, i5, i2.
    layers = check_layers([Layer("diversity", "d", (Variant("mmr", 1, {"diversity": "mmr"}),))])
    p = build(artifacts, rules=RerankConfig(mmr_lambda=0.0), layers=layers, n_candidates=10)
    ans = p.recommend(7, 3)
    assert ids(ans) == i(35, 6, 2) and ans.variants == {"diversity": "mmr"}
    assert p.rules.diversity == "none"  # the shared config is not modified


def test_rank_scores_the_given_items(artifacts) -> None:
    items, fallbacks = build(artifacts).rank(7, i(0, 35, 2))
    assert [it["item_id"] for it in items] == i(35, 2, 0) and fallbacks == []
    assert [it["score"] for it in items] == pytest.approx([0.953, 0.743, 0.003], abs=1e-5)


@pytest.mark.parametrize("item_ids,message", [
    ([], "at least one id"), ([1, 1], "item_ids repeats id 1"), ([-3], "item_ids must hold"),
    ([True], "item_ids must hold"), (list(range(1001)), "at most 1000"),
])
def test_rank_rejects_bad_lists(artifacts, item_ids: list, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        build(artifacts).rank(7, item_ids)


def test_similar_items_by_angle(artifacts) -> None:
    p = build(artifacts)
    got = p.similar(item_id(5), 4)  # 50 degrees: 40 and 60 tie, then 30 and 70
    assert [g["item_id"] for g in got] == i(4, 6, 3, 7)
    assert [g["score"] for g in got] == pytest.approx(
        [np.cos(np.deg2rad(d)) for d in (10, 10, 20, 20)], abs=1e-6)
    with pytest.raises(UnknownItem, match="item 5 is not in the item index"):
        p.similar(5, 3)


@pytest.mark.parametrize("ctx,message", [
    (RequestContext(page="admin"), r"context.page must be one of \['home'\]"),
    (RequestContext(device="fax"), "context.device must be one of"),
    (RequestContext(exclude=frozenset({1, 2, 3})), "context.exclude holds 3 ids; at most 2"),
])
def test_bad_context_is_named(artifacts, ctx: RequestContext, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        build(artifacts).recommend(7, 3, ctx)


def test_last_resort_is_popularity(artifacts) -> None:
    p = build(artifacts)
    ans = p.last_resort(7, 3, None)
    assert ids(ans) == i(0, 1, 2) and ans.fallbacks == ["error", "popularity"]
    assert p.counters.get(FALLBACK, reason="error") == 1


def test_ranked_feature_vectors_are_logged_with_the_request_fields(artifacts, settings) -> None:
    """/recommend logs its 5 scored candidates (with the context's device), /rank its 2."""
    from serving.feature_log import FeatureLog, read_feature_log

    flog = FeatureLog(settings, CONTRACT)
    p = build(artifacts, feature_log=flog)
    p.recommend(7, 3, RequestContext(device="ios"))
    p.rank(8, i(3, 4))
    flog.close()
    got = read_feature_log(settings, CONTRACT, NOW - pd.Timedelta(days=1),
                           NOW + pd.Timedelta(days=1))
    assert len(got) == 7  # parts are read in file order: compare per request
    rec, rank = got[got["user_id"] == 7], got[got["user_id"] == 8]
    assert sorted(rec["item_id"]) == sorted(i(1, 2, 0, 3, 35))
    assert sorted(rank["item_id"]) == i(3, 4)
    assert rec["request_device"].tolist() == ["ios"] * 5
    assert rank["request_device"].isna().all()
    assert (got["request_ts"] == pd.Timestamp(NOW)).all()
    assert rec["u_clicks_30d"].tolist() == [3] * 5


def test_feature_log_samples_one_request_in_log_every(artifacts, settings) -> None:
    """Requests 1, 4 and 7 of 7 are logged with all their candidates (log_every = 3)."""
    from serving.feature_log import FeatureLog, read_feature_log

    flog = FeatureLog(settings, CONTRACT)
    p = build(artifacts, feature_log=flog, log_every=3)
    users = [7, 8, 50, 7, 8, 50, 7]
    for u in users:
        p.recommend(u, 3)
    flog.close()
    got = read_feature_log(settings, CONTRACT, NOW - pd.Timedelta(days=1),
                           NOW + pd.Timedelta(days=1))
    assert got.groupby("request_id").size().tolist() == [5, 5, 5]
    assert sorted(got["user_id"].unique().tolist()) == [7]  # requests 1, 4, 7: user 7
