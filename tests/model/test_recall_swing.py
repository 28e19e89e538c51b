"""Swing similarity against hand-computed values and a brute-force reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from training.recall_datasets import Interactions, from_frame
from training.recall_swing import fit_swing, swing_similarity, user_weights

A, B, C, D = 0, 1, 2, 3


def tiny() -> Interactions:
    """u0: A B C, u1: A B, u2: A B C, u3: C D (items in this time order)."""
    rows = [(0, A), (0, B), (0, C), (1, A), (1, B), (2, A), (2, B), (2, C), (3, C), (3, D)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["ts"] = np.arange(len(frame))
    return from_frame("tiny", frame)


def matrix(data: Interactions) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(data)), (data.user, data.item)),
                         shape=(data.n_users, data.n_items))


def test_unweighted_swing_by_hand() -> None:
    """alpha = 1, user_beta = 0 (plain swing). User pairs and their common items:

    (u0,u1): {A,B}, c=2 → (A,B) += 1/(1+2) = 1/3
    (u0,u2): {A,B,C}, c=3 → (A,B), (A,C), (B,C) += 1/4 each
    (u1,u2): {A,B}, c=2 → (A,B) += 1/3
    (u0,u3), (u2,u3): {C} only, (u1,u3): {} → no item pair.
    swing(A,B) = 1/3 + 1/4 + 1/3 = 11/12; swing(A,C) = swing(B,C) = 1/4; anything with D = 0.
    """
    s = swing_similarity(matrix(tiny()), alpha=1.0, user_beta=0.0).toarray()
    expected = np.zeros((4, 4))
    expected[A, B] = expected[B, A] = 11 / 12
    expected[A, C] = expected[C, A] = expected[B, C] = expected[C, B] = 1 / 4
    np.testing.assert_allclose(s, expected)


def test_activity_weighted_swing_by_hand() -> None:
    """user_alpha = 5, user_beta = -0.5: w_u = (|I_u| + 5) ** -0.5.

    |I| = 3, 2, 3, 2 → w0 = w2 = 1/sqrt(8), w1 = 1/sqrt(7).
    (u0,u1): w0 w1 / 3 = 1 / (3 sqrt(56)); (u1,u2): the same; (u0,u2): (1/8) / 4 = 1/32.
    swing(A,B) = 2 / (3 sqrt(56)) + 1/32 ≈ 0.120337; swing(A,C) = swing(B,C) = 1/32.
    """
    m = matrix(tiny())
    np.testing.assert_allclose(user_weights(m, 5.0, -0.5),
                               [8 ** -0.5, 7 ** -0.5, 8 ** -0.5, 7 ** -0.5])
    s = swing_similarity(m, alpha=1.0, user_alpha=5.0, user_beta=-0.5).toarray()
    assert s[A, B] == pytest.approx(2 / (3 * math.sqrt(56)) + 1 / 32)
    assert s[A, C] == pytest.approx(1 / 32) and s[B, C] == pytest.approx(1 / 32)
    assert s[C, D] == 0.0 and np.all(np.diag(s) == 0)


def brute_force(m: sp.csr_matrix, alpha: float, user_alpha: float, beta: float) -> np.ndarray:
    dense = m.toarray() > 0
    items = [set(np.flatnonzero(r)) for r in dense]
    w = [(len(i) + user_alpha) ** beta for i in items]
    out = np.zeros((m.shape[1], m.shape[1]))
    for u, v in itertools.combinations(range(len(items)), 2):
        common = sorted(items[u] & items[v])
        for i, j in itertools.permutations(common, 2):
            out[i, j] += w[u] * w[v] / (alpha + len(common))
    return out


@pytest.mark.parametrize("budget", [1, 10**9])
def test_matches_brute_force_on_random_data_in_any_block_size(budget: int) -> None:
    rng = np.random.default_rng(3)
    dense = rng.random((40, 15)) < 0.3
    m = sp.csr_matrix(dense.astype(np.float64))
    got = swing_similarity(m, alpha=0.5, user_alpha=2.0, user_beta=-0.3,
                           pair_budget=budget).toarray()
    np.testing.assert_allclose(got, brute_force(m, 0.5, 2.0, -0.3), rtol=1e-12, atol=1e-15)


def test_alpha_must_be_positive() -> None:
    with pytest.raises(ValueError, match="swing alpha must be > 0"):
        swing_similarity(matrix(tiny()), alpha=0.0)


def test_fit_swing_neighbours_and_user_recommendations() -> None:
    """Unweighted neighbours as above; u1's history is A then B (B most recent).

    Excluding history, u1 gets only C: score = sim(A,C) + sim(B,C) = 1/4 + 1/4 = 1/2.
    Including history: A = sim(B,A) = 11/12, B = sim(A,B) = 11/12 (tie → lower index A), C = 1/2.
    decay 0.5 (B weighs 1, A weighs 0.5): A = 11/12, B = 0.5 * 11/12 = 11/24,
    C = 0.5 * 1/4 + 1/4 = 3/8.
    """
    data = tiny()
    model = fit_swing(data, user_beta=0.0)
    assert model.similar(A, 5) == [(B, pytest.approx(11 / 12)), (C, pytest.approx(0.25))]
    assert model.similar(D, 5) == []
    items, scores = model.recommend(data, np.array([1]), 3)
    assert items.tolist() == [[C, -1, -1]] and scores[0, 0] == pytest.approx(0.5)
    items, scores = model.recommend(data, np.array([1]), 3, exclude_history=False)
    assert items.tolist() == [[A, B, C]]
    np.testing.assert_allclose(scores[0], [11 / 12, 11 / 12, 0.5])
    model.decay = 0.5
    items, scores = model.recommend(data, np.array([1]), 3, exclude_history=False)
    assert items.tolist() == [[A, B, C]]
    np.testing.assert_allclose(scores[0], [11 / 12, 11 / 24, 3 / 8])


def test_caps_keep_most_recent_items() -> None:
    """max_items_per_user = 2: u0 keeps B, C and u2 keeps B, C; A is then shared by u1 only.

    Pairs: (u0,u2) {B,C} c=2 → (B,C) += 1/3. (u0,u1), (u1,u2): {B} only. swing(B,C) = 1/3.
    """
    model = fit_swing(tiny(), user_beta=0.0, max_items_per_user=2)
    assert model.similar(B, 5) == [(C, pytest.approx(1 / 3))]
    assert model.similar(A, 5) == []
