"""The data gate between ingestion and the event store.

``validate_batch`` runs the contract's GX suites on a staged batch. Rows that fail a row check
are quarantined with a reason naming the expectation, the column and the offending value; the
batch as a whole is rejected (``ValidationFailed``) when a batch check fails: too few rows, too
much quarantined, a volume far off the trailing mean of earlier batches, too many unknown items,
stale data. Only a batch that passes may be committed, so nothing downstream (features, online
store, models) ever sees it otherwise.

``validate_staged`` does the same on the staged file chunk by chunk (bounded memory): the row
suite's per-chunk results are merged into one GX result (:mod:`validation.merge`) and the
batch metrics are accumulated (:class:`validation.metrics.BatchStats`).

Every run, pass or fail, renders the Data Docs (``reports/data_docs/index.html``), writes a JSON
summary (``reports/validation/<batch_id>.json``) and records ``quarantined_validation`` in the
batch ledger. Re-running a batch replaces all of these, so retries are idempotent.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA
from shoprec.ingest_quarantine import QuarantineSink
from shoprec.quarantine import ledger_path, update_ledger
from shoprec.settings import Settings
from shoprec.utc import as_utc
from validation.config import GateConfig
from validation.docs import KEPT_ROWS, GxSession
from validation.merge import ResultMerger
from validation.metrics import BatchStats, batch_metrics, ingest_counts, read_ledger, volume_history
from validation.report import ValidationFailed, ValidationReport, summary_path, write_summary
from validation.results import ROW_RESULT_FORMAT, batch_failures, row_failures
from validation.suite import batch_limits, batch_suite, row_suite, row_suite_name

__all__ = ["GateConfig", "ValidationFailed", "ValidationReport", "summary_path", "valid_path",
           "validate_batch", "validate_staged"]

STAGE = "validation"
SCHEMA, REFERENCE = EVENT_SCHEMA, ITEM_SCHEMA
"""The validated table and the catalogue its rows refer to."""
DEFAULT_CONFIG = GateConfig()
_BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def valid_path(settings: Settings, batch_id: str) -> Path:
    """``staging/<batch_id>.valid.parquet``: the rows of a streamed batch that passed."""
    return settings.staging_dir / f"{batch_id}.valid.parquet"


class _GateRun:
    """One gate run: row checks chunk by chunk, then the batch checks on the totals."""

    def __init__(self, settings: Settings, batch_id: str, now: pd.Timestamp | None,
                 config: GateConfig, staged_rows: int) -> None:
        if not _BATCH_ID.fullmatch(batch_id):
            raise ValueError(f"batch_id must match {_BATCH_ID.pattern} (it names files), "
                             f"got {batch_id!r}")
        self.started = time.perf_counter()
        self.settings, self.batch_id, self.config = settings, batch_id, config
        self.now = pd.Timestamp.now(tz="UTC") if now is None else as_utc(now)
        self.staged_rows = staged_rows
        self.ledger = read_ledger(settings, batch_id)
        ingest_counts(self.ledger, staged_rows)  # a contradictory ledger fails before GX runs
        self.session = GxSession(settings, batch_id)
        self.check_rows = self.session.runner(row_suite(SCHEMA, config, self.now), "staged",
                                              ROW_RESULT_FORMAT)
        self.merger = ResultMerger(KEPT_ROWS)
        self.sink = QuarantineSink(settings, batch_id, STAGE)
        ts_columns = [c.name for c in SCHEMA.columns if c.dtype == "timestamp"]
        self.stats = BatchStats(settings, REFERENCE, ts_columns)
        self.failed_rows: Counter[str] = Counter()
        self.offset = 0

    def chunk(self, frame: pd.DataFrame) -> np.ndarray:
        """Row-check one chunk, quarantine its failing rows; return the mask of failing rows."""
        frame = frame.reset_index(drop=True)  # GX reports failing rows by index label
        result = self.check_rows(frame)
        reasons, counts = row_failures(result, frame)
        positions = sorted(reasons)
        self.sink.add(frame.iloc[positions], ["; ".join(reasons[p]) for p in positions])
        self.failed_rows.update(counts)
        self.merger.add(result, self.offset)
        self.offset += len(frame)
        bad = np.zeros(len(frame), dtype=bool)
        bad[positions] = True
        self.stats.add(frame[~bad])
        return bad

    def finish(self, valid: pd.DataFrame | None, valid_file: Path | None) -> ValidationReport:
        """Batch checks, Data Docs, ledger and summary; raise if the batch must not commit."""
        settings, config = self.settings, self.config
        rows_result = self.merger.result()
        self.session.replace_result(row_suite_name(SCHEMA), rows_result)
        history = volume_history(settings, self.batch_id, config.volume_window)
        has_reference = self.stats.known is not None
        limits = batch_limits(SCHEMA, REFERENCE if has_reference else None, config,
                              bool(history))
        quarantined = self.sink.rows
        metrics = batch_metrics(self.stats, schema=SCHEMA, reference=REFERENCE, limits=limits,
                                ledger=self.ledger, staged_rows=self.staged_rows,
                                quarantined_validation=quarantined, history=history,
                                now=self.now)
        batch_result = self.session.run(batch_suite(SCHEMA, limits), pd.DataFrame([metrics]),
                                        "metrics", "COMPLETE")
        failures = batch_failures(rows_result) + batch_failures(batch_result)
        index, pages = self.session.build_docs()
        self.sink.close()
        update_ledger(settings, self.batch_id, quarantined_validation=quarantined,
                      validation_passed=not failures)
        report = ValidationReport(
            batch_id=self.batch_id, valid=valid, quarantined=quarantined,
            failed_rows=dict(self.failed_rows), metrics=metrics, limits=limits,
            failed_expectations=failures, docs=index, pages=pages,
            summary=summary_path(settings, self.batch_id), valid_rows=self.stats.rows,
            valid_path=valid_file, notes=self._notes(history, has_reference))
        report.seconds = time.perf_counter() - self.started
        write_summary(settings, report, config, self.now)
        if failures:
            raise ValidationFailed(report)
        return report

    def _notes(self, history: list[float], has_reference: bool) -> list[str]:
        notes = []
        if not history:
            notes.append("volume check skipped: no committed batch in "
                         f"{ledger_path(self.settings, self.batch_id).parent} yet")
        else:
            mean = sum(history) / len(history)
            notes.append(f"volume compared per event day with the mean {mean:.1f} rows/day of "
                         f"the last {len(history)} committed batch(es)")
        if not has_reference:
            notes.append(f"unknown {REFERENCE.key} check skipped: no {REFERENCE.name} table in "
                         f"{self.settings.tables_dir}")
        if self.config.freshness_days is None:
            notes.append("freshness check off (GateConfig.freshness_days is not set)")
        return notes


def validate_batch(df: pd.DataFrame, settings: Settings, batch_id: str, *,
                   now: pd.Timestamp | None = None,
                   config: GateConfig = DEFAULT_CONFIG) -> ValidationReport:
    """Validate a staged batch held in memory; quarantine bad rows; reject a bad batch.

    Args:
        df: The staged rows: the event schema columns with contract dtypes (extra columns such
            as ``source_file``/``source_line`` are kept and quarantined with the row).
        settings: Locations of quarantine, ledger, reports and the item table.
        batch_id: The batch (file-name safe); the GX run name and the file stem of outputs.
        now: Reference time for the sane timestamp window and freshness; defaults to the
            current UTC time. Pass it explicitly for backfills and tests.
        config: Thresholds.

    Returns:
        The report; ``report.valid`` (same index as ``df``) is what may be committed.

    Raises:
        ValidationFailed: if any batch-level expectation failed (after quarantine, ledger,
            Data Docs and summary have been written, so the operator can inspect them).
        ValueError: for an unusable ``batch_id`` or a ledger whose counts contradict the batch.
    """
    run = _GateRun(settings, batch_id, now, config, len(df))
    bad = run.chunk(df)
    return run.finish(df[~bad], None)


def validate_staged(settings: Settings, batch_id: str, *, now: pd.Timestamp | None = None,
                    config: GateConfig = DEFAULT_CONFIG,
                    chunk_rows: int = 200_000) -> ValidationReport:
    """Validate the staged file of a batch chunk by chunk, in bounded memory.

    Rows that pass are written to :func:`valid_path` (``report.valid_path``; ``report.valid``
    is ``None``), to be committed with ``commit_batch(settings, batch_id, path=...)``. The row
    suite's results of all chunks are merged into one GX result, so the Data Docs and the
    batch verdicts describe the whole batch.

    Raises:
        FileNotFoundError: if the batch was never staged.
        ValidationFailed: as :func:`validate_batch`.
    """
    staged = settings.staging_dir / f"{batch_id}.parquet"
    if not staged.exists():
        raise FileNotFoundError(f"batch {batch_id!r} is not staged ({staged} does not exist)")
    source = pq.ParquetFile(staged)
    run = _GateRun(settings, batch_id, now, config, source.metadata.num_rows)
    target = valid_path(settings, batch_id)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with pq.ParquetWriter(tmp, source.schema_arrow) as writer:
            chunks = 0
            for batch in source.iter_batches(batch_size=chunk_rows):
                # Arrow-backed strings: GX's null and set checks then run in C++, not per value
                frame = batch.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
                bad = run.chunk(frame)
                writer.write_table(pa.Table.from_pandas(frame[~bad], source.schema_arrow,
                                                        preserve_index=False))
                chunks += 1
            if not chunks:  # an empty batch still gets its verdict (row count 0)
                run.chunk(source.schema_arrow.empty_table().to_pandas())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(target)
    return run.finish(None, target)
