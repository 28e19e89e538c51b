"""Commit a validated batch into the date-partitioned event store, in bounded memory.

Deduplication by ``event_id`` has two scopes, both counted as ``duplicates`` (never
quarantined: a re-delivered event is not an error, and the first copy is kept):

* *within the batch*, across all files and days: 64-bit hashes of every id (8 bytes a row)
  find candidate repeats, and only the candidates' ids are compared exactly, so a hash
  collision can never drop an event;
* *against the store*: the ``event_id`` column of the partitions the batch touches, except the
  batch's own files, so a retried commit rewrites the same rows (idempotent) and the same
  events ingested under another batch id store nothing.

Rows are spilled per UTC day to ``staging/.<batch_id>.days/`` and each day is then written as
``events/event_date=YYYY-MM-DD/batch-<batch_id>.parquet``, sorted by time; memory is bounded by
the rows of one chunk and of the largest single day of the batch.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shoprec.contract import EVENT_SCHEMA
from shoprec.ingest_store import EVENT_TS, PARTITION_PREFIX, atomic_parquet, partition_dir
from shoprec.ingest_typing import arrow_schema, conform
from shoprec.quarantine import ledger_path, update_ledger
from shoprec.settings import Settings

KEY = EVENT_SCHEMA.key
READ_ROWS = 500_000
"""Rows read from the validated file at a time."""


@dataclass
class CommitReport:
    """What :func:`commit_batch` did with one batch.

    Attributes:
        duplicates: ``in_batch + in_store``: rows not stored because their ``event_id`` was
            seen earlier in this batch or is already in the store.
    """

    batch_id: str
    rows: int
    stored: int
    duplicates: int
    partitions: list[str] = field(default_factory=list)
    in_batch: int = 0
    in_store: int = 0

    def __str__(self) -> str:
        parts = self.partitions
        where = ("no partition" if not parts else ", ".join(parts) if len(parts) <= 5
                 else f"{len(parts)} partitions {parts[0]} .. {parts[-1]}")
        return (f"batch {self.batch_id}: committed {self.rows} rows: stored {self.stored}, "
                f"duplicates {self.duplicates} (repeated within the batch {self.in_batch}, "
                f"already stored {self.in_store}) → {where}")


def check_conservation(settings: Settings, batch_id: str, rows: int, whole_stage: bool) -> None:
    """Refuse a commit whose row count does not match the ledger, before writing anything."""
    path = ledger_path(settings, batch_id)
    if not path.exists():
        return
    record = json.loads(path.read_text())
    counts = {k: int(record[k]) for k in ("read", "quarantined_ingest", "quarantined_validation")
              if k in record}
    if whole_stage and "quarantined_validation" not in counts:
        counts["quarantined_validation"] = 0
        update_ledger(settings, batch_id, quarantined_validation=0)
    if len(counts) == 3:
        expected = counts["read"] - counts["quarantined_ingest"] - counts["quarantined_validation"]
        if rows != expected:
            raise RuntimeError(
                f"batch {batch_id}: asked to commit {rows} rows but the ledger expects {expected} "
                f"(read {counts['read']} - quarantined at ingest {counts['quarantined_ingest']} - "
                f"at validation {counts['quarantined_validation']}); commit the validated rows "
                "(validate_batch(...).valid), not the whole staged file")


def _ids(path: Path) -> pa.RecordBatchReader:
    return pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=[KEY])


def repeated_positions(path: Path) -> np.ndarray:
    """Row positions whose ``event_id`` occurred earlier in the file (exact, sorted)."""
    hashes = [pd.util.hash_array(b.column(0).to_numpy(zero_copy_only=False)) for b in _ids(path)]
    if not hashes:
        return np.zeros(0, dtype=np.int64)
    h = np.concatenate(hashes)
    order = np.argsort(h, kind="stable")
    same = h[order][1:] == h[order][:-1]
    candidates = np.unique(np.concatenate([order[1:][same], order[:-1][same]]))
    if not len(candidates):
        return np.zeros(0, dtype=np.int64)
    found: list[pd.Series] = []
    offset = 0
    for batch in _ids(path):  # exact comparison of the few candidates only
        local = candidates[(candidates >= offset) & (candidates < offset + batch.num_rows)]
        if len(local):
            values = batch.column(0).take(pa.array(local - offset)).to_pylist()
            found.append(pd.Series(values, index=local))
        offset += batch.num_rows
    ids = pd.concat(found)
    return ids.index[ids.duplicated(keep="first").to_numpy()].to_numpy(dtype=np.int64)


def _days(ts: np.ndarray) -> np.ndarray:
    """UTC calendar day of each timestamp (``datetime64``, UTC) as ``YYYY-MM-DD``."""
    days = ts.astype("datetime64[ns]").astype("datetime64[D]")
    unique, inverse = np.unique(days, return_inverse=True)
    return np.datetime_as_string(unique, unit="D")[inverse]


def _spill(path: Path, spill: Path, skip: np.ndarray) -> list[str]:
    """Write the rows of ``path`` (minus positions ``skip``) to ``spill/<day>/<n>.parquet``."""
    schema = arrow_schema(EVENT_SCHEMA)
    days_seen: set[str] = set()
    offset = 0
    reader = pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=EVENT_SCHEMA.names)
    for n, batch in enumerate(reader):
        table = pa.Table.from_batches([batch]).cast(schema)
        keep = np.ones(table.num_rows, dtype=bool)
        local = skip[(skip >= offset) & (skip < offset + table.num_rows)] - offset
        keep[local] = False
        offset += table.num_rows
        days = _days(table.column(EVENT_TS).to_numpy())
        for day in np.unique(days[keep]):
            part = table.filter(pa.array(keep & (days == day)))
            target = spill / str(day) / f"{n:06d}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, target)
            days_seen.add(str(day))
    return sorted(days_seen)


def stored_id_array(settings: Settings, day: str, own: str) -> pa.Array:
    """``event_id`` of a day partition's files except the file named ``own``."""
    files = [f for f in sorted(partition_dir(settings, day).glob("*.parquet")) if f.name != own]
    if not files:
        return pa.array([], pa.string())
    return pa.concat_arrays([pq.read_table(f, columns=[KEY])[KEY].combine_chunks()
                             for f in files])


