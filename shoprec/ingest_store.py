"""The committed event store: date partitions of Parquet files, one file per batch and day.

``events/event_date=YYYY-MM-DD/batch-<batch_id>.parquet``: partitioning by the UTC event date
lets readers open only the days they need, and one file per batch lets a retried commit replace
exactly its own rows.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprec.contract import EVENT_SCHEMA
from shoprec.ingest_typing import empty_frame, final_dtype
from shoprec.settings import Settings
from shoprec.utc import as_utc

PARTITION_PREFIX = "event_date="
EVENT_TS = next(c.name for c in EVENT_SCHEMA.columns if c.dtype == "timestamp")
"""The event time column; partitions and time windows are defined on it."""


def atomic_parquet(table: pa.Table, path: Path) -> None:
    """Write via a hidden temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # never matches *.parquet readers
    pq.write_table(table, tmp)
    tmp.replace(path)


def partition_dir(settings: Settings, day: str) -> Path:
    """Folder of the events of UTC day ``day`` (``YYYY-MM-DD``)."""
    return settings.events_dir / f"{PARTITION_PREFIX}{day}"


def stored_ids(settings: Settings, day: str, own: str) -> pd.Index:
    """``event_id`` of a partition's files except the file named ``own``.

    ``own`` is the committing batch's previous attempt, ignored so a retry is idempotent. Only
    the key column is read, whatever the size of the partition.
    """
    key = EVENT_SCHEMA.key
    files = [f for f in sorted(partition_dir(settings, day).glob("*.parquet")) if f.name != own]
    if not files:
        return pd.Index([], dtype=object)
    ids = pa.concat_arrays([pq.read_table(f, columns=[key])[key].combine_chunks() for f in files])
    return pd.Index(ids.to_numpy(zero_copy_only=False))


def read_events(settings: Settings, start: date | str | pd.Timestamp | None = None,
                end: date | str | pd.Timestamp | None = None,
                columns: list[str] | None = None) -> pd.DataFrame:
    """Committed events with ``start <= event_ts < end`` (both optional, UTC when naive).

    Only partitions whose date can hold such events are opened (partition pruning).

    Args:
        settings: Locations.
        start: Inclusive lower bound (a date means its midnight UTC).
        end: Exclusive upper bound.
        columns: Subset of :data:`EVENT_SCHEMA` columns (default all, in schema order).

    Raises:
        ValueError: naming unknown columns.
    """
    wanted = list(EVENT_SCHEMA.names if columns is None else columns)
    unknown = [c for c in wanted if c not in EVENT_SCHEMA.names]
    if unknown:
        raise ValueError(f"unknown event column(s) {unknown}; known: {EVENT_SCHEMA.names}")
    lo = None if start is None else as_utc(start)
    hi = None if end is None else as_utc(end)
    files = []
    for part in sorted(settings.events_dir.glob(f"{PARTITION_PREFIX}*")):
        day = pd.Timestamp(part.name.removeprefix(PARTITION_PREFIX), tz="UTC")
        if (lo is None or day + pd.Timedelta(days=1) > lo) and (hi is None or day < hi):
            files += sorted(part.glob("*.parquet"))
    read_cols = wanted if EVENT_TS in wanted or (lo is None and hi is None) \
        else [*wanted, EVENT_TS]
    if not files:
        return empty_frame(EVENT_SCHEMA)[wanted]
    df = pa.concat_tables([pq.read_table(f, columns=read_cols) for f in files]).to_pandas()
    if lo is not None or hi is not None:
        mask = np.ones(len(df), dtype=bool)
        if lo is not None:
            mask &= (df[EVENT_TS] >= lo).to_numpy()
        if hi is not None:
            mask &= (df[EVENT_TS] < hi).to_numpy()
        df = df[mask].reset_index(drop=True)
    return df[wanted].astype({c: final_dtype(EVENT_SCHEMA.column(c)) for c in wanted})
