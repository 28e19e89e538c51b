"""Vectorized rolling-window primitives over daily per-entity aggregates.

Entities are dense integer codes and days are integer day numbers. A snapshot at day ``D``
(midnight UTC) with a window of ``W`` days covers days ``D - W .. D - 1``: the snapshot never
sees day ``D`` itself, which keeps training rows of day ``D`` free of their own outcomes.

Everything is sort + cumulative sum + binary search, so the cost grows with the number of
(entity, day) aggregates and snapshot rows, never with entities x days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def active_rows(ent: np.ndarray, day: np.ndarray, lookback: int, lo: int,
                hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Snapshot rows ``(entity, D)`` with ``lo <= D <= hi`` and an event in ``[D-lookback, D)``.

    Each (entity, event day ``d``) covers snapshots ``d+1 .. d+lookback``; the part of that
    interval before the entity's next active day is emitted by ``d`` alone, so the union is
    produced without duplicates.

    Returns:
        Entity codes and snapshot days, sorted by entity then day.
    """
    if len(ent) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    e, d = unique_pairs(ent, day)
    start = d + 1
    end = d + lookback
    same_next = np.append(e[1:] == e[:-1], False)
    nxt = np.append(d[1:], 0)
    end = np.where(same_next, np.minimum(end, nxt), end)
    start, end = np.maximum(start, lo), np.minimum(end, hi)
    length = np.clip(end - start + 1, 0, None)
    out_e = np.repeat(e, length)
    offsets = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    return out_e, np.repeat(start, length) + offsets


def unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``(a, b)`` pairs of integer arrays, sorted by ``a`` then ``b``.

    Packs each pair into one int64 (1-D ``np.unique`` is several times faster than
    ``axis=0``); ``a`` must be non-negative codes.
    """
    a, b = a.astype(np.int64), b.astype(np.int64)
    lo = b.min()
    span = b.max() - lo + 1
    packed = np.unique(a * span + (b - lo))
    return packed // span, packed % span + lo


def window_sum(ent: np.ndarray, day: np.ndarray, values: np.ndarray, q_ent: np.ndarray,
               q_day: np.ndarray, window: int) -> np.ndarray:
    """Sum of ``values`` per query row over the same entity's days ``[q_day-window, q_day)``.

    Args:
        ent: Entity code of each event (or daily aggregate); any order.
        day: Day number of each event.
        values: Value of each event to sum.
        q_ent: Entity code of each query (snapshot) row.
        q_day: Snapshot day of each query row.
        window: Window length in days.

    Returns:
        One sum per query row (0 where the entity had nothing in the window); int64 if
        ``values`` are integers, else float64.
    """
    values = np.asarray(values)
    kind = np.int64 if np.issubdtype(values.dtype, np.integer) else np.float64
    if len(ent) == 0 or len(q_ent) == 0:
        return np.zeros(len(q_ent), dtype=kind)
    base = min(day.min(), q_day.min()) - window - 2
    span = max(day.max(), q_day.max()) - base + 2
    keys = ent.astype(np.int64) * span + (day.astype(np.int64) - base)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    cum = np.concatenate([[0], np.cumsum(values[order].astype(kind))])
    q_base = q_ent.astype(np.int64) * span - base
    hi = np.searchsorted(keys, q_base + q_day - 1, side="right")
    lo = np.searchsorted(keys, q_base + q_day - window - 1, side="right")
    return cum[hi] - cum[lo]


def window_mode(ent: np.ndarray, day: np.ndarray, value: np.ndarray, q_ent: np.ndarray,
                q_day: np.ndarray, window: int, rank: int = 1) -> pd.Series:
    """``rank``-th most frequent ``value`` per query row over ``[q_day-window, q_day)``.

    ``rank=1`` is the mode. Ties are broken by the lower value, so the order of values is total
    and ranks 1, 2, 3 of one row are distinct values.

    Returns:
        A Series aligned with the query rows, NaN where the entity had fewer than ``rank``
        distinct values in the window (the caller fills the contract default and casts to the
        contract dtype).
    """
    if len(ent) == 0 or len(q_ent) == 0:
        return pd.Series(np.full(len(q_ent), np.nan))
    v_codes, v_uniques = pd.factorize(value, sort=True)  # code order = value order (ties)
    d_lo, d_hi = int(q_day.min()), int(q_day.max())
    n_d, n_v = d_hi - d_lo + 1, len(v_uniques)
    keep = (day + window >= d_lo) & (day < d_hi)
    e, d, v = ent[keep].astype(np.int64), day[keep].astype(np.int64), v_codes[keep]
    # Spread each (entity, value, day) to the snapshots d+1 .. d+window that see it.
    shift = np.tile(np.arange(1, window + 1), len(e))
    snap = np.repeat(d, window) + shift
    inside = (snap >= d_lo) & (snap <= d_hi)
    ed = np.repeat(e, window)[inside] * n_d + (snap[inside] - d_lo)
    keys, counts = np.unique(ed * n_v + np.repeat(v, window)[inside], return_counts=True)
    ed, v = keys // n_v, keys % n_v
    order = np.lexsort((v, -counts, ed))  # per snapshot row: highest count, then lowest value
    ed, v = ed[order], v[order]
    pick = np.unique(ed, return_index=True)[1] + (rank - 1)  # rank-th entry of each row
    pick = pick[pick < len(ed)]
    pick = pick[ed[pick] == ed[pick - (rank - 1)]]  # the row has at least `rank` values
    top_ed, top_v = ed[pick], v[pick]
    q_ed = q_ent.astype(np.int64) * n_d + (q_day.astype(np.int64) - d_lo)
    pos = np.clip(np.searchsorted(top_ed, q_ed), 0, max(len(top_ed) - 1, 0))
    hit = (len(top_ed) > 0) & (top_ed[pos] == q_ed) if len(top_ed) else np.zeros(len(q_ed), bool)
    out = pd.Series(np.full(len(q_ed), np.nan), dtype=object)
    out[hit] = np.asarray(v_uniques)[top_v[pos[hit]]]
    return out


def window_last(ent: np.ndarray, day: np.ndarray, ts: np.ndarray, q_ent: np.ndarray,
                q_day: np.ndarray, window: int) -> np.ndarray:
    """Latest ``ts`` per query row over the same entity's days ``[q_day-window, q_day)``.

    Args:
        ent: Entity code of each event.
        day: Day number of each event (the UTC day of ``ts``).
        ts: Event time as int64 nanoseconds.
        q_ent: Entity code of each query (snapshot) row.
        q_day: Snapshot day of each query row.
        window: Window length in days.

    Returns:
        float64 nanoseconds per query row, NaN where the entity had no event in the window.
    """
    out = np.full(len(q_ent), np.nan)
    if len(ent) == 0 or len(q_ent) == 0:
        return out
    base = min(day.min(), q_day.min()) - window - 2
    span = max(day.max(), q_day.max()) - base + 2
    order = np.lexsort((ts, ent))  # by entity, then time (so also by day)
    keys = ent[order].astype(np.int64) * span + (day[order].astype(np.int64) - base)
    q_key = q_ent.astype(np.int64) * span + (q_day.astype(np.int64) - base)
    last = np.searchsorted(keys, q_key, side="left") - 1  # last event before day q_day
    ok = (last >= 0) & (keys[np.maximum(last, 0)] >= q_key - window)  # same entity, in window
    out[ok] = ts[order][last[ok]]
    return out