def commit_batch(settings: Settings, batch_id: str, df: pd.DataFrame | None = None, *,
                 path: Path | None = None) -> CommitReport:
    """Deduplicate a validated batch by ``event_id`` and write it into date partitions.

    Args:
        settings: Locations.
        batch_id: The batch; names the files written.
        df: The validated rows in memory (``validate_batch(...).valid``).
        path: Or a Parquet file of validated rows (``validate_staged(...).valid_path``),
            read in chunks. Without ``df`` and ``path``: the whole staged file.

    Raises:
        FileNotFoundError: if neither is given and the batch was never staged.
        RuntimeError: if the row count contradicts the batch's ledger.
    """
    staging = settings.staging_dir
    whole_stage = df is None and path is None
    tmp = staging / f".{batch_id}.commit.parquet"
    if df is not None:
        staging.mkdir(parents=True, exist_ok=True)
        events = conform(df, EVENT_SCHEMA)
        pq.write_table(pa.Table.from_pandas(events, arrow_schema(EVENT_SCHEMA),
                                            preserve_index=False), tmp)
        path = tmp
    elif path is None:
        path = staging / f"{batch_id}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"batch {batch_id!r} is not staged ({path} does not exist); "
                                    "run stage_files first")
    rows = pq.ParquetFile(path).metadata.num_rows
    spill = staging / f".{batch_id}.days"
    try:
        check_conservation(settings, batch_id, rows, whole_stage)
        repeated = repeated_positions(path)
        shutil.rmtree(spill, ignore_errors=True)
        days = _spill(path, spill, repeated)
        report = _write_days(settings, batch_id, spill, days)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
        tmp.unlink(missing_ok=True)
    report.rows, report.in_batch = rows, len(repeated)
    report.in_store = rows - len(repeated) - report.stored
    report.duplicates = rows - report.stored
    update_ledger(settings, batch_id, duplicates=report.duplicates, stored=report.stored,
                  duplicates_in_batch=report.in_batch, duplicates_in_store=report.in_store,
                  partitions=report.partitions,
                  committed_at=pd.Timestamp.now(tz="UTC").isoformat())
    return report


def _write_days(settings: Settings, batch_id: str, spill: Path, days: list[str]
                ) -> CommitReport:
    own = f"batch-{batch_id}.parquet"
    written: list[str] = []
    stored = 0
    for day in days:
        table = pa.concat_tables([pq.read_table(f) for f in sorted((spill / day).glob("*"))])
        known = stored_id_array(settings, day, own)
        if len(known):
            table = table.filter(pc.invert(pc.is_in(table.column(KEY), value_set=known)))
        target = partition_dir(settings, day) / own
        if table.num_rows:
            order = pc.sort_indices(table, sort_keys=[(EVENT_TS, "ascending")])
            atomic_parquet(table.take(order), target)
            written.append(day)
            stored += table.num_rows
        else:
            target.unlink(missing_ok=True)
    for stale in settings.events_dir.glob(f"{PARTITION_PREFIX}*/{own}"):
        if stale.parent.name.removeprefix(PARTITION_PREFIX) not in written:
            stale.unlink()  # a retry with different rows must not leave old files behind
    return CommitReport(batch_id, 0, stored, 0, written)
