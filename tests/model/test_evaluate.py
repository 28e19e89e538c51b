"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.evaluate import heldout_queries, ranker_metrics, retrieval_metrics
from training.index import build_index, load_index


def test_recall_and_hit_rate_by_hand(tmp_path) -> None:
    # 3 items on the axes of R^3; a query equal to an axis ranks that item first.
    build_index(np.eye(3, dtype=np.float32), np.array([10, 20, 30]), tmp_path)
    index, ids = load_index(tmp_path)
    queries = np.array([[1, 0.5, 0], [0, 0, 1]], np.float32)  # ranks: 10,20,30 / 30,...
    relevant = [{20, 30}, {10}]
    m = retrieval_metrics(queries, relevant, index, ids, ks=(1, 2))
    assert m["recall@1"] == pytest.approx((0 / 2 + 0 / 1) / 2)
    assert m["recall@2"] == pytest.approx((1 / 2 + 0 / 1) / 2)
    assert m["hr@2"] == pytest.approx(0.5)


def test_heldout_queries_take_first_row_per_user() -> None:
    ts = pd.to_datetime(["2026-01-02", "2026-01-01", "2026-01-03"], utc=True)
    df = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 6, 5], "event_ts": ts, "f": [2, 1, 3]})
    queries, relevant = heldout_queries(df)
    assert queries["user_id"].tolist() == [1, 2]
    assert queries["f"].tolist() == [1, 3]
    assert relevant == [{5, 6}, {5}]


def test_ranker_metrics_by_hand() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.9, 0.8, 0.3])
    m = ranker_metrics(y, p, groups=np.array([1, 1, 2, 2]))
    assert m["auc"] == pytest.approx(0.75)  # 3 of 4 pos/neg pairs ordered correctly
    assert m["logloss"] == pytest.approx(-np.mean(np.log([0.9, 0.9, 0.2, 0.3])))
    assert m["gauc"] == pytest.approx(0.5)  # user 1 perfect (1.0), user 2 inverted (0.0)
    assert math.isnan(ranker_metrics(np.array([1, 1]), np.array([0.2, 0.3]))["auc"])
