"""Structural typing of raw rows against a contract table schema.

Raw values arrive as text (CSV), JSON scalars (JSONL) or already typed (Parquet). Each column is
cast to its contract dtype; a value that cannot be cast, a null in a required column or a
negative id makes the row *rejected* with a reason that names the column and quotes the value
exactly as it arrived, e.g. ``user_id: not an integer: 'abc'``. Semantic rules (allowed values,
time windows, non-negative strengths) are the validation stage's job, not this module's.

Everything is vectorised over a chunk; Python loops run only over rejected cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as pdt

from shoprec.contract import Column, TableSchema

PANDAS_DTYPES = {"int64": "int64", "float64": "float64", "string": "string",
                 "timestamp": "datetime64[ns, UTC]"}
"""pandas dtype of each contract dtype in every typed DataFrame ShopRec hands around."""
ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
               "timestamp": pa.timestamp("ns", tz="UTC")}
"""Arrow type of each contract dtype in every Parquet file ShopRec writes."""
MAX_EPOCH_SECONDS = 9.2e9
"""Datetimes are int64 nanoseconds, so epoch seconds beyond ~2262-04-11 cannot be represented."""
OUT_OF_RANGE = "epoch seconds out of range"
_INT_TEXT = r"[+-]?\d{1,18}(?:\.0*)?"
_NUMBER_TEXT = r"[+-]?(?:\d+\.?\d*|\.\d+)"
_AWARE_TEXT = r".*(?:[zZ]|[+-]\d\d:?\d\d)"
_FLOAT_TEXT = r"(?i)[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|nan|inf|infinity)"


@dataclass
class Typed:
    """Result of typing one chunk.

    Attributes:
        frame: The accepted rows, schema columns only, contract dtypes, original index.
        rejected: Boolean mask over the input rows.
        reasons: One reason per rejected row, in input order.
    """

    frame: pd.DataFrame
    rejected: np.ndarray
    reasons: list[str]


def arrow_schema(schema: TableSchema, extra: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The Arrow schema of a typed table (plus ``extra`` columns such as ``source_line``)."""
    fields = [pa.field(c.name, ARROW_TYPES[c.dtype]) for c in schema.columns]
    fields += [pa.field(name, t) for name, t in (extra or {}).items()]
    return pa.schema(fields)


def empty_frame(schema: TableSchema) -> pd.DataFrame:
    """A zero-row DataFrame with the schema's columns and dtypes."""
    return pd.DataFrame({c.name: pd.Series(dtype=PANDAS_DTYPES[c.dtype]) for c in schema.columns})


