"""Ingestion: stage raw event files, commit validated batches, read the event store.

A batch moves through three steps, each idempotent under its ``batch_id``:

1. :func:`stage_files` parses and types the files (:mod:`shoprec.ingest_readers`,
   :mod:`shoprec.ingest_typing`). Rows that cannot be typed go to the quarantine with a reason;
   the rest are written to ``staging/<batch_id>.parquet`` with ``source_file``/``source_line`` so
   a later rejection still points at the origin.
2. Validation (``validation.gate``, another stage) checks the staged rows semantically.
3. :func:`commit_batch` deduplicates by ``event_id`` (within the batch and against the store)
   and writes ``events/event_date=YYYY-MM-DD/batch-<batch_id>.parquet``.

The per-batch ledger (:mod:`shoprec.quarantine`) proves that every row read was stored, found to
be a duplicate or quarantined.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprec.contract import EVENT_SCHEMA
from shoprec.ingest_readers import RawChunk, file_format, is_empty, read_chunks
from shoprec.ingest_store import (
    EVENT_TS,
    PARTITION_PREFIX,
    atomic_parquet,
    partition_dir,
    read_events,
    stored_ids,
)
from shoprec.ingest_tables import ingest_tables
from shoprec.ingest_typing import (
    Typed,
    arrow_schema,
    conform,
    type_frame,
)
from shoprec.quarantine import ledger_path, update_ledger, write_quarantine
from shoprec.settings import Settings

__all__ = ["CommitReport", "StageReport", "commit_batch", "ingest_tables", "read_events",
           "stage_files"]

SOURCE_COLUMNS = {"source_file": pa.string(), "source_line": pa.int64()}
"""Provenance columns of staged rows (and of quarantined ones)."""
_BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_batch_id(batch_id: str) -> None:
    """Batch ids become file names: refuse anything that could escape or hide a file."""
    if not _BATCH_ID.fullmatch(batch_id or ""):
        raise ValueError(f"invalid batch id {batch_id!r}: use letters, digits, '.', '_' and "
                         "'-', starting with a letter or digit")


@dataclass
class StageReport:
    """What :func:`stage_files` did with one batch."""

    batch_id: str
    files: int
    read: int
    staged: int
    quarantined: int
    path: Path
    quarantine: Path | None = None
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"batch {self.batch_id}: {self.files} file(s), read {self.read} rows, staged "
                f"{self.staged}, quarantined {self.quarantined} → {self.path}")
        if self.quarantine:
            text += f" (rejected rows: {self.quarantine})"
        return "\n".join([text, *(f"  note: {n}" for n in self.notes)])


@dataclass
class CommitReport:
    """What :func:`commit_batch` did with one batch."""

    batch_id: str
    rows: int
    stored: int
    duplicates: int
    partitions: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = ", ".join(self.partitions) if self.partitions else "no partition"
        return (f"batch {self.batch_id}: committed {self.rows} rows: stored {self.stored}, "
                f"duplicates {self.duplicates} → {where}")


def _quarantine_rows(chunk: RawChunk, typed: Typed, source: str
                     ) -> tuple[list[pd.DataFrame], list[str]]:
    """Rejected and malformed rows of a chunk with provenance, as raw values."""
    frames, reasons = [], []
    if typed.rejected.any():
        rows = chunk.frame[typed.rejected].astype("string")
        frames.append(rows.assign(source_file=source, source_line=chunk.lines[typed.rejected]))
        reasons += typed.reasons
    if len(chunk.malformed):
        frames.append(chunk.malformed.assign(source_file=source,
                                             source_line=chunk.malformed_lines))
        reasons += chunk.malformed_reasons
    return frames, reasons


def stage_files(paths: list[Path], settings: Settings, batch_id: str,
                chunk_rows: int = 200_000) -> StageReport:
    """Parse, type and stage event files as one batch; quarantine what cannot be typed.

    Structural checks only (a value that cannot be typed, a null in a required column, a negative
    id, a missing required column): semantic rules belong to validation. Re-running a batch id
    replaces its staged file, its ingest quarantine and its ledger.

    Args:
        paths: Event files (``.parquet``, ``.csv``, ``.csv.gz``, ``.jsonl``, ``.jsonl.gz``).
        settings: Locations.
        batch_id: Name of the batch (file-name safe).
        chunk_rows: Rows per chunk for Parquet/JSONL (CSV is chunked by bytes); bounds memory.

    Raises:
        ValueError: for an invalid batch id, an unsupported file type or an undecodable file
            (nothing is staged then: the previous staged file, if any, is kept).
        FileNotFoundError: naming a path that does not exist.
    """
    _check_batch_id(batch_id)
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such event file(s): {', '.join(missing)}")
    for p in paths:
        file_format(p)  # an unsupported file fails the batch before anything is read
    target = settings.staging_dir / f"{batch_id}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    schema = arrow_schema(EVENT_SCHEMA, SOURCE_COLUMNS)
    read = staged = 0
    rejected: list[pd.DataFrame] = []
    reasons: list[str] = []
    notes: list[str] = []
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for path in paths:
                source, rows_before = str(path), read
                for chunk in read_chunks(path, chunk_rows):
                    typed = type_frame(chunk.frame, EVENT_SCHEMA)
                    good = typed.frame.assign(source_file=source,
                                              source_line=chunk.lines[~typed.rejected])
                    writer.write_table(pa.Table.from_pandas(good, schema, preserve_index=False))
                    frames, why = _quarantine_rows(chunk, typed, source)
                    rejected += frames
                    reasons += why
                    read += chunk.rows
                    staged += len(good)
                if read == rows_before:
                    notes.append(f"{path.name}: {'empty file' if is_empty(path) else 'no rows'}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(target)
    quarantine = write_quarantine(settings, batch_id, "ingest",
                                  pd.concat(rejected, ignore_index=True) if rejected
                                  else pd.DataFrame(), reasons)
    ledger_path(settings, batch_id).unlink(missing_ok=True)  # a re-stage starts a fresh record
    update_ledger(settings, batch_id, read=read, quarantined_ingest=len(reasons), staged=staged,
                  files=[str(p) for p in paths])
    return StageReport(batch_id, len(paths), read, staged, len(reasons), target, quarantine, notes)


def _event_days(ts: pd.Series) -> np.ndarray:
    """UTC calendar day of each timestamp as ``YYYY-MM-DD`` (vectorised via day numbers)."""
    days = ts.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    unique, inverse = np.unique(days, return_inverse=True)
    return np.datetime_as_string(unique, unit="D")[inverse]


def _check_conservation(settings: Settings, batch_id: str, rows: int, whole_stage: bool) -> None:
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


def commit_batch(settings: Settings, batch_id: str, df: pd.DataFrame | None = None
                 ) -> CommitReport:
    """Deduplicate a validated batch by ``event_id`` and write it into date partitions.

    Only the ``event_id`` column of the partitions the batch touches is read, and this batch's
    own files are ignored, so retrying a commit stores the same rows again (idempotent) while
    re-ingesting the same events under a new batch id stores nothing new.

    Args:
        settings: Locations.
        batch_id: The batch; names the files written.
        df: The validated rows (``validate_batch(...).valid``); default: the whole staged file.

    Raises:
        FileNotFoundError: if ``df`` is not given and the batch was never staged.
        RuntimeError: if the row count contradicts the batch's ledger.
    """
    _check_batch_id(batch_id)
    staged = settings.staging_dir / f"{batch_id}.parquet"
    if df is None and not staged.exists():
        raise FileNotFoundError(f"batch {batch_id!r} is not staged ({staged} does not exist); "
                                "run stage_files first")
    whole_stage = df is None
    events = conform(pd.read_parquet(staged) if df is None else df, EVENT_SCHEMA)
    _check_conservation(settings, batch_id, len(events), whole_stage)
    own = f"batch-{batch_id}.parquet"
    days = _event_days(events[EVENT_TS])
    keep = ~events[EVENT_SCHEMA.key].duplicated(keep="first").to_numpy()
    schema = arrow_schema(EVENT_SCHEMA)
    written: list[str] = []
    for day in np.unique(days):
        in_day = days == day
        ids = events[EVENT_SCHEMA.key].to_numpy()[in_day]
        keep[in_day] &= ~pd.Index(ids).isin(stored_ids(settings, day, own))
        part = events[in_day & keep].sort_values(EVENT_TS, kind="stable")
        target = partition_dir(settings, day) / own
        if len(part):
            atomic_parquet(pa.Table.from_pandas(part, schema, preserve_index=False), target)
            written.append(str(day))
        else:
            target.unlink(missing_ok=True)
    for stale in settings.events_dir.glob(f"{PARTITION_PREFIX}*/{own}"):
        if stale.parent.name.removeprefix(PARTITION_PREFIX) not in written:
            stale.unlink()  # a retry with different rows must not leave old files behind
    stored = int(keep.sum())
    update_ledger(settings, batch_id, duplicates=len(events) - stored, stored=stored,
                  partitions=written)
    return CommitReport(batch_id, len(events), stored, len(events) - stored, written)
