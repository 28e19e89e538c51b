"""serving.rerank: every rule on a six-item slate, computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from serving.rerank import (
    Promotion,
    RerankConfig,
    Slate,
    category_cap_order,
    category_similarity,
    keep_mask,
    mmr_order,
    multipliers,
    rerank,
)

NAN = float("nan")


def slate() -> Slate:
    """Items 10..15 in ranker order; category -1 is "none"; NaN is unknown."""
    return Slate(item_ids=np.array([10, 11, 12, 13, 14, 15]),
                 scores=np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]),
                 category=np.array([1, 1, 1, 1, 2, -1]),
                 stock=np.array([5, 0, 3, NAN, 1, 2]),
                 age_days=np.array([1, 30, 7, NAN, 0, 20]))


def ids(s: Slate, rows: np.ndarray) -> list[int]:
    return s.item_ids[rows].tolist()


def test_default_config_is_neutral() -> None:
    s = slate()
    rows, scores = rerank(s, RerankConfig())
    assert ids(s, rows) == [10, 11, 12, 13, 14, 15]
    assert scores.tolist() == [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert s.dropped == {}


def test_filters_drop_and_count_each_item_once() -> None:
    # exclude 10; category {1} drops 14 (cat 2) and 15 (no category); stock 0 drops 11 but the
    # unknown stock of 13 keeps it; purchased {12, 14}: 14 is already gone, so only 12 counts.
    s = slate()
    keep, dropped = keep_mask(s, RerankConfig(out_of_stock=True, already_purchased=True),
                              purchased={12, 14}, exclude={10}, categories={1})
    assert s.item_ids[keep].tolist() == [13]
    assert dropped == {"exclude": 1, "category": 2, "out_of_stock": 1, "purchased": 1}


def test_purchases_are_ignored_when_the_rule_is_off() -> None:
    keep, dropped = keep_mask(slate(), RerankConfig(), purchased={12})
    assert keep.all() and dropped == {}


def test_min_stock_threshold() -> None:
    # stock [5, 0, 3, ?, 1, 2] with min_stock 3 keeps 10, 12 and the unknown 13.
    keep, dropped = keep_mask(slate(), RerankConfig(out_of_stock=True, min_stock=3))
    assert slate().item_ids[keep].tolist() == [10, 12, 13]
    assert dropped == {"out_of_stock": 3}


def test_freshness_boost_by_hand() -> None:
    # boost 0.5, max 14 days: age 1 -> 1 + 0.5 * 13/14 = 1.4642857; age 7 -> 1.25;
    # age 0 -> 1.5; ages 30 and 20 (too old) and unknown -> 1.
    cfg = RerankConfig(freshness_boost=0.5, freshness_max_age_days=14)
    m = multipliers(slate(), cfg)
    assert m == pytest.approx([1 + 0.5 * 13 / 14, 1.0, 1.25, 1.0, 1.5, 1.0])
    s = slate()
    rows, scores = rerank(s, cfg)
    # 10: 1.3179, 12: 0.875, 11: 0.8, 14: 0.75, 13: 0.6, 15: 0.4
    assert ids(s, rows) == [10, 12, 11, 14, 13, 15]
    assert scores == pytest.approx([0.9 * (1 + 0.5 * 13 / 14), 0.875, 0.8, 0.75, 0.6, 0.4])


def test_promotions_take_the_largest_multiplier() -> None:
    # 14 is named by "category 2 x1.5" and "item 14 x3" -> 3 (not 4.5); 13 x2; 10 demoted x0.5.
    cfg = RerankConfig(promotions=(Promotion(1.5, categories=frozenset({2})),
                                   Promotion(3.0, items=frozenset({14})),
                                   Promotion(2.0, items=frozenset({13})),
                                   Promotion(0.5, items=frozenset({10}))))
    assert multipliers(slate(), cfg).tolist() == [0.5, 1.0, 1.0, 2.0, 3.0, 1.0]
    s = slate()
    rows, scores = rerank(s, cfg)
    assert ids(s, rows) == [14, 13, 11, 12, 10, 15]
    assert scores == pytest.approx([1.5, 1.2, 0.8, 0.7, 0.45, 0.4])


def test_category_cap_defers_the_surplus() -> None:
    # cap 2: 12 and 13 are the 3rd and 4th of category 1 -> after 14 and 15 (no category).
    s = slate()
    rows, _ = rerank(s, RerankConfig(diversity="category_cap", category_cap=2))
    assert ids(s, rows) == [10, 11, 14, 15, 12, 13]
    cats = np.array([3.0, 3.0, 3.0, NAN, 3.0])
    assert category_cap_order(np.arange(5), cats, 1).tolist() == [0, 3, 1, 2, 4]


def test_mmr_by_hand() -> None:
    """lambda 0.5, relevance scaled to [1, .8, .6, .4, .2, 0], same-category similarity.

    1st: 10 (gain 0.5). 2nd: 11: .4 - .5 = -.1, 12: -.2, 13: -.3, 14: .1 - 0 = .1, 15: 0 -> 14.
    3rd: 11 -.1, 12 -.2, 13 -.3, 15: 0 -> 15. Then 11, 12, 13.
    """
    s = slate()
    sim = category_similarity(s.category)
    assert sim[0].tolist() == [1, 1, 1, 1, 0, 0] and sim[5].tolist() == [0, 0, 0, 0, 0, 1]
    assert mmr_order(s.scores, sim, 0.5).tolist() == [0, 4, 5, 1, 2, 3]
    assert mmr_order(s.scores, sim, 1.0).tolist() == [0, 1, 2, 3, 4, 5]
    rows, scores = rerank(s, RerankConfig(diversity="mmr", mmr_lambda=0.5))
    assert ids(s, rows) == [10, 14, 15, 11, 12, 13]
    assert scores.tolist() == [0.9, 0.5, 0.4, 0.8, 0.7, 0.6]  # MMR reorders, never rescales


def test_mmr_uses_a_given_similarity_over_filtered_rows() -> None:
    # Item 11 is filtered (stock 0). Given similarity: 10 ~ 12 (0.9), everything else 0.
    s = slate()
    sim = np.eye(6)
    sim[0, 2] = sim[2, 0] = 0.9
    rows, _ = rerank(s, RerankConfig(out_of_stock=True, diversity="mmr", mmr_lambda=0.5),
                     similarity=sim)
    # rel over [10, 12, 13, 14, 15] = [1, .6, .4, .2, 0]; after 10: 12 -> .3 - .45 = -.15,
    # 13 -> .2, 14 -> .1, 15 -> 0 -> 13; then 14, 15, 12.
    assert ids(s, rows) == [10, 13, 14, 15, 12]


def test_everything_together() -> None:
    # Out of stock drops 11; freshness (0.5 / 14 d) and "category 2 x2" boost:
    # 10: 1.3179, 12: 0.875, 13: 0.6, 14: 0.5 * 1.5 * 2 = 1.5, 15: 0.4 -> 14, 10, 12, 13, 15;
    # cap 1 per category: 14 (cat 2), 10 (cat 1), 15 (none) first, then 12, 13.
    cfg = RerankConfig(out_of_stock=True, freshness_boost=0.5, freshness_max_age_days=14,
                       promotions=(Promotion(2.0, categories=frozenset({2})),),
                       diversity="category_cap", category_cap=1)
    s = slate()
    rows, scores = rerank(s, cfg, exclude=set())
    assert ids(s, rows) == [14, 10, 15, 12, 13]
    assert scores == pytest.approx([1.5, 0.9 * (1 + 0.5 * 13 / 14), 0.4, 0.875, 0.6])
    assert s.dropped == {"out_of_stock": 1}


@pytest.mark.parametrize("kwargs,message", [
    ({"diversity": "random"}, "diversity must be one of"),
    ({"mmr_lambda": 1.5}, "mmr_lambda must be in"),
    ({"freshness_boost": -1.0}, "freshness_boost must be >= 0"),
    ({"category_cap": 0}, "category_cap >= 1"),
    ({"freshness_max_age_days": 0.0}, "freshness_max_age_days must be > 0"),
])
def test_bad_config_is_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RerankConfig(**kwargs)


def test_bad_promotion_and_slate_are_named() -> None:
    with pytest.raises(ValueError, match="multiplier must be a finite number > 0"):
        Promotion(0.0, items=frozenset({1}))
    with pytest.raises(ValueError, match="must name items or categories"):
        Promotion(2.0)
    with pytest.raises(ValueError, match=r"slate column stock has shape \(2,\)"):
        Slate(np.array([1, 2, 3]), np.zeros(3), np.zeros(3), np.zeros(2), np.zeros(3))


def test_empty_slate() -> None:
    s = Slate(np.array([], dtype=np.int64), *(np.array([]),) * 4)
    rows, scores = rerank(s, RerankConfig(diversity="mmr"))
    assert rows.tolist() == [] and scores.tolist() == []
