"""Batch metrics the gate judges with GX: computed here in pandas, checked in the batch suite.

A share of rows is a property of the whole batch, not of a row, so GX's column-map
expectations cannot express it directly. The gate therefore computes each metric here and
puts it in a one-row frame that :func:`validation.suite.batch_suite` validates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from shoprec.contract import TableSchema
from shoprec.quarantine import ledger_path
from shoprec.settings import Settings
from validation.suite import (
    QUARANTINE_SHARE,
    VOLUME_RATIO,
    freshness_metric,
    unknown_key_metric,
)


def read_ledger(settings: Settings, batch_id: str) -> dict[str, Any]:
    """The batch ledger as ingest left it (empty if the batch was not ingested by ingest)."""
    path = ledger_path(settings, batch_id)
    return json.loads(path.read_text()) if path.exists() else {}


def reference_table(settings: Settings, reference: TableSchema) -> Path | None:
    """``tables/<reference.name>.parquet`` if ingest has written it, else ``None``."""
    path = settings.tables_dir / f"{reference.name}.parquet"
    return path if path.exists() else None


def ingest_counts(ledger: dict[str, Any], staged_rows: int) -> tuple[int, int]:
    """``(read, quarantined_ingest)`` of the batch, checked against the staged row count.

    ``read`` comes from the ledger when ingest recorded it; otherwise every row the gate sees
    was read (a batch handed in directly, e.g. from a backfill script).

    Raises:
        ValueError: if the ledger's ``read`` is smaller than the rows staged plus the rows
            ingest quarantined: rows would appear out of nowhere, so the counts cannot be
            trusted and the quarantine share would be wrong.
    """
    ingest_q = int(ledger.get("quarantined_ingest", 0))
    read = int(ledger.get("read", staged_rows + ingest_q))
    if read < staged_rows + ingest_q:
        raise ValueError(f"ledger says read={read} but {staged_rows} staged rows + "
                         f"{ingest_q} quarantined by ingest = {staged_rows + ingest_q}")
    return read, ingest_q


def quarantine_share(ledger: dict[str, Any], staged_rows: int,
                     quarantined_validation: int) -> float:
    """(ingest + validation quarantined) / rows read from the landing files (0 if none read)."""
    read, ingest_q = ingest_counts(ledger, staged_rows)
    return (ingest_q + quarantined_validation) / read if read else 0.0


class BatchStats:
    """Running totals over the valid rows of a batch, fed chunk by chunk.

    Args:
        settings: Where the reference table lives.
        reference: The table whose keys the rows should know (the item catalogue).
        ts_columns: Timestamp columns whose newest value is tracked (freshness).
    """

    def __init__(self, settings: Settings, reference: TableSchema,
                 ts_columns: list[str]) -> None:
        table = reference_table(settings, reference)
        self.key = reference.key
        self.known = None if table is None else pd.Index(
            pd.read_parquet(table, columns=[reference.key])[reference.key].unique())
        self.rows = 0
        self.unknown = 0
        self.newest: dict[str, pd.Timestamp | None] = dict.fromkeys(ts_columns)
        self.days: set[str] = set()
        self._day_column = ts_columns[0] if ts_columns else None

    def add(self, valid: pd.DataFrame) -> None:
        """Count one chunk of rows that passed the row checks."""
        self.rows += len(valid)
        if self.known is not None and self.key in valid.columns and len(valid):
            self.unknown += int((~valid[self.key].isin(self.known)).sum())
        day = self._day_column
        if day is not None and day in valid.columns and len(valid):
            self.days.update(valid[day].dropna().dt.strftime("%Y-%m-%d").unique().tolist())
        for column, newest in self.newest.items():
            if column in valid.columns and len(valid) and valid[column].notna().any():
                top = valid[column].max()
                self.newest[column] = top if newest is None else max(newest, top)

    def unknown_share(self) -> float:
        """Share of valid rows whose key is not in the reference table (0 if none)."""
        return self.unknown / self.rows if self.rows else 0.0

    def age_days(self, column: str, now: pd.Timestamp) -> float:
        """Days between ``now`` and the newest ``column`` value; NaN if there is none."""
        newest = self.newest.get(column)
        return float((now - newest) / pd.Timedelta(days=1)) if newest is not None \
            else float("nan")


def volume_history(settings: Settings, batch_id: str, window: int) -> list[float]:
    """Rows read PER EVENT DAY by the last ``window`` committed batches other than ``batch_id``.

    Per day, because batches cover different spans (a daily run, a backfill of one day, a
    manual run over a whole month): comparing raw row counts would reject every multi-day
    batch. Batches are ordered by ``committed_at`` from their ledgers; one without it (never
    committed, e.g. rejected by the gate) is not part of the history.
    """
    folder = ledger_path(settings, batch_id).parent
    done = []
    for path in folder.glob("*.json"):
        if path.stem == batch_id:
            continue
        record = json.loads(path.read_text())
        if record.get("committed_at") and "read" in record:
            days = max(1, len(record.get("partitions") or []))
            done.append((str(record["committed_at"]), int(record["read"]) / days))
    return [per_day for _, per_day in sorted(done)[-window:]]


def batch_metrics(stats: BatchStats, *, schema: TableSchema, reference: TableSchema,
                  limits: dict[str, Any], ledger: dict[str, Any], staged_rows: int,
                  quarantined_validation: int, history: list[int],
                  now: pd.Timestamp) -> dict[str, float]:
    """Value of every metric named in ``limits`` (see :func:`validation.suite.batch_limits`).

    Args:
        stats: Totals over the rows that passed the row checks.
        schema: The validated table.
        reference: The table whose key the rows should know (item catalogue).
        limits: Metric name → limit; only these metrics are computed.
        ledger: The batch ledger before this stage's update.
        staged_rows: Rows the gate received.
        quarantined_validation: Rows the row checks rejected.
        history: Rows read per event day by the previous committed batches (baseline).
        now: Reference time for freshness.
    """
    values: dict[str, float] = {
        QUARANTINE_SHARE: quarantine_share(ledger, staged_rows, quarantined_validation)}
    if VOLUME_RATIO in limits and history:
        read, _ = ingest_counts(ledger, staged_rows)
        mean = sum(history) / len(history)
        per_day = read / max(1, len(stats.days))
        values[VOLUME_RATIO] = per_day / mean if mean else float("inf")
    if unknown_key_metric(reference) in limits:
        values[unknown_key_metric(reference)] = stats.unknown_share()
    for col in schema.columns:
        if freshness_metric(col.name) in limits:
            values[freshness_metric(col.name)] = stats.age_days(col.name, now)
    return values
