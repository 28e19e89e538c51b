"""Behaviour sequences (``History`` recipes) for the daily snapshots, fully vectorised.

The snapshot of day ``D`` holds, per user, the last ``max_len`` qualifying events with a UTC
day in ``[D - window, D)``: strictly before ``D``'s midnight, like every other feature, so a
training row of day ``D`` never sees its own day. Elements are oldest first (newest LAST);
padding to the fixed length models see happens later (:func:`shoprec.sequences.pad_sequences`),
so the stored values stay short for light users. They are stored in the string encoding of
:mod:`shoprec.sequences` (elements separated by spaces).

Ordering of events with the same timestamp: funnel order of the event type, then item id, so
the sequence is deterministic whatever order the event files were read in.

One sort of the events plus two binary searches per snapshot row give each row's slice
``[lo, hi)`` of the sorted events; the slices are encoded by Arrow kernels, no per-row loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprec.recipes import GAP_HOURS
from shoprec.sequences import encode_sequences

NS_PER_HOUR = 3_600 * 10**9
NS_PER_DAY = 86_400 * 10**9


def history_slices(ent: np.ndarray, day: np.ndarray, ts: np.ndarray, tiebreak: np.ndarray,
                   q_ent: np.ndarray, q_day: np.ndarray, window: int,
                   max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query row, the positions (into the sort order) of its history elements.

    Args:
        ent: Entity code of each qualifying event.
        day: UTC day number of each event.
        ts: Event time, int64 nanoseconds.
        tiebreak: Integer order of events with equal ``ts`` (smaller first).
        q_ent: Entity code of each snapshot row.
        q_day: Snapshot day of each snapshot row.
        window: Days before the snapshot that may enter the history.
        max_len: Most elements kept per row (the newest ones).

    Returns:
        ``(element_index, lengths)``: indexes into the ORIGINAL event arrays, row after row,
        oldest first within a row; and the number of elements of each row.
    """
    if len(ent) == 0 or len(q_ent) == 0:
        return np.empty(0, np.int64), np.zeros(len(q_ent), np.int64)
    base = min(day.min(), q_day.min()) - window - 2
    span = max(day.max(), q_day.max()) - base + 2
    order = np.lexsort((tiebreak, ts, ent))
    keys = ent[order].astype(np.int64) * span + (day[order].astype(np.int64) - base)
    q_key = q_ent.astype(np.int64) * span + (q_day.astype(np.int64) - base)
    hi = np.searchsorted(keys, q_key, side="left")  # first event on/after day D
    lo = np.searchsorted(keys, q_key - window, side="left")  # first event in the window
    lo = np.maximum(lo, hi - max_len)
    lengths = (hi - lo).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(int(lengths.sum())) - np.repeat(starts, lengths)
    return order[np.repeat(lo, lengths) + pos], lengths


def history_column(value: str, element: np.ndarray, lengths: np.ndarray, items: np.ndarray,
                   ts: np.ndarray, q_day: np.ndarray, attr: pd.Series | None,
                   pad: float | int, dtype: str) -> pd.Series:
    """The list column of one ``History`` feature for the snapshot rows.

    Args:
        value: ``History.value``: ``item_id``, :data:`GAP_HOURS` or an items-table column.
        element: Event index of each element (from :func:`history_slices`).
        lengths: Elements per snapshot row.
        items: Item id of each event.
        ts: Event time (int64 ns) of each event.
        q_day: Snapshot day of each row (gaps are measured to its midnight).
        attr: For a catalogue column, its value per event (NaN for unknown items).
        pad: The feature's pad element, used for an unknown catalogue value.
        dtype: Element dtype (``int64`` / ``float64``).

    Returns:
        An object Series of encoded sequences, one per snapshot row (``""`` for no history).
    """
    np_dtype = np.int64 if dtype == "int64" else np.float64
    if value == GAP_HOURS:
        snap_ns = np.repeat(q_day.astype(np.int64) * NS_PER_DAY, lengths)
        flat = (snap_ns - ts[element]) / NS_PER_HOUR
    elif attr is None:
        flat = items[element]
    else:
        vals = attr.to_numpy(dtype=np.float64)[element]
        flat = np.where(np.isnan(vals), pad, vals)
    flat = np.asarray(flat).astype(np_dtype)
    return pd.Series(encode_sequences(flat, lengths), dtype=object)
