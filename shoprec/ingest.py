"""Ingestion: stage raw event files, commit validated batches, read the event store.

A batch moves through three steps, each idempotent under its ``batch_id``:

1. :func:`stage_files` reads the files of one source format through its adapter
   (:mod:`shoprec.sources_base`: ``events``, ``taobao``, ``movielens``, ``amazon-seq``) and
   types them (:mod:`shoprec.ingest_typing`). Rows that cannot be typed go to the quarantine
   with a reason;
   the rest are written to ``staging/<batch_id>.parquet`` with ``source_file``/``source_line`` so
   a later rejection still points at the origin.
2. Validation (``validation.gate``, another stage) checks the staged rows semantically.
3. :func:`commit_batch` (:mod:`shoprec.ingest_commit`) deduplicates by ``event_id`` (within
   the batch and against the store) and writes
   ``events/event_date=YYYY-MM-DD/batch-<batch_id>.parquet``.

Every step streams in chunks, so a 10-million-row file is staged, validated and committed in
bounded memory.

The per-batch ledger (:mod:`shoprec.quarantine`) proves that every row read was stored, found to
be a duplicate or quarantined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprec.contract import EVENT_SCHEMA
from shoprec.ingest_commit import CommitReport, commit_batch
from shoprec.ingest_quarantine import QuarantineSink
from shoprec.ingest_readers import RawChunk, file_format, is_empty
from shoprec.ingest_store import read_events
from shoprec.ingest_tables import ingest_tables, write_side_table
from shoprec.ingest_typing import Typed, arrow_schema, type_frame
from shoprec.quarantine import ledger_path, update_ledger
from shoprec.settings import Settings
from shoprec.sources_base import Prepared, Source, get_source

__all__ = ["CommitReport", "StageReport", "commit_batch", "ingest_tables", "read_events",
           "stage_files"]

SOURCE_COLUMNS = {"source_file": pa.string(), "source_line": pa.int64()}
"""Provenance columns of staged rows (and of quarantined ones)."""
_BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_batch_id(batch_id: str) -> None:
    """Batch ids become file names: refuse anything that could escape or hide a file."""
    if not _BATCH_ID.fullmatch(batch_id or ""):
        raise ValueError(f"invalid batch id {batch_id!r}: use letters, digits, '.', '_' and "
                         "'-', starting with a letter or digit")


@dataclass
class StageReport:
    """What :func:`stage_files` did with one batch.

    Attributes:
        tables: Per side table written by the source (``items``/``users``): its counts.
    """

    batch_id: str
    files: int
    read: int
    staged: int
    quarantined: int
    path: Path
    quarantine: Path | None = None
    notes: list[str] = field(default_factory=list)
    fmt: str = "events"
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __str__(self) -> str:
        text = (f"batch {self.batch_id}: {self.files} file(s), read {self.read} rows, staged "
                f"{self.staged}, quarantined {self.quarantined} → {self.path}")
        if self.quarantine:
            text += f" (rejected rows: {self.quarantine})"
        lines = [text, *(f"  note: {n}" for n in self.notes)]
        lines += [f"  table {name}: read {t['read']}, stored {t['stored']}, duplicates "
                  f"{t['duplicates']}, quarantined {t['quarantined']} → {t['rows']} rows"
                  for name, t in self.tables.items()]
        return "\n".join(lines)


def _rejected_rows(chunk: RawChunk, prep: Prepared, typed: Typed, source: str
                   ) -> tuple[pd.DataFrame, list[str]]:
    """Every row of a chunk refused by the source, by typing or by the parser, as read."""
    passed = np.flatnonzero(~prep.rejected)
    groups = [(np.flatnonzero(prep.rejected), prep.reasons),
              (passed[typed.rejected], typed.reasons)]
    frames, reasons, lines = [], [], []
    for positions, why in groups:
        if len(positions):
            frames.append(chunk.frame.iloc[positions])
            reasons += why
            lines.append(chunk.lines[positions])
    if len(chunk.malformed):
        frames.append(chunk.malformed)
        reasons += chunk.malformed_reasons
        lines.append(chunk.malformed_lines)
    if not frames:
        return pd.DataFrame(), []
    line = np.concatenate(lines)
    rows = pd.concat([f.astype("string") for f in frames], ignore_index=True)
    rows = rows.assign(source_file=source, source_line=line)
    order = np.argsort(line, kind="stable")
    return rows.iloc[order], [reasons[i] for i in order]


def _stage_chunk(source: Source, chunk: RawChunk, path: Path, seen: dict) -> tuple[
        pd.DataFrame, pd.DataFrame, list[str]]:
    """Typed event rows with provenance, and the rejected rows with their reasons."""
    prep = source.prepare(chunk)
    passed = prep.frame[~prep.rejected]
    typed = type_frame(passed, source.schema)
    events = source.finish(typed.frame, prep.frame)
    for tracker in seen.values():
        tracker.observe(events)
    lines = chunk.lines[~prep.rejected][~typed.rejected]
    good = events[EVENT_SCHEMA.names].assign(source_file=str(path), source_line=lines)
    bad, reasons = _rejected_rows(chunk, prep, typed, str(path))
    return good, bad, reasons


def stage_files(paths: list[Path], settings: Settings, batch_id: str, fmt: str = "events",
                mapping: Path | str | None = None, chunk_rows: int = 200_000) -> StageReport:
    """Parse, type and stage the files of one source format as one batch.

    Structural checks only (a row the parser cannot split, a value that cannot be typed, a
    null in a required column, a negative id, a missing required column, a value outside the
    source's own vocabulary): semantic rules belong to validation. Rows stream through in
    chunks, so memory does not grow with the files. Sources that carry item or user data
    (``taobao``, ``movielens``, ``amazon-seq``) also upsert ``tables/items|users.parquet``.
    Re-running a batch id replaces its staged file, its ingest quarantine and its ledger.

    Args:
        paths: Event files (and side files of the format, see ``docs/sources.md``).
        settings: Locations.
        batch_id: Name of the batch (file-name safe).
        fmt: Source format: ``events`` (default), ``taobao``, ``movielens``, ``amazon-seq``.
        mapping: Column-mapping file (YAML/JSON) for ``events`` logs of other shops.
        chunk_rows: Rows per chunk for row-oriented readers (CSV is chunked by bytes).

    Raises:
        ValueError: for an invalid batch id, unknown format, invalid mapping, an unsupported
            file type or an undecodable file (nothing is staged then: the previous staged
            file, if any, is kept).
        FileNotFoundError: naming a path that does not exist.
    """
    check_batch_id(batch_id)
    source = get_source(fmt, mapping)
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such event file(s): {', '.join(missing)}")
    files = source.event_files(paths)
    used = set(files) | set(source.side_files(paths))
    ignored = [p.name for p in paths if p not in used]
    if fmt == "events":
        for p in files:
            file_format(p)  # an unsupported file fails the batch before anything is read
    target = settings.staging_dir / f"{batch_id}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    read = staged = 0
    notes = [f"ignored {len(ignored)} file(s) that are not {fmt} files: {ignored}"] if ignored \
        else []
    seen = source.seen()
    sink = QuarantineSink(settings, batch_id, "ingest")
    try:
        with pq.ParquetWriter(tmp, arrow_schema(EVENT_SCHEMA, SOURCE_COLUMNS)) as writer:
            for path in files:
                rows_before = read
                for number, chunk in enumerate(source.chunks(path, chunk_rows)):
                    if number == 0:
                        notes += source.notes(path, chunk)
                    good, bad, reasons = _stage_chunk(source, chunk, path, seen)
                    writer.write_table(pa.Table.from_pandas(good, writer.schema,
                                                            preserve_index=False))
                    sink.add(bad, reasons)
                    read += chunk.rows
                    staged += len(good)
                if read == rows_before:
                    notes.append(f"{path.name}: {'empty file' if is_empty(path) else 'no rows'}")
        tables = {t.schema.name: write_side_table(settings, t.schema, t.frame, t.source,
                                                  t.derived, t.lines)
                  for t in source.tables(paths, seen)}
    except BaseException:
        tmp.unlink(missing_ok=True)
        sink.discard()
        raise
    tmp.replace(target)
    quarantine = sink.close()
    ledger_path(settings, batch_id).unlink(missing_ok=True)  # a re-stage starts a fresh record
    update_ledger(settings, batch_id, read=read, quarantined_ingest=sink.rows, staged=staged,
                  files=[str(p) for p in files], format=fmt,
                  staged_at=pd.Timestamp.now(tz="UTC").isoformat())
    return StageReport(batch_id, len(files), read, staged, sink.rows, target, quarantine, notes,
                       fmt, tables)
