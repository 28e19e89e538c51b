"""Popularity recall (global, per-category, trending) on tiny hand-computed data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.recall_datasets import Interactions, from_frame
from training.recall_popularity import DAY, fit_popularity, item_popularity

# Items 0-1 are category 10, items 2-3 category 20, item 4 category 30 (never interacted with).
ITEMS = pd.DataFrame({"item_id": [0, 1, 2, 3, 4], "category_id": [10, 10, 20, 20, 30]})


def tiny(has_time: bool = True) -> Interactions:
    """Distinct users per item: 0 → 3 (u0, u1, u2; u0 twice), 1 → 1 (u2), 2 → 2 (u0, u3),
    3 → 2 (u1, u2).

    Recent (last 2 days, ts >= 8 days): item 3 by u1 and u2, item 1 by u2.
    u3 only interacted with item 2.
    """
    rows = [(0, 0, 0), (0, 0, 1), (1, 0, 1), (2, 0, 2), (0, 2, 3), (3, 2, 4), (1, 3, 8),
            (2, 3, 9), (2, 1, 10)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    frame["ts"] = frame["ts"] * DAY
    return from_frame("tiny", frame, items=ITEMS, has_time=has_time)


def test_item_popularity_counts_distinct_users() -> None:
    assert item_popularity(tiny()).tolist() == [3, 1, 2, 2, 0]
    assert item_popularity(tiny(), since=8 * DAY).tolist() == [0, 1, 0, 2, 0]


def test_global_ranking_and_history_exclusion() -> None:
    """Ranking 0 (3), 2 (2), 3 (2; tie → lower index after 2), 1 (1); item 4 never listed."""
    data = tiny()
    pop = fit_popularity(data)
    items, scores = pop.recommend(data, np.array([0, 3]), 5, exclude_history=False)
    assert items.tolist() == [[0, 2, 3, 1, -1]] * 2
    assert scores[0, :4].tolist() == [3, 2, 2, 1]
    items, _ = pop.recommend(data, np.array([0, 3]), 3)
    # u0 saw 0, 2 → 3, 1 remain; u3 saw 2 → 0, 3, 1.
    assert items.tolist() == [[3, 1, -1], [0, 3, 1]]


def test_category_mix_by_hand() -> None:
    """u3's history: item 2 (cat 20) → mix {20: 1}. Scores: 3 → 1 * 2 = 2 (2 is excluded).

    Category 20 runs out, so the list is filled with global popularity minus history: 0, 1.
    u2's history: 0 (cat 10), 3 (cat 20), 1 (cat 10) → mix {10: 2/3, 20: 1/3}; candidates not
    seen: 2 (cat 20) → 1/3 * 2 = 2/3; category 30 has no popular items.
    """
    data = tiny()
    pop = fit_popularity(data, "category")
    items, scores = pop.recommend(data, np.array([3, 2]), 3)
    assert items[0].tolist() == [3, 0, 1]
    assert scores[0, 0] == pytest.approx(2.0) and scores[0, 0] > scores[0, 1] > scores[0, 2]
    assert items[1].tolist() == [2, -1, -1]
    assert scores[1, 0] == pytest.approx(2 / 3)


def test_category_mode_user_without_history_gets_global() -> None:
    data = tiny()
    train = data.subset(data.user != 3)  # u3 stays a known user with an empty history
    items, _ = fit_popularity(train, "category").recommend(train, np.array([3]), 3)
    # Without u3: 0 (3 users), 3 (2), then 1 and 2 (1 each; tie → lower index 1).
    assert items.tolist() == [[0, 3, 1]]


def test_trending_window_then_all_time() -> None:
    """Window 2 days before the last ts (10 days): recent users 3 → 2, 1 → 1, others 0.

    Ties at 0 recent users are broken by all-time popularity: 0 (3), then 2 (2).
    """
    data = tiny()
    items, _ = fit_popularity(data, "trending", window_days=2).recommend(
        data, np.array([3]), 4, exclude_history=False)
    assert items.tolist() == [[3, 1, 0, 2]]


def test_trending_needs_time_and_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="trending popularity needs timestamps"):
        fit_popularity(tiny(has_time=False), "trending")
    with pytest.raises(ValueError, match="unknown popularity mode 'viral'"):
        fit_popularity(tiny(), "viral")
