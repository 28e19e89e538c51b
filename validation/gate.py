"""The data gate between ingestion and the event store.

``validate_batch`` runs the contract's GX suites on a staged batch. Rows that fail a row check
are quarantined with a reason naming the expectation, the column and the offending value; the
batch as a whole is rejected (``ValidationFailed``) when a batch check fails: too few rows, too
much quarantined, too many unknown items, stale data. Only a batch that passes may be committed,
so nothing downstream (features, online store, models) ever sees it otherwise.

Every run, pass or fail, renders the Data Docs (``reports/data_docs/index.html``), writes a JSON
summary (``reports/validation/<batch_id>.json``) and records ``quarantined_validation`` in the
batch ledger. Re-running a batch replaces all of these, so retries are idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA
from shoprec.quarantine import update_ledger, write_quarantine
from shoprec.settings import Settings
from validation.config import GateConfig
from validation.docs import GxSession
from validation.metrics import batch_metrics, ingest_counts, read_ledger, reference_table
from validation.results import ROW_RESULT_FORMAT, batch_failures, row_failures
from validation.suite import batch_limits, batch_suite, row_suite

__all__ = ["GateConfig", "ValidationFailed", "ValidationReport", "summary_path", "validate_batch"]

STAGE = "validation"
DEFAULT_CONFIG = GateConfig()
_BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class ValidationReport:
    """Outcome of one gate run.

    Attributes:
        batch_id: The validated batch.
        valid: Rows that passed every row check, same columns (and index) as the input; this
            is what ``commit_batch`` stores.
        quarantined: Rows this stage quarantined.
        failed_rows: Unexpected row count per failed row expectation, ``expect_x(column)``.
        metrics: Batch metrics by name, as checked by the batch suite.
        limits: Upper limit of each batch metric.
        failed_expectations: Failed batch-level expectations with observed value and limit;
            empty when the batch passed.
        docs: The Data Docs ``index.html``.
        pages: This batch's Data Docs page per suite name.
        summary: The JSON summary file.
        seconds: Wall time of the gate run.
    """

    batch_id: str
    valid: pd.DataFrame
    quarantined: int
    failed_rows: dict[str, int]
    metrics: dict[str, float] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)
    failed_expectations: list[str] = field(default_factory=list)
    docs: Path | None = None
    pages: dict[str, Path] = field(default_factory=dict)
    summary: Path | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether the batch may be committed."""
        return not self.failed_expectations

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        lines = [f"validation of batch {self.batch_id} {verdict} in {self.seconds:.1f} s: "
                 f"{len(self.valid)} valid rows, {self.quarantined} quarantined"]
        lines += [f"  {key}: {n} rows quarantined" for key, n in self.failed_rows.items()]
        lines += [f"  {name} = {_num(value)} (limit {self.limits.get(name)})"
                  for name, value in self.metrics.items()]
        lines += [f"  failed: {msg}" for msg in self.failed_expectations]
        lines.append(f"  Data Docs: {self.docs}")
        return "\n".join(lines)


class ValidationFailed(ValueError):
    """A batch-level expectation failed; the batch must not be committed.

    Attributes:
        failed_expectations: One message per failed expectation (name, observed, limit).
        docs_path: The Data Docs ``index.html`` showing the full results.
        report: The full report (quarantined rows are already written).
    """

    def __init__(self, report: ValidationReport) -> None:
        self.failed_expectations = list(report.failed_expectations)
        self.docs_path = report.docs
        self.report = report
        pages = ", ".join(str(p) for p in report.pages.values())
        super().__init__(
            f"batch {report.batch_id} failed {len(self.failed_expectations)} batch "
            "expectation(s):\n" + "\n".join(f"  - {m}" for m in self.failed_expectations)
            + f"\nData Docs: {self.docs_path} (this batch: {pages or 'n/a'})")


def summary_path(settings: Settings, batch_id: str) -> Path:
    """``reports/validation/<batch_id>.json``: the machine-readable outcome of the gate."""
    return settings.reports_dir / "validation" / f"{batch_id}.json"


