"""GBDT / logistic-regression baselines: sequence summaries by hand, planted signal learned."""

from __future__ import annotations

import numpy as np
import pytest

from tests.model.test_ranker_train import pick_specs, ranker_frame
from training.preprocessing import InputSpec
from training.ranker_baseline import sequence_summaries, tune_baseline
from training.runs import split_by_time, time_cutoff


def test_sequence_summaries_by_hand() -> None:
    specs = [InputSpec("cat", "int64", "categorical", 10),
             InputSpec("hist", "int64", "sequence", 10, max_len=4, target="cat", default=-1),
             InputSpec("gaps", "float64", "sequence", 0, max_len=4, default=0.0)]
    cols = {"cat": np.array([3, 5]),
            "hist": np.array([[-1, 3, 5, 3], [-1, -1, -1, -1]]),
            "gaps": np.array([[0.0, 2.0, 4.0, 6.0], [0.0, 0.0, 0.0, 0.0]])}
    out = sequence_summaries(cols, specs)
    np.testing.assert_array_equal(out["hist__len"], [3, 0])
    np.testing.assert_array_equal(out["hist__target_count"], [2, 0])
    np.testing.assert_array_equal(out["hist__target_recency"], [0, 5])  # newest / never
    np.testing.assert_array_equal(out["gaps__len"], [3, 0])
    np.testing.assert_allclose(out["gaps__mean"], [4.0, 0.0])
    np.testing.assert_array_equal(out["gaps__last"], [6.0, 0.0])


def test_baselines_learn_the_planted_signal_and_report_their_grid() -> None:
    specs = pick_specs()
    df = ranker_frame(specs, n_users=150, per_user=12, seed=1)
    train, val = split_by_time(df, time_cutoff([df["event_ts"]], 0.25))
    small = [{"learning_rate": lr, "max_iter": 60, "max_leaf_nodes": 8} for lr in (0.1, 0.2)]
    for family, grid in (("gbdt", small), ("logreg", None)):
        out = tune_baseline(family, train, val, specs, "label", seed=0, grid=grid)
        assert len(out["tried"]) == 2
        assert out["validation"]["auc"] == max(t["val_auc"] for t in out["tried"])
        assert out["validation"]["auc"] > 0.7, family  # oracle ~0.78
        assert 0 < out["score"](val.head(5)).min() and out["score"](val.head(5)).max() < 1
    with pytest.raises(ValueError, match="unknown baseline 'svm'"):
        tune_baseline("svm", train, val, specs, "label")
