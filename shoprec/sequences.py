"""Sequence features: one storage encoding and one fixed-length padding, shared by every side.

A ``sequence`` feature (a user's recent item ids, their categories, the time gaps) is a
variable-length list, newest element LAST. It is STORED (snapshot Parquet, Feast offline and
online stores, push payloads) as one string of its elements separated by single spaces, e.g.
``"17 4 96"``; the empty history is ``""``. Why a string rather than a Feast ``Array``: Feast's
file offline store runs its point-in-time join in dask, which fingerprints every intermediate
frame by its data; a list column has no fast path there and is pickled cell by cell (measured:
a 100k-event training set went from 9 s to 52 s with ``Array`` features, ~40 s of it in
tokenizing), while a string column is hashed in one C call. Strings also keep Redis values
small and read plainly in the Feast UI; EasyRec stores its sequence features the same way.

Models take a fixed ``[batch, max_len]`` array: the newest ``max_len`` elements, left-padded
with the feature's ``default`` (its pad element). Training (:mod:`training.preprocessing`),
the feature fetch (:func:`feature_repo.online.conform`) and serving all call
:func:`pad_sequences`, so one function decides what a model sees on both sides; it lives in
``shoprec`` because serving never imports training.

Numpy/pyarrow only and vectorised: encoding and decoding are Arrow compute kernels, padding is
index arithmetic; no per-element Python loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
import pandas as pd

_NUMPY = {"int64": np.int64, "float64": np.float64}
SEPARATOR = " "
"""Between the elements of a stored sequence (Arrow's whitespace split reads it back)."""


class SequenceSpec(Protocol):
    """What padding needs to know: a contract ``Feature`` or a training ``InputSpec``."""

    name: str
    dtype: str
    max_len: int
    default: Any


def _is_missing_cell(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def _as_cells(values: Iterable[Any], feature: SequenceSpec) -> list[Any]:
    """Cells as lists/arrays, encoded strings or None; the bare pad element means "no history".

    A missing row filled with the contract default by generic code (``fillna(default)``) holds
    the bare pad element; reading it as the empty sequence keeps such code correct.
    """
    cells = []
    for i, v in enumerate(values):
        if _is_missing_cell(v):
            cells.append(None)
        elif isinstance(v, (list, tuple, np.ndarray, str)):
            cells.append(v)
        elif np.isscalar(v) and v == feature.default:
            cells.append(None)
        else:
            raise ValueError(f"sequence feature {feature.name!r}: row {i} holds {v!r}, not a "
                             f"list (nor the pad element {feature.default!r})")
    return cells


def pad_sequences(values: Any, feature: SequenceSpec) -> np.ndarray:
    """The newest ``max_len`` elements of each row, left-padded: ``[n, max_len]``.

    Args:
        values: One cell per row: the stored string (:func:`encode_sequences`), a
            list/tuple/1-D array (newest last), None/NaN (no history) or the bare pad element;
            or an already padded ``[n, max_len]`` array.
        feature: Gives ``max_len``, the pad element (``default``) and the element dtype.

    Returns:
        An array of the element dtype (``int64`` / ``float64``). Already padded rows come back
        unchanged, so padding twice is harmless.

    Raises:
        ValueError: naming the feature, for an element that is null or cannot be cast to the
            element dtype, a non-list cell, or a 2-D input of the wrong width.
    """
    dtype = _NUMPY.get(feature.dtype)
    width = feature.max_len
    if dtype is None or width <= 0:
        raise ValueError(f"sequence feature {feature.name!r} needs an int64/float64 element "
                         f"dtype and max_len > 0, got {feature.dtype!r} / {width}")
    if isinstance(values, np.ndarray) and values.ndim == 2:
        if values.shape[1] != width:
            raise ValueError(f"sequence feature {feature.name!r}: got width {values.shape[1]}, "
                             f"max_len is {width}")
        return values.astype(dtype, copy=False)
    rows = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
    if _padded_rows(rows, width, np.dtype(dtype)):  # padded before (a conformed online read)
        return np.stack(list(rows))
    flat_lengths = _decode_few(rows, dtype)
    flat, lengths = flat_lengths if flat_lengths is not None else _flatten(values, feature,
                                                                           dtype)
    return _pad_flat(flat, lengths, feature, dtype)


def pad_arrow(arr: Any, feature: SequenceSpec) -> np.ndarray:
    """:func:`pad_sequences` for an Arrow column (a Parquet read), without Python objects.

    A training set stores histories as Arrow lists (or the stored strings); converting them to
    pandas first makes one numpy object per cell, which cost more CPU than the ranker step on
    2 cores. Here offsets and values go straight into the padding arithmetic. Same rules and
    errors as :func:`pad_sequences` (tested against it).
    """
    import pyarrow as pa

    dtype = _NUMPY.get(feature.dtype)
    if dtype is None or feature.max_len <= 0:
        return pad_sequences(arr.to_pandas(), feature)  # names the problem
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = _decode(arr)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
            or pa.types.is_fixed_size_list(arr.type)):
        return pad_sequences(arr.to_pandas(), feature)  # bare pad elements, nulls or junk
    flat, lengths = _arrow_flat(arr, feature, dtype)
    return _pad_flat(flat, lengths, feature, dtype)


def _pad_flat(flat: np.ndarray, lengths: np.ndarray, feature: SequenceSpec,
              dtype: Any) -> np.ndarray:
    """Rows given as (all elements, length per row) -> the newest ``max_len``, left-padded."""
    width = feature.max_len
    n = len(lengths)
    if n and (lengths == width).all():  # already padded (e.g. conformed online rows)
        return flat.reshape(n, width)
    keep = np.minimum(lengths, width)
    if (keep < lengths).any():  # drop the oldest elements of rows longer than max_len
        starts = np.cumsum(lengths) - lengths
        pos = np.arange(len(flat)) - np.repeat(starts, lengths)
        flat = flat[pos >= np.repeat(lengths - keep, lengths)]
    out = np.full((n, width), feature.default, dtype=dtype)
    if len(flat):
        # element j of the kept elements goes to row r, column width - keep[r] + (j - first[r])
        shift = np.arange(n) * width + width - keep - (np.cumsum(keep) - keep)
        out.reshape(-1)[np.arange(len(flat)) + np.repeat(shift, keep)] = flat
    return out


def _decode_few(rows: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(elements, lengths)`` of a few stored strings (or None cells), without Arrow.

    A serving request decodes one user's histories; Arrow's kernels cost more than the work
    there. Anything unusual (other cells, a value that does not parse as ``dtype``) returns
    None and takes the general path, which checks it and names the problem.
    """
    if not isinstance(rows, np.ndarray | list) or not 0 < len(rows) <= 16 or not all(
            r is None or isinstance(r, str) for r in rows):
        return None
    try:
        parts = [np.array(r.split(), dtype=dtype) if r else np.empty(0, dtype) for r in rows]
    except (ValueError, OverflowError):
        return None
    return (np.concatenate(parts), np.array([len(p) for p in parts], dtype=np.int64))


def _padded_rows(rows: Any, width: int, dtype: np.dtype) -> bool:
    """Whether every cell is already a 1-D array of ``width`` elements of exactly ``dtype``.

    Such rows need no decoding and no cast (so no unsafe cast can slip through either).
    """
    if not isinstance(rows, np.ndarray | list) or not len(rows):
        return False
    return all(isinstance(r, np.ndarray) and r.shape == (width,) and r.dtype == dtype
               for r in rows)


def _flatten(values: Any, feature: SequenceSpec, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(all elements concatenated, length per row)``; missing rows have length 0."""
    import pyarrow as pa

    arrow_type = pa.list_(pa.from_numpy_dtype(dtype))
    seq = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
    try:
        try:  # infer, then cast *safely*: 1.5 must not silently become the id 1
            arr = pa.array(seq, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            arr = None
        if arr is not None and pa.types.is_string(arr.type):  # the stored encoding
            arr = _decode(arr)
        if arr is None or not pa.types.is_list(arr.type):
            # bare pad elements / NA cells (or junk, which _as_cells names): normalise them
            arr = pa.array(_as_cells(seq, feature), from_pandas=True)
            if pa.types.is_string(arr.type):
                arr = _decode(arr)
            if not pa.types.is_list(arr.type):  # every row missing
                arr = pa.nulls(len(arr), arrow_type)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as err:
        raise ValueError(f"sequence feature {feature.name!r}: elements are not "
                         f"{feature.dtype}: {err}") from err
    return _arrow_flat(arr, feature, dtype)


def _arrow_flat(arr: Any, feature: SequenceSpec, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(elements, lengths)`` of an Arrow list array, cast safely to the element dtype."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = arr.cast(pa.list_(pa.from_numpy_dtype(dtype)))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as err:
        raise ValueError(f"sequence feature {feature.name!r}: elements are not "
                         f"{feature.dtype}: {err}") from err
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy().astype(np.int64)
    elements = arr.flatten()
    if elements.null_count:
        raise ValueError(f"sequence feature {feature.name!r}: {elements.null_count} null "
                         f"element(s) inside a sequence")
    flat = elements.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    if dtype is np.float64 and np.isnan(flat).any():
        raise ValueError(f"sequence feature {feature.name!r}: NaN element inside a sequence")
    return flat, lengths


def _decode(arr: Any) -> Any:
    """Encoded strings -> an Arrow list-of-strings array (``""`` and null: no elements)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    return pc.utf8_split_whitespace(arr)


def encode_sequences(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The stored form of many sequences: an object array of strings, one per row.

    Args:
        flat: Every row's elements concatenated, oldest first within a row (int or float).
        lengths: Elements per row (0 gives ``""``).

    Returns:
        One string per row, elements joined by :data:`SEPARATOR`. Floats are written in their
        shortest exact decimal form, so decoding gives back the identical float64.

    Raises:
        ValueError: for a NaN/inf element or lengths that do not add up to ``len(flat)``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    flat = np.asarray(flat)
    lengths = np.asarray(lengths, dtype=np.int64)
    if int(lengths.sum()) != len(flat) or (lengths < 0).any():
        raise ValueError(f"sequence lengths add up to {int(lengths.sum())}, "
                         f"but there are {len(flat)} elements")
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        raise ValueError("a sequence element is NaN or infinite; it could not be stored")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    if offsets[-1] >= 2**31:
        raise ValueError(f"{offsets[-1]} sequence elements exceed one Arrow list array; "
                         "encode fewer rows at a time")
    lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                     pc.cast(pa.array(flat), pa.string()))
    return pc.binary_join(lists, SEPARATOR).to_numpy(zero_copy_only=False)


def encode_lists(rows: Iterable[Any]) -> list[str]:
    """Stored form of a few Python sequences (the push path), via :func:`encode_sequences`."""
    rows = [list(r) for r in rows]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.array([v for r in rows for v in r]) if lengths.sum() else np.empty(0, np.int64)
    return list(encode_sequences(flat, lengths))


def decode_lists(values: Iterable[Any], dtype: str) -> list[np.ndarray]:
    """Stored sequences back to variable-length arrays (None/``""`` -> empty), unpadded.

    For code that edits a stored history (the push path appends an event to it) and for
    reading a snapshot by eye; models always go through :func:`pad_sequences`.

    Raises:
        ValueError: if an element is not a number of ``dtype``.
    """
    import pyarrow as pa

    np_dtype = _NUMPY[dtype]
    cells = ["" if _is_missing_cell(v) else v for v in values]
    try:
        arr = _decode(pa.array(cells, type=pa.string())).cast(pa.list_(pa.from_numpy_dtype(
            np_dtype)))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as err:
        raise ValueError(f"stored sequence elements are not {dtype}: {err}") from err
    return [np.asarray(v if v is not None else [], dtype=np_dtype) for v in arr.to_pylist()]