def validate_batch(df: pd.DataFrame, settings: Settings, batch_id: str, *,
                   now: pd.Timestamp | None = None,
                   config: GateConfig = DEFAULT_CONFIG) -> ValidationReport:
    """Validate a staged batch; quarantine bad rows; reject the batch if a batch check fails.

    Args:
        df: The staged rows: the event schema columns with contract dtypes (extra columns such
            as ``source_file``/``source_line`` are kept and quarantined with the row).
        settings: Locations of quarantine, ledger, reports and the item table.
        batch_id: The batch (file-name safe); the GX run name and the file stem of outputs.
        now: Reference time for the sane timestamp window and freshness; defaults to the
            current UTC time. Pass it explicitly for backfills and tests.
        config: Thresholds.

    Returns:
        The report; ``report.valid`` is what may be committed.

    Raises:
        ValidationFailed: if any batch-level expectation failed (after quarantine, ledger,
            Data Docs and summary have been written, so the operator can inspect them).
        ValueError: for an unusable ``batch_id`` or a ledger whose counts contradict the batch.
    """
    if not _BATCH_ID.fullmatch(batch_id):
        raise ValueError(f"batch_id must match {_BATCH_ID.pattern} (it names files), "
                         f"got {batch_id!r}")
    started = time.perf_counter()
    now = pd.Timestamp.now(tz="UTC") if now is None else _utc(pd.Timestamp(now))
    schema, reference = EVENT_SCHEMA, ITEM_SCHEMA
    frame = df.reset_index(drop=True)  # GX reports failing rows by index label
    ledger = read_ledger(settings, batch_id)
    ingest_counts(ledger, len(frame))  # a contradictory ledger fails before the GX run

    session = GxSession(settings, batch_id)
    rows_result = session.run(row_suite(schema, config, now), frame, "staged", ROW_RESULT_FORMAT)
    reasons, failed_rows = row_failures(rows_result, frame)
    positions = sorted(reasons)
    write_quarantine(settings, batch_id, STAGE, frame.iloc[positions],
                     ["; ".join(reasons[p]) for p in positions])
    bad = np.zeros(len(frame), dtype=bool)
    bad[positions] = True
    valid = df[~bad]

    has_reference = reference_table(settings, reference) is not None
    limits = batch_limits(schema, reference if has_reference else None, config)
    metrics = batch_metrics(valid, schema=schema, reference=reference, limits=limits,
                            ledger=ledger, staged_rows=len(frame),
                            quarantined_validation=len(positions), settings=settings, now=now)
    batch_result = session.run(batch_suite(schema, limits), pd.DataFrame([metrics]), "metrics",
                               "COMPLETE")
    failures = batch_failures(rows_result) + batch_failures(batch_result)
    index, pages = session.build_docs()

    update_ledger(settings, batch_id, quarantined_validation=len(positions),
                  validation_passed=not failures)
    report = ValidationReport(batch_id=batch_id, valid=valid, quarantined=len(positions),
                              failed_rows=failed_rows, metrics=metrics, limits=limits,
                              failed_expectations=failures, docs=index, pages=pages,
                              summary=summary_path(settings, batch_id))
    report.seconds = time.perf_counter() - started
    _write_summary(settings, report, config, now)
    if failures:
        raise ValidationFailed(report)
    return report


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _write_summary(settings: Settings, report: ValidationReport, config: GateConfig,
                   now: pd.Timestamp) -> None:
    """Write the JSON summary atomically (a half-written file would read as a verdict)."""
    record: dict[str, Any] = {
        "batch_id": report.batch_id,
        "passed": report.passed,
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
        "now": now.isoformat(),
        "rows": len(report.valid) + report.quarantined,
        "valid": len(report.valid),
        "quarantined": report.quarantined,
        "failed_rows": report.failed_rows,
        "metrics": {k: _num(v) for k, v in report.metrics.items()},
        "limits": report.limits,
        "failed_expectations": report.failed_expectations,
        "config": asdict(config),
        "data_docs": str(report.docs) if report.docs else None,
        "pages": {k: str(v) for k, v in report.pages.items()},
        "seconds": round(report.seconds, 3),
    }
    path = summary_path(settings, report.batch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
