"""Negative sampling for implicit data: counts, exclusions, distribution, seeding, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.negatives import NegativeSampling, item_probabilities, sample_negatives

POSITIVES = pd.DataFrame({
    "user_id": [1, 1, 2, 3],
    "item_id": [10, 11, 10, 12],
    "event_ts": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-01", "2026-01-03"],
                               utc=True),
})
ITEMS = np.arange(10, 30)


def test_k_negatives_per_positive_copy_its_user_and_time_and_avoid_own_items() -> None:
    out = sample_negatives(POSITIVES, ITEMS, NegativeSampling(k=3, distribution="uniform"))
    assert len(out) == 4 * (3 + 1)
    assert out["label"].tolist() == [1, 0, 0, 0] * 4  # each positive, then its negatives
    assert out["label"].dtype == np.int64
    for i, pos in POSITIVES.iterrows():
        group = out[out["neg_of"] == i]
        assert (group["user_id"] == pos["user_id"]).all()
        assert (group["event_ts"] == pos["event_ts"]).all()
    own = POSITIVES.groupby("user_id")["item_id"].apply(set)
    negs = out[out["label"] == 0]
    assert not any(item in own[user] for user, item in zip(negs["user_id"], negs["item_id"],
                                                           strict=True))


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a = sample_negatives(POSITIVES, ITEMS, NegativeSampling(k=5, seed=1, distribution="uniform"))
    b = sample_negatives(POSITIVES, ITEMS, NegativeSampling(k=5, seed=1, distribution="uniform"))
    c = sample_negatives(POSITIVES, ITEMS, NegativeSampling(k=5, seed=2, distribution="uniform"))
    pd.testing.assert_frame_equal(a, b)
    assert a["item_id"].tolist() != c["item_id"].tolist()


def test_popularity_distribution_is_count_to_the_alpha() -> None:
    counts = pd.Series({10: 1, 11: 4, 12: 9})  # item 13 never seen
    probs = item_probabilities(np.array([10, 11, 12, 13]), counts,
                               NegativeSampling(alpha=0.5))
    np.testing.assert_allclose(probs, [1 / 6, 2 / 6, 3 / 6, 0])
    smoothed = item_probabilities(np.array([10, 13]), counts,
                                  NegativeSampling(alpha=1.0, pseudo_count=1.0))
    np.testing.assert_allclose(smoothed, [2 / 3, 1 / 3])
    # 4000 draws for one user who owns nothing drawable: frequencies follow 1:2:3
    many = pd.DataFrame({"user_id": [9] * 1000, "item_id": [99] * 1000})
    out = sample_negatives(many, np.array([10, 11, 12, 13]),
                           NegativeSampling(k=4, alpha=0.5, seed=0), counts=counts,
                           history=many.iloc[:0])
    freq = out.loc[out["label"] == 0, "item_id"].value_counts(normalize=True)
    assert 13 not in freq.index
    np.testing.assert_allclose(freq.reindex([10, 11, 12]).to_numpy(), [1 / 6, 2 / 6, 3 / 6],
                               atol=0.03)


def test_impossible_requests_fail_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r"users \[1\]"):
        sample_negatives(POSITIVES, np.array([10, 11]), NegativeSampling(distribution="uniform"))
    with pytest.raises(ValueError, match="needs per-item training counts"):
        sample_negatives(POSITIVES, ITEMS, NegativeSampling())
    with pytest.raises(ValueError, match="no mass"):
        item_probabilities(ITEMS, pd.Series(dtype=float), NegativeSampling())
    with pytest.raises(ValueError, match="k .* must be >= 1"):
        NegativeSampling(k=0)
    with pytest.raises(ValueError, match="distribution"):
        NegativeSampling(distribution="zipf")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="item_id"):
        sample_negatives(POSITIVES.drop(columns="item_id"), ITEMS, NegativeSampling())


def test_implicit_rows_label_every_task_and_count_popularity_before_train_end() -> None:
    from shoprec.contract import CONTRACT
    from training.implicit_set import implicit_rows

    ts = pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-09"], utc=True)
    positives = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [10, 12, 10, 11],
                              "event_ts": ts, "device": ["ios", None, "web", "ios"]})
    rows = implicit_rows(positives, np.array([10, 11, 12]), CONTRACT,
                         NegativeSampling(k=2), train_end=pd.Timestamp("2026-01-05", tz="UTC"))
    assert len(rows) == 4 * 3
    assert rows["event_ts"].is_monotonic_increasing
    for column in CONTRACT.task_labels.values():
        assert rows[column].tolist() == rows[CONTRACT.label].tolist()
    for field in CONTRACT.request_fields:
        assert rows[field.name].equals(rows[field.event_column])
    negatives = rows[rows[CONTRACT.label] == 0]
    # item 11 is only bought after train_end: no training count, never drawn (counting the
    # held-out period would have let users 1 and 3 draw it)
    assert 11 not in set(negatives["item_id"])
    assert set(negatives.loc[negatives["user_id"].isin([1, 3]), "item_id"]) == {12}
    assert set(negatives.loc[negatives["user_id"] == 2, "item_id"]) == {10}
