"""Staged-batch frames for the validation gate tests, built from the contract (no column typed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, Column, TableSchema
from shoprec.settings import Settings

NOW = pd.Timestamp("2025-03-01 12:00", tz="UTC")
"""Fixed clock of every test: the sane window is [2015-03-04 12:00, 2025-03-01 12:10]."""

N_ITEMS = 10
"""Clean rows use item keys 0..N_ITEMS-1, all present in the items table of :func:`write_items`."""


def _pick(pred) -> Column:
    return next(c for c in EVENT_SCHEMA.columns if pred(c))


ENUM = _pick(lambda c: c.allowed is not None and c.required)  # the funnel step
OPTIONAL_ENUM = _pick(lambda c: c.allowed is not None and not c.required)  # the client
WEIGHT = _pick(lambda c: c.dtype == "float64" and c.min_value is not None)  # signal weight
TS = _pick(lambda c: c.dtype == "timestamp")  # event time
ITEM_KEY = _pick(lambda c: c.name == ITEM_SCHEMA.key)  # foreign key into the catalogue
KEY = EVENT_SCHEMA.column(EVENT_SCHEMA.key)


def _values(col: Column, n: int, now: pd.Timestamp, unit: str) -> pd.Series | np.ndarray:
    i = np.arange(n)
    if col.dtype == "int64":
        return (i % N_ITEMS).astype("int64") if col is ITEM_KEY else i.astype("int64")
    if col.dtype == "float64":
        return 1.0 + (i % 3).astype("float64")
    if col.dtype == "timestamp":
        ts = pd.Series(now - pd.to_timedelta(i + 1, unit="min"))
        return ts.astype(f"datetime64[{unit}, UTC]")
    if col.allowed is not None:
        vals = [col.allowed[k % len(col.allowed)] for k in i]
        if not col.required:  # every fourth row without a value: nulls are allowed here
            vals = [None if k % 4 == 3 else v for k, v in zip(i, vals, strict=True)]
        return pd.array(vals, dtype="string")
    if col.required:
        return pd.array([f"{col.name}-{k}" for k in i], dtype="string")
    return pd.array([None if k % 2 else f"{col.name}-{k}" for k in i], dtype="string")


def clean_events(n: int, now: pd.Timestamp = NOW, unit: str = "ns",
                 schema: TableSchema = EVENT_SCHEMA) -> pd.DataFrame:
    """``n`` valid staged rows (contract columns + ingest's ``source_file``/``source_line``)."""
    df = pd.DataFrame({c.name: _values(c, n, now, unit) for c in schema.columns})
    df["source_file"] = pd.array(["events-1.csv"] * n, dtype="string")
    df["source_line"] = np.arange(2, n + 2, dtype="int64")
    return df


def write_items(settings: Settings, n: int = N_ITEMS) -> None:
    """An items table whose keys are ``0..n-1`` at ``tables/items.parquet``."""
    cols = {}
    for c in ITEM_SCHEMA.columns:
        if c.dtype == "int64":
            cols[c.name] = np.arange(n, dtype="int64")
        elif c.dtype == "float64":
            cols[c.name] = np.full(n, 9.99)
        else:
            cols[c.name] = pd.Series([NOW - pd.Timedelta(days=30)] * n)
    settings.tables_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(cols).to_parquet(settings.tables_dir / f"{ITEM_SCHEMA.name}.parquet")


# ---------------------------------------------------------------- tiny source files for tests
RUN_NOW = pd.Timestamp("2026-11-01T00:00:00Z")
"""Clock of the source tests: ten-year window [2016-11-03, 2026-11-01 00:10] for ``events``."""
TB_T0 = 1_511_544_070
"""2017-11-24T17:21:10Z: a Taobao UserBehavior-era timestamp (Unix seconds)."""


def event_row(n: int, **over: object) -> dict[str, object]:
    """A valid raw contract event of 2026-10-01; ``over`` replaces fields (``None`` = empty)."""
    base = {"event_id": f"e{n}", "user_id": str(n), "item_id": str(100 + n),
            "event_type": "click", "event_ts": f"2026-10-01T10:00:{n % 60:02d}Z",
            "session_id": "s1", "device": "web", "strength": "1.0"}
    base.update(over)
    return base


def write_events_csv(path, rows: list[dict], columns: list[str] | None = None,
                     delimiter: str = ","):
    """Contract-named CSV (gzip when the name ends in ``.gz``)."""
    import csv
    import gzip

    columns = columns or EVENT_SCHEMA.names
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r[c] for c in columns])
    return path


def tb_line(user: int, item: int, behavior: str = "pv", ts: int | str | None = None,
            category: int | str | None = None) -> str:
    """One UserBehavior line: ``user,item,category,behavior,timestamp``."""
    ts = TB_T0 + user * 60 + item if ts is None else ts
    category = 1000 + item % 7 if category is None else category
    return f"{user},{item},{category},{behavior},{ts}"


def write_lines(path, lines: list[str], end: str = "\n"):
    """Text lines (gzip when the name ends in ``.gz``); ``end`` closes the last line."""
    import gzip

    data = ("\n".join(lines) + end).encode() if lines else b""
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path
