"""Population stability index (PSI) and the binning it rests on, per contract feature kind.

PSI compares how a population spreads over a fixed set of bins in a *reference* sample (the
training window) and a *current* sample (the latest interval)::

    PSI = sum_i (c_i - r_i) * ln(c_i / r_i)

where ``r_i`` and ``c_i`` are the fractions of the reference and current rows in bin ``i``. A bin
that holds no row on one side would make the logarithm infinite, so an empty fraction is
replaced by ``eps`` (default ``1e-4``; the other fractions are left as they are, so a bin empty on
both sides contributes exactly 0). Rules of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 a shift.

Bins are always fitted on the reference only, so yesterday's and today's reports of the same
window use the same bins:

* ``numeric`` and ``count``: quantile bins. The edges are the reference's ``k/n_bins`` quantiles
  (``inverted_cdf``: every edge is an observed value), de-duplicated, so a count that is 0 for
  60 % of rows gets one ``<= 0`` bin instead of six identical ones. Bin ``i`` is
  ``(edge[i-1], edge[i]]``; the first is open below and the last open above, so current values
  outside the reference range still land in a bin.
* ``categorical``: one bin per category among the reference's ``top_k`` most frequent (ties:
  smaller value first) and one ``other`` bin for the rest, including categories never seen in
  the reference - a new category therefore shows up as growth of ``other``.
* ``sequence``: two separate distributions, the **length** of each sequence (binned like a
  count) and its **elements**, all sequences flattened (binned like a categorical for an
  ``int64`` element dtype - ids and categories - and like a numeric for ``float64`` elements).
* every kind has a ``missing`` bin for null values, so a broken join that nulls a feature is a
  shift too.

Pure NumPy/pandas, no I/O: :mod:`validation.drift` reads the samples and writes the reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING, OTHER = "missing", "other"
LENGTH, ELEMENTS, VALUE = "length", "elements", "value"
"""Metric names: a sequence feature is reported as its length and its elements."""


@dataclass(frozen=True)
class Binned:
    """One distribution compared: bin labels and the row count of each side per bin."""

    labels: list[str]
    reference: np.ndarray
    current: np.ndarray


def fractions(counts: np.ndarray, eps: float) -> np.ndarray:
    """Counts as fractions of their total, with ``eps`` in place of every empty bin."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    frac = counts / total if total > 0 else np.zeros_like(counts)
    return np.where(frac > 0, frac, eps)


def psi(reference: np.ndarray, current: np.ndarray, eps: float = 1e-4) -> float:
    """PSI of two count vectors over the same bins (module docstring for the formula).

    Raises:
        ValueError: if the vectors differ in length or either side holds no row at all.
    """
    reference, current = np.asarray(reference), np.asarray(current)
    if reference.shape != current.shape:
        raise ValueError(f"bins differ: {reference.shape} reference vs {current.shape} current")
    if reference.sum() <= 0 or current.sum() <= 0:
        raise ValueError("PSI needs at least one row on each side")
    r, c = fractions(reference, eps), fractions(current, eps)
    return float(np.sum((c - r) * np.log(c / r)))


def quantile_edges(reference: np.ndarray, n_bins: int) -> np.ndarray:
    """Distinct inner edges: the reference's ``k / n_bins`` quantiles, ``k = 1..n_bins-1``."""
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    values = np.asarray(reference, dtype=np.float64)
    if values.size == 0:
        return np.empty(0)
    qs = np.arange(1, n_bins) / n_bins
    return np.unique(np.quantile(values, qs, method="inverted_cdf"))


def _split(values: pd.Series) -> tuple[np.ndarray, int]:
    """Non-null values and the number of nulls."""
    mask = values.isna().to_numpy()
    return values[~mask].to_numpy(), int(mask.sum())


def bin_numeric(reference: pd.Series, current: pd.Series, n_bins: int) -> Binned:
    """Quantile bins from ``reference`` plus a ``missing`` bin (module docstring)."""
    ref, ref_null = _split(reference)
    cur, cur_null = _split(current)
    edges = quantile_edges(ref.astype(np.float64), n_bins)
    n = len(edges) + 1
    ref_counts = np.bincount(np.searchsorted(edges, ref.astype(np.float64)), minlength=n)
    cur_counts = np.bincount(np.searchsorted(edges, cur.astype(np.float64)), minlength=n)
    labels = [_interval_label(edges, i) for i in range(n)]
    return Binned([*labels, MISSING], np.append(ref_counts, ref_null),
                  np.append(cur_counts, cur_null))


