"""PSI formula and the per-kind binning, on distributions small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from validation.psi import (
    ELEMENTS,
    LENGTH,
    MISSING,
    OTHER,
    VALUE,
    bin_categorical,
    bin_feature,
    bin_numeric,
    psi,
    quantile_edges,
)


def test_psi_of_two_distributions_over_four_bins_matches_the_formula() -> None:
    reference, current = np.array([40, 30, 20, 10]), np.array([25, 25, 25, 25])
    r, c = [0.40, 0.30, 0.20, 0.10], [0.25, 0.25, 0.25, 0.25]
    by_hand = sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c, strict=True))
    # (-.15)ln(.625) + (-.05)ln(.8333) + (.05)ln(1.25) + (.15)ln(2.5)
    # = .070501 + .009116 + .011157 + .137444
    assert by_hand == pytest.approx(0.228218, abs=1e-6)
    assert psi(reference, current) == pytest.approx(by_hand, rel=1e-12)
    assert psi(reference, reference * 3) == 0.0  # same proportions, any sample size


def test_empty_bins_count_as_eps_and_a_bin_empty_on_both_sides_adds_nothing() -> None:
    reference, current = np.array([50, 50, 0, 0]), np.array([25, 25, 50, 0])
    eps = 1e-4
    by_hand = 2 * (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.5 - eps) * math.log(0.5 / eps)
    assert psi(reference, current, eps=eps) == pytest.approx(by_hand, rel=1e-12)
    assert psi(reference, current, eps=1e-3) < psi(reference, current, eps=1e-4)


def test_psi_rejects_mismatched_or_empty_sides() -> None:
    with pytest.raises(ValueError, match="bins differ"):
        psi(np.array([1, 2]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="at least one row"):
        psi(np.array([0, 0]), np.array([1, 2]))


def test_quantile_bins_come_from_the_reference_and_keep_current_outliers() -> None:
    reference = pd.Series(np.arange(1, 101, dtype=np.float64))  # 1..100
    assert quantile_edges(reference.to_numpy(), 4).tolist() == [25.0, 50.0, 75.0]
    current = pd.Series([10.0] * 40 + [30.0] * 30 + [60.0] * 20 + [1e9] * 9 + [None])
    binned = bin_numeric(reference, current, 4)
    assert binned.labels == ["<= 25", "(25, 50]", "(50, 75]", "> 75", MISSING]
    assert binned.reference.tolist() == [25, 25, 25, 25, 0]
    assert binned.current.tolist() == [40, 30, 20, 9, 1]
    r = [0.25, 0.25, 0.25, 0.25, 1e-4]
    c = [0.40, 0.30, 0.20, 0.09, 0.01]
    by_hand = sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c, strict=True))
    assert psi(binned.reference, binned.current) == pytest.approx(by_hand, rel=1e-12)


def test_a_mostly_zero_count_gets_one_zero_bin_not_duplicate_edges() -> None:
    reference = pd.Series([0] * 60 + list(range(1, 41)))
    binned = bin_numeric(reference, reference, 10)
    assert binned.labels[0] == "<= 0" and binned.reference[0] == 60
    assert len(set(binned.labels)) == len(binned.labels)
    assert binned.reference.sum() == 100


def test_categorical_keeps_top_k_and_pools_the_rest_and_new_values_in_other() -> None:
    binned = bin_categorical(pd.Series([1, 1, 1, 2, 2, 3]), pd.Series([1, 4, 4, None]), 2)
    assert binned.labels == ["1", "2", OTHER, MISSING]
    assert binned.reference.tolist() == [3, 2, 1, 0]
    assert binned.current.tolist() == [1, 0, 2, 1]


def test_sequences_are_binned_by_length_and_by_element() -> None:
    ref = pd.Series([[1, 2], [1], [], None, [3, 1, 1]])
    cur = pd.Series([[7, 7, 7, 7], [1]])
    got = bin_feature("sequence", "int64", ref, cur, n_bins=2, top_k=2)
    assert set(got) == {LENGTH, ELEMENTS}
    # lengths 2, 1, 0, (null), 3: median edge 1 -> bins <= 1 {1, 0}, > 1 {2, 3}, missing
    assert got[LENGTH].reference.tolist() == [2, 2, 1]
    assert got[LENGTH].current.tolist() == [1, 1, 0]
    # elements 1, 2, 1, 3, 1, 1: top 2 = 1 (x4), 2 (x1, tie with 3 broken by value)
    assert got[ELEMENTS].labels == ["1", "2", OTHER, MISSING]
    assert got[ELEMENTS].reference.tolist() == [4, 1, 1, 0]
    assert got[ELEMENTS].current.tolist() == [1, 0, 4, 0]
    floats = bin_feature("sequence", "float64", pd.Series([[0.5, 1.5]]), pd.Series([[9.0]]), 2)
    assert floats[ELEMENTS].labels[-1] == MISSING and floats[ELEMENTS].current.sum() == 1
    assert set(bin_feature("count", "int64", ref.str.len(), ref.str.len())) == {VALUE}


def test_an_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no PSI binning rule for feature kind 'embedding'"):
        bin_feature("embedding", "float64", pd.Series([1.0]), pd.Series([1.0]))
    with pytest.raises(TypeError, match="expected a sequence value"):
        bin_feature("sequence", "int64", pd.Series([5]), pd.Series([[1]]))