def conform(df: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Select the schema columns of an already-typed frame and cast them to contract dtypes.

    Raises:
        ValueError: naming the missing columns if ``df`` lacks any schema column.
    """
    missing = [n for n in schema.names if n not in df.columns]
    if missing:
        raise ValueError(f"{schema.name} frame lacks column(s) {missing}; has {list(df.columns)}")
    out = df[schema.names].copy()
    for c in schema.columns:
        if c.dtype == "timestamp":
            ts = out[c.name]
            if not isinstance(ts.dtype, pd.DatetimeTZDtype):
                ts = pd.to_datetime(ts, utc=True)
            out[c.name] = ts.dt.tz_convert("UTC").astype(PANDAS_DTYPES["timestamp"])
        else:
            out[c.name] = out[c.name].astype(final_dtype(c))
    return out


def _text(s: pd.Series) -> pd.Series:
    """Values as stripped text; empty text counts as null (how CSV writes a missing value).

    Arrow-backed strings make the regex checks below run in C++ (RE2) instead of per value.
    """
    t = s.astype("string[pyarrow]").str.strip()
    return t.mask(t == "")


def _matches(t: pd.Series, pattern: str) -> pd.Series:
    return t.str.fullmatch(pattern).fillna(False).astype(bool)


def _parse(text: pd.Series, arrow_type: pa.DataType, dtype: str) -> pd.Series:
    """Pre-validated number text (nulls allowed) to numbers.

    Arrow's C++ cast is ~10x faster than ``pd.to_numeric`` on text; the callers have already
    matched every non-null value against a number pattern, and the pandas path remains for
    the rare spelling Arrow refuses (``+7``, ``5.``).
    """
    try:
        parsed = pc.cast(pa.array(text.astype("string[pyarrow]")), arrow_type)
        return pd.Series(parsed.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get),
                         index=text.index).astype(dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(text, errors="coerce").astype(dtype)


_Cast = tuple[pd.Series, np.ndarray, str | np.ndarray]
"""Typed values (null where bad or missing), the bad mask, and what is wrong (per row or one)."""


def _none(s: pd.Series) -> np.ndarray:
    return np.zeros(len(s), dtype=bool)


def _int64(s: pd.Series) -> _Cast:
    what = "not an integer"
    if pdt.is_bool_dtype(s):
        return pd.Series(pd.NA, index=s.index, dtype="Int64"), s.notna().to_numpy(), what
    if pdt.is_integer_dtype(s):
        return s.astype("Int64"), _none(s), what
    if pdt.is_float_dtype(s):
        ok = np.isfinite(s) & (s.abs() < 2**63) & (s == np.floor(s))
        return s.where(ok).astype("Int64"), (s.notna() & ~ok).to_numpy(), what
    t = _text(s)
    ok = _matches(t, _INT_TEXT)
    digits = t.where(ok).str.replace(r"\.0*$", "", regex=True)
    return _parse(digits, pa.int64(), "Int64"), (t.notna() & ~ok).to_numpy(), what


def _float64(s: pd.Series) -> _Cast:
    what = "not a number"
    if pdt.is_bool_dtype(s):
        return pd.Series(np.nan, index=s.index), s.notna().to_numpy(), what
    if pdt.is_numeric_dtype(s):
        return s.astype("float64"), _none(s), what
    t = _text(s)
    ok = _matches(t, _FLOAT_TEXT)
    values = _parse(t.where(ok), pa.float64(), "float64")
    return values, (t.notna() & ~ok).to_numpy(), what


_UNIT_HINTS = ((1e17, "nanoseconds"), (1e14, "microseconds"), (1e11, "milliseconds"))
"""Magnitude from which an out-of-range epoch value is named as a likely finer unit."""


def _epoch(seconds: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Epoch seconds to UTC timestamps.

    Returns the timestamps, the mask of values too large for int64 nanoseconds, and what is
    wrong with each of them: a value of 1e11 or more is named as the finer unit it most likely
    is (``1700000000000`` is milliseconds of 2023, not seconds of year 55840), so the operator
    can fix the export instead of guessing.
    """
    values = seconds.astype("float64") if pdt.is_numeric_dtype(seconds) \
        else _parse(seconds, pa.float64(), "float64")
    ok = values.abs() <= MAX_EPOCH_SECONDS  # False for NaN
    ts = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if ok.any():
        # Only finite in-range values reach pandas: its unit cast of a NaN-holding array reads
        # the NaN slots through an int64 cast whose result is undefined, and under numpy's
        # over="raise" that garbage intermittently raised FloatingPointError in CI.
        ts[ok] = pd.to_datetime(values[ok], unit="s", utc=True)
    magnitude = values.abs().to_numpy()
    what = np.full(len(values), OUT_OF_RANGE, dtype=object)
    for threshold, unit in reversed(_UNIT_HINTS):
        what[magnitude >= threshold] = f"{OUT_OF_RANGE} (looks like {unit})"
    return ts, (values.notna() & ~ok).to_numpy(), what


def _timestamp(s: pd.Series) -> _Cast:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC"), _none(s), ""
    if pdt.is_datetime64_dtype(s):  # naive: the contract says UTC
        return s.dt.tz_localize("UTC"), _none(s), ""
    if pdt.is_bool_dtype(s):
        nat = pd.Series(pd.NaT, index=s.index, dtype=PANDAS_DTYPES["timestamp"])
        return nat, s.notna().to_numpy(), "unparseable timestamp"
    if pdt.is_numeric_dtype(s):
        return _epoch(s)
    t = _text(s)
    numeric = _matches(t, _NUMBER_TEXT)
    # Parse explicit-offset and naive strings apart: pandas 2.3 gives a naive value in a mixed
    # column the offset of its neighbour instead of UTC.
    aware = _matches(t, _AWARE_TEXT) & ~numeric
    naive = ~aware & ~numeric
    with_offset = pd.to_datetime(t.where(aware), format="ISO8601", utc=True, errors="coerce")
    utc = pd.to_datetime(t.where(naive), format="ISO8601", errors="coerce").dt.tz_localize("UTC")
    epoch, out_of_range, epoch_what = _epoch(t.where(numeric))
    ts = with_offset.where(aware, utc).where(~numeric, epoch)
    bad = (t.notna() & ts.isna()).to_numpy()
    what = np.where(out_of_range, epoch_what, "unparseable timestamp")
    return ts, bad, what


def _string(s: pd.Series) -> _Cast:
    try:  # fast path (Arrow kernels) for the usual column of str/None
        arr = pa.array(s, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed objects, e.g. JSON numbers
        t = s.astype("string")
        return t.mask(t.str.strip() == ""), _none(s), ""
    blank = pc.equal(pc.utf8_trim_whitespace(arr), "")
    arr = pc.if_else(blank, pa.scalar(None, pa.string()), arr)
    return pd.Series(pd.StringDtype().__from_arrow__(arr), index=s.index), _none(s), ""


_CASTS = {"int64": _int64, "float64": _float64, "timestamp": _timestamp, "string": _string}


class _Reasons:
    """Reasons of rejected rows, several per row joined with ``; ``."""

    def __init__(self, n: int) -> None:
        self.text = np.full(n, None, dtype=object)
        self.rejected = np.zeros(n, dtype=bool)

    def add(self, mask: np.ndarray, messages: list[str]) -> None:
        for i, msg in zip(np.flatnonzero(mask), messages, strict=True):
            self.text[i] = msg if self.text[i] is None else f"{self.text[i]}; {msg}"
        self.rejected |= mask


def _quoted(name: str, what: str | np.ndarray, raw: pd.Series, mask: np.ndarray) -> list[str]:
    """``column: problem: 'value'``, quoting each value exactly as it arrived."""
    whats = what[mask] if isinstance(what, np.ndarray) else [what] * int(mask.sum())
    return [f"{name}: {w}: {v!r}" for w, v in zip(whats, raw[mask].tolist(), strict=True)]


def _checked_min(column: Column, check_min: str) -> bool:
    if column.min_value is None or column.dtype not in ("int64", "float64"):
        return False
    return check_min == "all" or (check_min == "ids" and column.dtype == "int64")


def final_dtype(column: Column) -> str:
    """The pandas dtype of a typed column (an optional integer column stays nullable)."""
    if column.dtype == "int64" and not column.required:
        return "Int64"
    return PANDAS_DTYPES[column.dtype]


def type_frame(raw: pd.DataFrame, schema: TableSchema, check_min: str = "ids") -> Typed:
    """Cast ``raw`` to ``schema``; reject rows that cannot be typed, with a reason each.

    Args:
        raw: Rows as read (any dtypes, extra columns ignored).
        schema: The contract table.
        check_min: Which ``min_value`` bounds are structural here: ``"ids"`` (int64 columns:
            negative ids; event batches leave the rest to validation) or ``"all"`` (tables,
            which have no later validation stage).
    """
    n = len(raw)
    missing = [c.name for c in schema.columns if c.required and c.name not in raw.columns]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        reason = f"missing required column{'s' if len(missing) > 1 else ''} {names}"
        return Typed(empty_frame(schema), np.ones(n, bool), [reason] * n)
    reasons = _Reasons(n)
    out: dict[str, pd.Series] = {}
    for c in schema.columns:
        if c.name not in raw.columns:  # optional column absent from this file: all null
            out[c.name] = pd.Series(index=raw.index, dtype=final_dtype(c))
            continue
        s = raw[c.name]
        values, bad, what = _CASTS[c.dtype](s)
        values.index = raw.index
        if bad.any():
            reasons.add(bad, _quoted(c.name, what, s, bad))
        null = values.isna().to_numpy() & ~bad
        if c.required and null.any():
            reasons.add(null, [f"{c.name}: missing value"] * int(null.sum()))
        if _checked_min(c, check_min):
            low = (values < c.min_value).fillna(False).to_numpy(dtype=bool) & ~bad & ~null
            if low.any():
                what = "negative value" if c.min_value == 0 else f"below minimum {c.min_value:g}"
                reasons.add(low, _quoted(c.name, what, s, low))
        out[c.name] = values
    good = pd.DataFrame(out, index=raw.index)[~reasons.rejected]
    frame = good.astype({c.name: final_dtype(c) for c in schema.columns})
    return Typed(frame, reasons.rejected, reasons.text[reasons.rejected].tolist())
