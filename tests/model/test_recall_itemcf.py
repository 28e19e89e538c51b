"""Item-CF cosine and the shared sparse helpers, on tiny hand-computed data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from training.recall_datasets import Interactions, from_frame
from training.recall_itemcf import (
    fit_itemcf,
    history_weights,
    interaction_matrix,
    itemcf_similarity,
    prune_top_n,
    top_k_rows,
)

A, B, C, D = 0, 1, 2, 3


def tiny() -> Interactions:
    """u0: A B C, u1: A B, u2: A B C, u3: C D — plus a repeat of A by u1 at the end."""
    rows = [(0, A), (0, B), (0, C), (1, A), (1, B), (2, A), (2, B), (2, C), (3, C), (3, D),
            (1, A)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["ts"] = [0, 1, 2, 0, 1, 0, 1, 2, 0, 1, 5]
    return from_frame("tiny", frame)


def test_cosine_by_hand() -> None:
    """U_A = U_B = {0,1,2}, U_C = {0,2,3}, U_D = {3} (repeats collapse).

    cos(A,B) = 3/3 = 1; cos(A,C) = cos(B,C) = 2/3; cos(C,D) = 1/sqrt(3); cos(A,D) = 0.
    """
    s = itemcf_similarity(interaction_matrix(tiny())).toarray()
    assert s[A, B] == pytest.approx(1.0) and s[A, C] == pytest.approx(2 / 3)
    assert s[B, C] == pytest.approx(2 / 3) and s[C, D] == pytest.approx(1 / math.sqrt(3))
    assert s[A, D] == 0.0 and s[A, A] == pytest.approx(1.0)
    np.testing.assert_allclose(s, s.T)


def test_fit_itemcf_neighbours_and_recommendation() -> None:
    """u3 (C then D) excluding history: A = sim(C,A) = 2/3, B = 2/3 (tie → A first)."""
    data = tiny()
    model = fit_itemcf(data, top_n=2)
    assert model.similar(C, 5) == [(A, pytest.approx(2 / 3)), (B, pytest.approx(2 / 3))]
    assert model.similar(D, 5) == [(C, pytest.approx(1 / math.sqrt(3)))]
    items, scores = model.recommend(data, np.array([3]), 4)
    assert items.tolist() == [[A, B, -1, -1]]
    np.testing.assert_allclose(scores[0, :2], [2 / 3, 2 / 3])
    assert np.all(np.isneginf(scores[0, 2:]))


def test_interaction_matrix_caps_are_most_recent() -> None:
    """u1's distinct items by last occurrence: B (ts 1), A (ts 5) → cap 1 keeps A.

    Per-item cap 1 after that: each item keeps its latest user (ties: lower user index).
    """
    m = interaction_matrix(tiny(), max_items_per_user=1).toarray()
    assert m[1].tolist() == [1, 0, 0, 0] and m[0].tolist() == [0, 0, 1, 0]
    m = interaction_matrix(tiny(), max_users_per_item=1).toarray()
    # A: u1 at ts 5 is the latest; B: u0, u1, u2 at ts 1 → u0; C: u0, u2 at ts 2 → u0.
    assert m[:, A].tolist() == [0, 1, 0, 0] and m[:, B].tolist() == [1, 0, 0, 0]
    assert m[:, C].tolist() == [1, 0, 0, 0] and m[:, D].tolist() == [0, 0, 0, 1]


def test_history_weights_decay_and_length() -> None:
    """u0: A B C → C = 1, B = 0.5, A = 0.25; max_len 2 drops A. u1: B (0.5), A (1, repeat)."""
    h = history_weights(tiny(), np.array([0, 1]), max_len=3, decay=0.5).toarray()
    assert h[0].tolist() == [0.25, 0.5, 1.0, 0.0]
    assert h[1].tolist() == [1.0, 0.5, 0.0, 0.0]
    h = history_weights(tiny(), np.array([1, 0]), max_len=2, decay=0.5).toarray()
    assert h[1].tolist() == [0.0, 0.5, 1.0, 0.0]  # rows follow the requested user order


def test_top_k_rows_ties_padding_and_empty_rows() -> None:
    m = sp.csr_matrix(np.array([[0.0, 2.0, 5.0, 2.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0, 0, 0]]))
    cols, scores = top_k_rows(m, 3)
    assert cols.tolist() == [[2, 1, 3], [-1, -1, -1], [0, -1, -1]]
    assert scores[0].tolist() == [5.0, 2.0, 2.0] and np.isneginf(scores[1]).all()


def test_top_k_rows_treats_float_noise_as_a_tie() -> None:
    """0.1 + 0.2 != 0.3 in floating point; the lower column must still win."""
    m = sp.csr_matrix(np.array([[0.0, 0.1 + 0.2, 0.3]]))
    m2 = sp.csr_matrix(np.array([[0.0, 0.3, 0.1 + 0.2]]))
    assert top_k_rows(m, 1)[0].tolist() == [[1]] and top_k_rows(m2, 1)[0].tolist() == [[1]]


def test_prune_drops_self_and_non_positive() -> None:
    m = sp.csr_matrix(np.array([[9.0, 1.0, -1.0, 3.0], [2.0, 9.0, 1.0, 0.0],
                                [0, 0, 0, 0], [0, 0, 0, 0]]))
    p = prune_top_n(m, 1).toarray()
    assert p.tolist() == [[0, 0, 0, 3.0], [2.0, 0, 0, 0], [0] * 4, [0] * 4]
