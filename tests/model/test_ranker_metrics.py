"""AUC / GAUC / log loss per task, checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.evaluate import ranker_metrics
from training.ranker_metrics import (
    flat_metrics,
    gauc,
    monitor_mode,
    multi_task_metrics,
    task_metrics,
)

# user 1: positive 0.9 beats 0.5, loses to 0.95          -> AUC 1/2, 3 rows
# user 2: positives 0.8 (beats 0.1, 0.6), 0.4 (beats 0.1) -> AUC 3/4, 4 rows
# user 3: only negatives                                   -> skipped
# user 4: tie between the positive and the negative        -> AUC 1/2, 2 rows
LABELS = np.array([1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0])
SCORES = np.array([0.9, 0.5, 0.95, 0.1, 0.8, 0.4, 0.6, 0.3, 0.2, 0.2, 0.2])
USERS = np.array([1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4])


def test_gauc_weighs_users_by_impressions_and_skips_single_class_users() -> None:
    assert gauc(LABELS, SCORES, USERS) == pytest.approx((3 * 0.5 + 4 * 0.75 + 2 * 0.5) / 9)
    assert math.isnan(gauc(np.array([0, 0, 1]), np.array([.1, .2, .3]), np.array([7, 7, 8])))


def test_gauc_agrees_with_the_per_user_loop_of_training_evaluate() -> None:
    rng = np.random.default_rng(3)
    n = 800
    labels = (rng.random(n) < 0.2).astype(int)
    scores = np.round(rng.random(n), 2)  # rounded: many ties
    users = rng.integers(0, 40, n)
    expected = ranker_metrics(labels, scores, users)["gauc"]
    assert gauc(labels, scores, users) == pytest.approx(expected, abs=1e-12)


def test_task_metrics_auc_and_logloss_by_hand() -> None:
    # pairs (pos, neg): (.8,.4) ok, (.8,.3) ok, (.35,.4) wrong, (.35,.3) ok -> AUC 3/4
    out = task_metrics(np.array([1, 0, 1, 0]), np.array([.8, .4, .35, .3]), None)
    assert out["auc"] == pytest.approx(0.75)
    expected = -(math.log(.8) + math.log(.6) + math.log(.35) + math.log(.7)) / 4
    assert out["logloss"] == pytest.approx(expected)
    assert "gauc" not in out


def test_multi_task_metrics_score_each_head_against_its_own_label() -> None:
    out = multi_task_metrics({"ctr": np.array([1, 0, 1, 0]), "cvr": np.array([0, 0, 1, 0])},
                             {"ctr": np.array([.8, .4, .35, .3]),
                              "cvr": np.array([.1, .2, .9, .3])}, np.array([1, 1, 2, 2]))
    assert out["ctr"]["auc"] == pytest.approx(0.75)
    assert out["cvr"]["auc"] == pytest.approx(1.0)
    assert out["ctr"]["gauc"] == pytest.approx(1.0)  # within each user the positive is on top
    assert out["cvr"]["gauc"] == pytest.approx(1.0)  # user 1 has no purchase: only user 2
    with pytest.raises(KeyError, match="differ"):
        multi_task_metrics({"ctr": LABELS}, {"cvr": SCORES}, None)
    flat = flat_metrics(out, "ctr")
    assert flat["val_auc"] == pytest.approx(0.75) and flat["val_cvr_auc"] == pytest.approx(1.0)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        gauc(LABELS, SCORES[:-1], USERS)
    with pytest.raises(ValueError, match="0/1"):
        gauc(np.array([0, 2]), np.array([.1, .2]), np.array([1, 1]))
    assert monitor_mode("val_auc") == "max" and monitor_mode("val_cvr_logloss") == "min"
    with pytest.raises(ValueError, match="cannot monitor 'val_acc'"):
        monitor_mode("val_acc")