def _interval_label(edges: np.ndarray, i: int) -> str:
    if len(edges) == 0:
        return "all"
    if i == 0:
        return f"<= {edges[0]:.6g}"
    if i == len(edges):
        return f"> {edges[-1]:.6g}"
    return f"({edges[i - 1]:.6g}, {edges[i]:.6g}]"


def bin_categorical(reference: pd.Series, current: pd.Series, top_k: int) -> Binned:
    """Top-``top_k`` reference categories, ``other`` and ``missing`` (module docstring)."""
    ref, ref_null = _split(reference)
    cur, cur_null = _split(current)
    counts = pd.Series(ref).value_counts()
    order = sorted(counts.index, key=lambda v: (-counts[v], v))[:top_k]
    ref_counts = [int(counts[v]) for v in order]
    cur_vc = pd.Series(cur).value_counts()
    cur_counts = [int(cur_vc.get(v, 0)) for v in order]
    return Binned([*(str(v) for v in order), OTHER, MISSING],
                  np.array([*ref_counts, len(ref) - sum(ref_counts), ref_null]),
                  np.array([*cur_counts, len(cur) - sum(cur_counts), cur_null]))


def _as_sequence(value: object, dtype: str = "float64") -> Sequence | None:
    """A sequence value as its elements; null as ``None``.

    Snapshots store the string encoding of :mod:`shoprec.sequences`; the served-feature log
    holds lists. Both are read here, so one PSI compares the two.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        return np.array(value.split(), dtype=dtype)
    if isinstance(value, list | tuple | np.ndarray):
        return value
    raise TypeError(f"expected a sequence value (list or encoded string), got "
                    f"{type(value).__name__}: {value!r}")


def sequence_lengths(values: pd.Series) -> pd.Series:
    """Length of each sequence; null stays null (it is counted in the ``missing`` bin)."""
    seqs = [_as_sequence(v) for v in values]
    return pd.Series([None if s is None else len(s) for s in seqs], dtype="Float64")


def sequence_elements(values: pd.Series, dtype: str = "float64") -> pd.Series:
    """All elements of all non-null sequences, flattened in row order.

    Stored strings are parsed as ``dtype``, the element dtype.
    """
    seqs = [s for s in (_as_sequence(v, dtype) for v in values) if s is not None and len(s)]
    if not seqs:
        return pd.Series([], dtype=np.float64)
    return pd.Series(np.concatenate([np.asarray(s) for s in seqs]))


def bin_feature(kind: str, dtype: str, reference: pd.Series, current: pd.Series,
                n_bins: int = 10, top_k: int = 20) -> dict[str, Binned]:
    """Bins of one contract feature, by metric (``value``, or ``length`` and ``elements``).

    Args:
        kind: ``count``, ``numeric``, ``categorical`` or ``sequence``.
        dtype: The contract dtype (for a sequence, the element dtype).
        reference: The training-window values.
        current: The latest interval's values.
        n_bins: Quantile bins for numeric/count distributions.
        top_k: Categories kept by name for categorical distributions.

    Raises:
        ValueError: for a kind this module does not know (a new contract kind needs a rule).
    """
    if kind in ("count", "numeric"):
        return {VALUE: bin_numeric(reference, current, n_bins)}
    if kind == "categorical":
        return {VALUE: bin_categorical(reference, current, top_k)}
    if kind == "sequence":
        elements = bin_categorical if dtype in ("int64", "string") else None
        ref_el, cur_el = sequence_elements(reference, dtype), sequence_elements(current, dtype)
        return {LENGTH: bin_numeric(sequence_lengths(reference), sequence_lengths(current),
                                    n_bins),
                ELEMENTS: elements(ref_el, cur_el, top_k) if elements
                else bin_numeric(ref_el, cur_el, n_bins)}
    raise ValueError(f"no PSI binning rule for feature kind {kind!r}")
