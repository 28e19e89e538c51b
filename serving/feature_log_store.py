"""Storage layout of the served-feature log: schema, partitions, writing parts and reading.

Kept apart from the buffering logger (:mod:`serving.feature_log`, which re-exports these names)
so the skew check reads the log through the same schema the logger writes. Every type comes from
the contract; a feature added later reads back as null from parts written before it existed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from shoprec.contract import RANKER, Contract, Feature
from shoprec.settings import Settings

REQUEST_ID, TS, DEFAULTED_COL = "request_id", "ts", "defaulted"
ARROW = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
         "timestamp": pa.timestamp("us", tz="UTC")}
"""Arrow type of each contract dtype (request fields may be timestamps; features may not)."""


def log_dir(settings: Settings, service: str = RANKER) -> Path:
    """``logs/features/<service>/``: the root of one service's log partitions."""
    return settings.home / "logs" / "features" / service


def join_keys(contract: Contract, service: str) -> list[str]:
    """The join keys a row of ``service`` carries, in contract entity order."""
    return [e.join_key for e in contract.service_entities(service)]


def request_fields(contract: Contract, service: str) -> list[str]:
    """Request fields (``contract.request_fields``) the service's request-time features read."""
    return [r.name for r in contract.service_request_fields(service)]


def arrow_type(feat: Feature) -> pa.DataType:
    """A feature's column type: its dtype, or a list of its element dtype for a sequence."""
    if feat.dtype not in ARROW or feat.dtype == "timestamp":
        raise ValueError(f"feature {feat.name!r} has dtype {feat.dtype!r}, which cannot be logged")
    base = ARROW[feat.dtype]
    return pa.list_(base) if feat.kind == "sequence" else base


def log_schema(contract: Contract, service: str = RANKER) -> pa.Schema:
    """Arrow schema of the log of ``service``: ids, time, keys, request fields, features."""
    fields = [pa.field(REQUEST_ID, pa.string()), pa.field(TS, ARROW["timestamp"])]
    fields += [pa.field(k, pa.int64()) for k in join_keys(contract, service)]
    fields += [pa.field(r.name, ARROW[r.dtype]) for r in contract.service_request_fields(service)]
    fields.append(pa.field(DEFAULTED_COL, pa.bool_()))
    fields += [pa.field(f.name, arrow_type(f)) for f in contract.service_features(service)]
    return pa.schema(fields)


def write_days(table: pa.Table, settings: Settings, service: str) -> list[Path]:
    """One new part per UTC day of ``table``'s rows."""
    micros = table.column(TS).combine_chunks().cast(pa.int64()).to_numpy()
    days = micros // 86_400_000_000
    written = []
    for day in np.unique(days):
        part = table.filter(pa.array(days == day))
        label = np.datetime64(int(day), "D").astype(str)
        path = log_dir(settings, service) / f"dt={label}" / f"part-{uuid.uuid4().hex}.parquet"
        written.append(write_part(part, path))
    return written


def write_part(table: pa.Table, path: Path) -> Path:
    """Write one part via a hidden temp name and a rename (readers never see half of it)."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: never matched by *.parquet readers
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def read_feature_log(settings: Settings, contract: Contract, start: datetime, end: datetime,
                     service: str = RANKER) -> pd.DataFrame:
    """Logged rows with ``start <= ts < end`` (only the ``dt=`` folders of those days are read).

    Columns of features added to the contract after a part was written come back null, so a
    reader can tell "not logged" from a value.
    """
    import pyarrow.dataset as ds

    schema = log_schema(contract, service)
    first = pd.Timestamp(start).tz_convert(UTC).strftime("%Y-%m-%d")
    last = (pd.Timestamp(end).tz_convert(UTC) - pd.Timedelta(1, "us")).strftime("%Y-%m-%d")
    files = [str(f) for d in sorted(log_dir(settings, service).glob("dt=*"))
             if first <= d.name[3:] <= last for f in sorted(d.glob("*.parquet"))]
    if not files:
        return schema.empty_table().to_pandas()
    lo = pa.scalar(pd.Timestamp(start).tz_convert(UTC), type=schema.field(TS).type)
    hi = pa.scalar(pd.Timestamp(end).tz_convert(UTC), type=schema.field(TS).type)
    table = ds.dataset(files, format="parquet", schema=schema).to_table(
        filter=(ds.field(TS) >= lo) & (ds.field(TS) < hi))
    return table.to_pandas().sort_values([TS, REQUEST_ID], kind="stable", ignore_index=True)
