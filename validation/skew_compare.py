"""Per-kind equality of served and recomputed feature values, for the skew check.

The rule depends on the contract kind and dtype of the feature, never on its name:

* ``count`` features, and every ``int64`` or ``string`` feature (``categorical`` ids): **exact**;
  a count that is off by one is a real skew, however large the count.
* ``float64`` features (``numeric``): **relative** tolerance,
  ``|served - offline| <= rel_tol * max(|served|, |offline|)`` (default ``1e-6``). Both sides
  are computed by the same recipe in float64, so only serialization noise (Parquet/sqlite
  round trips) is forgiven, not a different formula or a stale snapshot.
* ``sequence`` features: both sides are first padded/truncated to the fixed ``[max_len]`` array
  models see (:func:`shoprec.sequences.pad_sequences`, newest last, left-padded with the pad
  element), then every element must be equal by the element dtype's rule (exact for ids and
  categories, relative for floats); order matters. A history that differs only beyond
  ``max_len`` reached no model and is not a mismatch.

Null on both sides counts as equal; null on one side only is a mismatch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import Feature


def is_null(value: Any) -> bool:
    """Whether a single stored value is null (``None``, ``NaN``, ``pd.NA``, ``NaT``)."""
    if isinstance(value, list | tuple | np.ndarray):
        return False
    return bool(pd.isna(value))


def plain(value: Any) -> Any:
    """A JSON-ready form of one value (arrays as lists, NumPy scalars as numbers)."""
    if isinstance(value, np.ndarray | list | tuple):
        return [plain(v) for v in value]
    if is_null(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def _scalar_equal(served: np.ndarray, offline: np.ndarray, relative: bool,
                  rel_tol: float) -> np.ndarray:
    """Element-wise equality of two aligned value arrays (nulls handled by the caller)."""
    if not relative:
        return np.asarray(served == offline, dtype=bool)
    a, b = served.astype(np.float64), offline.astype(np.float64)
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= rel_tol * np.maximum(np.abs(a), np.abs(b))
    return (a == b) | close | (np.isnan(a) & np.isnan(b))


def _relative(feature: Feature) -> bool:
    return feature.kind != "count" and feature.dtype == "float64"


def mismatches(feature: Feature, served: pd.Series, offline: pd.Series,
               rel_tol: float = 1e-6) -> np.ndarray:
    """Boolean mask of the rows where the served value differs from the offline one.

    Args:
        feature: Decides the rule (module docstring).
        served: Logged values, one per row.
        offline: Recomputed values aligned with ``served``.
        rel_tol: Relative tolerance for float values.

    Raises:
        ValueError: if the two series differ in length (they must be aligned row by row).
    """
    if len(served) != len(offline):
        raise ValueError(f"{feature.name}: {len(served)} served vs {len(offline)} offline values")
    relative = _relative(feature)
    if feature.kind == "sequence":
        if not len(served):
            return np.zeros(0, dtype=bool)
        from shoprec.sequences import pad_sequences

        a, b = pad_sequences(served, feature), pad_sequences(offline, feature)
        return ~_scalar_equal(a, b, relative, rel_tol).all(axis=1)
    s, o = served.to_numpy(dtype=object), offline.to_numpy(dtype=object)
    s_null = np.array([is_null(v) for v in s], dtype=bool)
    o_null = np.array([is_null(v) for v in o], dtype=bool)
    both = ~s_null & ~o_null
    equal = np.zeros(len(s), dtype=bool)
    if both.any():
        if feature.dtype == "string":
            equal[both] = np.array([str(a) == str(b) for a, b in zip(s[both], o[both],
                                                                     strict=True)])
        else:
            equal[both] = _scalar_equal(s[both].astype(np.float64 if relative else np.int64),
                                        o[both].astype(np.float64 if relative else np.int64),
                                        relative, rel_tol)
    return ~(equal | (s_null & o_null))
