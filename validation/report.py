"""What a gate run reports: the in-memory report, the rejection error and the JSON summary."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shoprec.atomic import write_text_atomic
from shoprec.settings import Settings
from validation.config import GateConfig
from validation.suite import Limit


@dataclass
class ValidationReport:
    """Outcome of one gate run.

    Attributes:
        batch_id: The validated batch.
        valid: Rows that passed every row check, same columns (and index) as the input; this
            is what ``commit_batch`` stores. ``None`` for a streamed batch (see ``valid_path``).
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
        valid_rows: Number of rows that passed.
        valid_path: File of the rows that passed, for a streamed batch.
        notes: Checks skipped or put in context (no history for the volume, no catalogue).
    """

    batch_id: str
    valid: pd.DataFrame | None
    quarantined: int
    failed_rows: dict[str, int]
    metrics: dict[str, float] = field(default_factory=dict)
    limits: dict[str, Limit] = field(default_factory=dict)
    failed_expectations: list[str] = field(default_factory=list)
    docs: Path | None = None
    pages: dict[str, Path] = field(default_factory=dict)
    summary: Path | None = None
    seconds: float = 0.0
    valid_rows: int = 0
    valid_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether the batch may be committed."""
        return not self.failed_expectations

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        lines = [f"validation of batch {self.batch_id} {verdict} in {self.seconds:.1f} s: "
                 f"{self.valid_rows} valid rows, {self.quarantined} quarantined"]
        lines += [f"  {key}: {n} rows quarantined" for key, n in self.failed_rows.items()]
        lines += [f"  {name} = {num(value)} (limit {self.limits.get(name)})"
                  for name, value in self.metrics.items()]
        lines += [f"  note: {n}" for n in self.notes]
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


def num(value: float) -> float | None:
    """A metric for JSON: rounded to 6 places, ``None`` for NaN (no value, e.g. no events)."""
    return None if value is None or math.isnan(value) else round(float(value), 6)


def write_summary(settings: Settings, report: ValidationReport, config: GateConfig,
                   now: pd.Timestamp) -> None:
    """Write the JSON summary atomically (a half-written file would read as a verdict)."""
    record: dict[str, Any] = {
        "batch_id": report.batch_id,
        "passed": report.passed,
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
        "now": now.isoformat(),
        "rows": report.valid_rows + report.quarantined,
        "valid": report.valid_rows,
        "quarantined": report.quarantined,
        "failed_rows": report.failed_rows,
        "metrics": {k: num(v) for k, v in report.metrics.items()},
        "limits": report.limits,
        "failed_expectations": report.failed_expectations,
        "notes": report.notes,
        "config": asdict(config),
        "data_docs": str(report.docs) if report.docs else None,
        "pages": {k: str(v) for k, v in report.pages.items()},
        "seconds": round(report.seconds, 3),
    }
    path = summary_path(settings, report.batch_id)
    write_text_atomic(path, json.dumps(record, indent=2))
