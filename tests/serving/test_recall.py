"""Serving-side two-tower search: single-vector and multi-interest users on a real FAISS index."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from serving.recall import interest_queries, search_interests

IDS = np.array([10, 20, 30, 40], dtype=np.int64)
ITEMS = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]], dtype=np.float32)


def _index(items: np.ndarray) -> faiss.IndexFlatIP:
    index = faiss.IndexFlatIP(items.shape[1])
    index.add(np.ascontiguousarray(items, dtype=np.float32))
    return index


def test_multi_interest_scores_each_item_by_its_best_interest() -> None:
    index = _index(ITEMS)
    # Interest (1, 0): 10 -> 1, 30 -> .6, 20 -> 0, 40 -> -1. Interest (0, 1): 20 -> 1, 30 -> .8,
    # 10 -> 0, 40 -> 0. Best per item: 10 -> 1, 20 -> 1, 30 -> .8, 40 -> 0.
    ids, sims = search_interests(index, IDS, np.array([[[1.0, 0.0], [0.0, 1.0]]]), 3)
    assert ids.tolist() == [10, 20, 30]
    np.testing.assert_allclose(sims, [1.0, 1.0, 0.8], rtol=1e-6)
    ids, sims = search_interests(index, IDS, np.array([[1.0, 0.0]]), 3)  # single vector
    assert ids.tolist() == [10, 30, 20]
    np.testing.assert_allclose(sims, [1.0, 0.6, 0.0], atol=1e-6)


def test_more_than_the_catalogue_returns_each_item_once() -> None:
    index = _index(ITEMS)
    ids, sims = search_interests(index, IDS, np.array([[[1.0, 0.0], [0.0, 1.0]]]), 50)
    assert sorted(ids.tolist()) == [10, 20, 30, 40] and sims[-1] == pytest.approx(0.0)
    assert search_interests(index, IDS, np.array([[1.0, 0.0]]), 0)[0].size == 0


def test_equals_brute_force_max_over_interests_on_random_vectors() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(500, 8)).astype(np.float32)
    ids = np.arange(500, dtype=np.int64) * 7
    user = rng.normal(size=(1, 4, 8)).astype(np.float32)
    got, sims = search_interests(_index(items), ids, user, 25)
    best = (user[0] @ items.T).max(axis=0)
    want = np.argsort(-best, kind="stable")[:25]
    np.testing.assert_array_equal(got, ids[want])
    np.testing.assert_allclose(sims, best[want], rtol=1e-5)


def test_bad_shapes_and_widths_are_named() -> None:
    assert interest_queries(np.ones(3)).shape == (1, 3)
    with pytest.raises(ValueError, match=r"\[1, K, D\]"):
        interest_queries(np.ones((2, 3, 4)))  # two users at once
    with pytest.raises(ValueError, match="3-d but the index holds 2-d"):
        search_interests(_index(ITEMS), IDS, np.ones((1, 3)), 2)
