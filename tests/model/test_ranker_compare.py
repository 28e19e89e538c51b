"""The benchmark arithmetic of ``training.ranker_compare`` (hand-computed values)."""

from __future__ import annotations

import pytest

from training.ranker_compare import gauc_margin, paired_ratio


def test_paired_ratio_is_the_median_of_neighbouring_pairs() -> None:
    # pairs: 5/5 = 1.0, 6/5 = 1.2, 5/6.25 = 0.8 -> median 1.0; the summed ratio is 16/16.25
    assert paired_ratio([5.0, 6.0, 5.0], [5.0, 5.0, 6.25]) == pytest.approx(1.0)
    # four pairs: 0.9, 0.95, 1.0, 0.5 -> median (0.9 + 0.95) / 2; one slow stream fit (0.5)
    # would drag the summed ratio to 18.5 / 22.5 = 0.822
    assert paired_ratio([4.5, 4.75, 5.0, 4.25],
                        [5.0, 5.0, 5.0, 8.5]) == pytest.approx(0.925)
    with pytest.raises(ValueError, match="equally many timings, got 2 and 1"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="equally many timings, got 0 and 0"):
        paired_ratio([], [])
    with pytest.raises(ValueError, match="positive"):
        paired_ratio([1.0], [0.0])


def test_gauc_margin_subtracts_the_reference_and_skips_missing() -> None:
    rows = [{"model": "din", "test": {"ctr": {"gauc": 0.70}}},
            {"model": "wide_deep", "test": {"ctr": {"gauc": 0.68}}},
            {"model": "esmm", "test": {"ctr": {"gauc": float("nan")}}}]
    assert gauc_margin(rows, "din", "wide_deep") == pytest.approx(0.02)
    assert gauc_margin(rows, "din", "esmm") is None
    assert gauc_margin(rows, "din", "dcn") is None
    assert gauc_margin(rows, "din", "wide_deep", task="cvr") is None
