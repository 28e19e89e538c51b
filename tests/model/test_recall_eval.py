"""Splits and metrics of the recall evaluation, with hand-computed expectations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.recall_datasets import Interactions, from_frame
from training.recall_eval import (
    accuracy_metrics,
    beyond_accuracy,
    intra_list_diversity,
    leave_last_out,
    random_split,
    time_split,
)


def seqs() -> Interactions:
    """u0: 0 1 2 3, u1: 1 2, u2: 4 (one interaction), catalogue of 6 items (5 never seen)."""
    rows = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 4)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["ts"] = [10, 20, 30, 40, 15, 25, 5]
    items = pd.DataFrame({"item_id": range(6), "category_id": [0, 0, 1, 1, 2, -1]})
    return from_frame("seqs", frame, items=items)


def test_leave_last_out_and_its_validation_split() -> None:
    split = leave_last_out(seqs())
    assert split.users.tolist() == [0, 1]  # u2's single interaction stays in training
    assert [r.tolist() for r in split.relevant] == [[3], [2]]
    assert len(split.train) == 5
    val = leave_last_out(split.train)
    assert val.users.tolist() == [0] and [r.tolist() for r in val.relevant] == [[2]]


def test_time_split_cutoff_and_cold_users() -> None:
    """Span 5..40, holdout 0.2 → cutoff 33: held out u0's item 3 (ts 40) only."""
    split = time_split(seqs(), holdout=0.2)
    assert split.users.tolist() == [0] and split.relevant[0].tolist() == [3]
    assert split.skipped_users == 0
    # holdout 0.75 → cutoff 13.75: u0's ts 10 and u2's ts 5 stay in training; u1 (ts 15, 25)
    # has no training history (cold) and is skipped.
    split = time_split(seqs(), holdout=0.75)
    assert split.users.tolist() == [0] and split.relevant[0].tolist() == [1, 2, 3]
    assert split.skipped_users == 1
    with pytest.raises(ValueError, match="holdout must be in"):
        time_split(seqs(), holdout=1.0)


def test_random_split_is_exact_and_seeded() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(0, 20, 1000),
                          "item_id": rng.integers(0, 50, 1000), "ts": np.arange(1000)})
    data = from_frame("r", frame)
    a, b = random_split(data, 0.2, seed=42), random_split(data, 0.2, seed=42)
    assert len(a.train) == 800 and a.train.ts.tolist() == b.train.ts.tolist()
    assert len(random_split(data, 0.2, seed=1).train) == 800
    assert random_split(data, 0.2, seed=1).train.ts.tolist() != a.train.ts.tolist()


def test_accuracy_metrics_by_hand() -> None:
    """K = 2. u0 relevant {3, 5}, list [3, 1, 5]; u1 relevant {2}, list [0, 2, -1].

    recall@2: u0 1/2, u1 1/1 → 0.75. hr@2: 1. accuracy@2: 2 hits / 3 pairs.
    ndcg@2: u0 DCG = 1 (rank 1), IDCG = 1 + 1/log2(3) → 1 / 1.6309; u1 DCG = 1/log2(3),
    IDCG = 1 → 0.6309. Mean = (0.61315 + 0.63093) / 2.
    At K = 3: u0 hits 3 and 5 → recall 1; DCG = 1 + 1/2 (rank 3), IDCG = 1 + 1/log2(3).
    """
    recs = np.array([[3, 1, 5], [0, 2, -1]])
    rel = [np.array([3, 5]), np.array([2])]
    m = accuracy_metrics(recs, rel, 6, ks=(2, 3))
    l3 = 1 / math.log2(3)
    assert m["recall@2"] == pytest.approx(0.75) and m["hr@2"] == 1.0
    assert m["accuracy@2"] == pytest.approx(2 / 3)
    assert m["ndcg@2"] == pytest.approx((1 / (1 + l3) + l3) / 2)
    assert m["recall@3"] == pytest.approx(1.0) and m["accuracy@3"] == pytest.approx(1.0)
    assert m["ndcg@3"] == pytest.approx(((1 + 0.5) / (1 + l3) + l3) / 2)


def test_beyond_accuracy_by_hand() -> None:
    """Training = seqs(): 3 users; users per item: 0 → 1, 1 → 2, 2 → 2, 3 → 1, 4 → 1, 5 → 0.

    Lists (K=2): [1, 5] and [0, 1]. Coverage: {0, 1, 5} / 6 = 0.5.
    Novelty: -log2(p): item 1 → log2(3/2); item 5 (unseen → 1 user) → log2(3); item 0 → log2(3).
    Mean over 4 slots = (2 log2(1.5) + 2 log2(3)) / 4.
    ILD: [1, 5] — item 5 has no category → fewer than two known, skipped; [0, 1] same category
    → 0 different pairs / 1 → 0.
    """
    recs = np.array([[1, 5], [0, 1]])
    m = beyond_accuracy(recs, seqs(), ks=(2,))
    assert m["coverage@2"] == pytest.approx(0.5)
    assert m["novelty@2"] == pytest.approx((2 * math.log2(1.5) + 2 * math.log2(3)) / 4)
    assert m["ild@2"] == 0.0


def test_intra_list_diversity_by_hand() -> None:
    """Categories [0, 0, 1] → pairs (0,0) same, (0,1) ×2 differ → 2/3; [1, 2, -1 pad] → 1."""
    category = np.array([0, 0, 1, 1, 2])
    assert intra_list_diversity(np.array([[0, 1, 2], [3, 4, -1]]), category) == \
        pytest.approx((2 / 3 + 1) / 2)
    assert math.isnan(intra_list_diversity(np.array([[0, -1]]), category))
