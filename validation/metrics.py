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
from validation.suite import QUARANTINE_SHARE, freshness_metric, unknown_key_metric


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


def unknown_key_share(valid: pd.DataFrame, table: Path, key: str) -> float:
    """Share of ``valid`` rows whose ``key`` is not a key of the reference ``table``."""
    if valid.empty or key not in valid.columns:
        return 0.0
    known = pd.read_parquet(table, columns=[key])[key]
    return float((~valid[key].isin(known)).mean())


def newest_age_days(valid: pd.DataFrame, column: str, now: pd.Timestamp) -> float:
    """Days between ``now`` and the newest ``column`` value; NaN if there is none."""
    if valid.empty or column not in valid.columns:
        return float("nan")
    newest = valid[column].max()
    return float((now - newest) / pd.Timedelta(days=1)) if pd.notna(newest) else float("nan")


def batch_metrics(valid: pd.DataFrame, *, schema: TableSchema, reference: TableSchema,
                  limits: dict[str, float], ledger: dict[str, Any], staged_rows: int,
                  quarantined_validation: int, settings: Settings,
                  now: pd.Timestamp) -> dict[str, float]:
    """Value of every metric named in ``limits`` (see :func:`validation.suite.batch_limits`).

    Args:
        valid: Rows that passed the row checks (the ones that would be committed).
        schema: The validated table.
        reference: The table whose key the rows should know (item catalogue).
        limits: Metric name → limit; only these metrics are computed.
        ledger: The batch ledger before this stage's update.
        staged_rows: Rows the gate received.
        quarantined_validation: Rows the row checks rejected.
        settings: Where the reference table lives.
        now: Reference time for freshness.
    """
    values: dict[str, float] = {
        QUARANTINE_SHARE: quarantine_share(ledger, staged_rows, quarantined_validation)}
    table = reference_table(settings, reference)
    if table is not None and unknown_key_metric(reference) in limits:
        values[unknown_key_metric(reference)] = unknown_key_share(valid, table, reference.key)
    for col in schema.columns:
        if freshness_metric(col.name) in limits:
            values[freshness_metric(col.name)] = newest_age_days(valid, col.name, now)
    return values
