"""Per-kind skew rules: counts and ids exact, floats relative, sequences as the model sees them."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from shoprec.contract import CONTRACT, Feature
from validation.skew_compare import mismatches, plain


def _first(kind: str, dtype: str | None = None) -> Feature:
    return next(f for f in CONTRACT.features
                if f.kind == kind and (dtype is None or f.dtype == dtype))


def _bad(feature: Feature, served: list, offline: list, **kw) -> list[bool]:
    return mismatches(feature, pd.Series(served, dtype=object), pd.Series(offline, dtype=object),
                      **kw).tolist()


def test_counts_and_categories_must_match_exactly() -> None:
    for feat in (_first("count"), _first("categorical")):
        assert _bad(feat, [0, 5, 10**12, None, 3], [0, 6, 10**12 + 1, None, None]) == \
            [False, True, True, False, True]


def test_floats_match_within_relative_tolerance() -> None:
    feat = _first("numeric", "float64")
    served = [100.0, 100.0, 0.0, 1e-300, float("nan"), 2.5]
    offline = [100.0 * (1 + 9e-7), 100.0 * (1 + 2e-6), 0.0, 2e-300, float("nan"), None]
    assert _bad(feat, served, offline) == [False, True, False, True, False, True]
    assert _bad(feat, served[:2], offline[:2], rel_tol=1e-5) == [False, False]


@pytest.mark.skipif(not any(f.kind == "sequence" for f in CONTRACT.features),
                    reason="the contract declares no sequence feature")
def test_sequences_compare_element_wise_after_the_model_padding() -> None:
    ids = dataclasses.replace(_first("sequence", "int64"), max_len=4)
    served = [[1, 2, 3], [1, 2, 3], [9, 1, 2, 3, 4], None, [5]]
    offline = [[-1, 1, 2, 3], [1, 3, 2], [7, 1, 2, 3, 4], [], [5, 5]]
    # padded raw == padded array; order matters; beyond max_len nobody saw it; None == empty
    assert _bad(ids, served, offline) == [False, True, False, False, True]
    if any(f.kind == "sequence" and f.dtype == "float64" for f in CONTRACT.features):
        gaps = dataclasses.replace(_first("sequence", "float64"), max_len=2)
        assert _bad(gaps, [[1.0, 2.0], [1.0, 2.0]], [[1.0, 2.0 + 1e-9], [1.0, 2.1]]) == \
            [False, True]


def test_misaligned_inputs_are_an_error_and_examples_are_json_ready() -> None:
    with pytest.raises(ValueError, match="2 served vs 1 offline"):
        mismatches(_first("count"), pd.Series([1, 2]), pd.Series([1]))
    assert plain(pd.Series([[1, 2]]).iat[0]) == [1, 2]
    assert plain(pd.Timestamp("2025-01-01", tz="UTC")) == "2025-01-01T00:00:00+00:00"
    assert plain(float("nan")) is None
