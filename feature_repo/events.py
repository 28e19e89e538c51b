"""Reading the committed event store and the catalogue tables for the features stage.

The features stage reads Parquet directly (pyarrow dataset over the ``event_date=...``
partitions) rather than through ingestion code: it only needs a few typed columns, and an
explicit schema derived from :data:`shoprec.contract.EVENT_SCHEMA` makes batches written with
slightly different physical types (``timestamp[us]`` vs ``[ns]``, an all-null ``session_id``)
read as one table.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA, TableSchema
from shoprec.settings import Settings
from shoprec.utc import as_utc

EVENT_TS = EVENT_SCHEMA.column("event_ts").name
EVENT_TYPE = EVENT_SCHEMA.column("event_type").name
SESSION = EVENT_SCHEMA.column("session_id").name
_ARROW = {"string": "string", "int64": "int64", "float64": "float64"}


def _arrow_type(dtype: str):
    import pyarrow as pa

    if dtype == "timestamp":
        return pa.timestamp("ns", tz="UTC")
    return getattr(pa, _ARROW[dtype])()


def read_events(settings: Settings, columns: list[str],
                until: pd.Timestamp | None = None) -> pd.DataFrame:
    """Committed events (all partitions), restricted to ``columns`` of the event schema.

    Timestamps come back as ``datetime64[ns, UTC]``, the type Feast compares snapshot
    timestamps with.

    Args:
        settings: Locations.
        columns: Event-schema columns to read.
        until: Only events strictly before this instant (partitions from its date on are not
            even opened). A run for a data interval passes the interval end, so re-running an
            old interval after newer data arrived rebuilds exactly what it built before.

    Raises:
        FileNotFoundError: if no batch has been committed yet (nothing to build from).
        KeyError: if a requested column is not part of the event schema.
        ValueError: if a stored column cannot be read as its event-schema type.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = sorted(settings.events_dir.glob("event_date=*/*.parquet"))
    if until is not None:
        until = as_utc(until)
        last_day = (until - pd.Timedelta(1, "ns")).strftime("%Y-%m-%d")
        files = [f for f in files if f.parent.name.split("=", 1)[1] <= last_day]
    if not files:
        raise FileNotFoundError(f"no committed events under {settings.events_dir} "
                                "(expected event_date=YYYY-MM-DD/*.parquet); ingest first")
    schema = pa.schema([(c, _arrow_type(EVENT_SCHEMA.column(c).dtype)) for c in columns])
    try:
        table = ds.dataset([str(f) for f in files], format="parquet", schema=schema).to_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        raise ValueError(f"committed events under {settings.events_dir} do not match the event "
                         f"schema types {schema}: {err}") from err
    df = table.to_pandas()
    if EVENT_TS in df:
        df[EVENT_TS] = df[EVENT_TS].astype("datetime64[ns, UTC]")
    if until is not None:
        if EVENT_TS not in df:
            raise KeyError(f"reading events until {until} needs the {EVENT_TS!r} column")
        df = df[df[EVENT_TS] < until].reset_index(drop=True)
    return df


def entity_table(settings: Settings, join_key: str) -> tuple[TableSchema, pd.DataFrame]:
    """The catalogue table (items or users) whose primary key is ``join_key``.

    Raises:
        ValueError: if no table is keyed by ``join_key`` (an Attr/DaysSince recipe on such
            an entity has nothing to read).
        FileNotFoundError: if the table has not been written by ingestion yet.
    """
    schema = next((s for s in (ITEM_SCHEMA, USER_SCHEMA) if s.key == join_key), None)
    if schema is None:
        raise ValueError(f"no catalogue table is keyed by {join_key!r}")
    return schema, read_table(settings, schema)


def read_table(settings: Settings, schema: TableSchema) -> pd.DataFrame:
    """``tables/<name>.parquet`` with timestamps as UTC; clear error if it is missing."""
    path = settings.tables_dir / f"{schema.name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; the features stage needs the "
                                f"{schema.name} table written by ingestion")
    df = pd.read_parquet(path)
    for col in schema.columns:
        if col.dtype == "timestamp" and col.name in df:
            df[col.name] = pd.to_datetime(df[col.name], utc=True).astype("datetime64[ns, UTC]")
    return df


def day_numbers(ts: pd.Series) -> np.ndarray:
    """UTC day index (days since 1970-01-01) of each timestamp."""
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").astype(
        "datetime64[D]").astype(np.int64)


def day_timestamps(days: np.ndarray) -> pd.Series:
    """Midnight UTC of each day index, as ``datetime64[ns, UTC]``."""
    return pd.Series(pd.to_datetime(np.asarray(days, dtype=np.int64), unit="D", utc=True)
                     ).astype("datetime64[ns, UTC]")


def write_atomic(df: pd.DataFrame, path: Path) -> Path:
    """Write Parquet via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
