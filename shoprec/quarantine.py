"""Quarantine and the per-batch ledger: every input row is either stored or set aside with a reason.

Two stages reject rows: ingestion (rows that cannot be parsed or typed) and validation (rows that
fail a row-level Great Expectations check). Both write here, so an operator finds every rejected
row of a batch in one folder, and the ledger proves that the counts balance:
``read == stored + duplicates + quarantined``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from shoprec.settings import Settings

LEDGER_FIELDS = ("read", "quarantined_ingest", "quarantined_validation", "duplicates", "stored")


def quarantine_path(settings: Settings, batch_id: str, stage: str) -> Path:
    """``quarantine/<batch_id>/<stage>.parquet``: one file per batch and rejecting stage."""
    return settings.quarantine_dir / batch_id / f"{stage}.parquet"


def write_quarantine(settings: Settings, batch_id: str, stage: str, rows: pd.DataFrame,
                     reasons: pd.Series | list[str]) -> Path | None:
    """Store rejected rows with one reason each; returns the file, or ``None`` if no rows.

    Values are kept as strings (``raw`` columns) so a row that failed *because* it could not be
    typed is preserved exactly as it arrived. Rewriting the same batch and stage replaces the
    file, which keeps retried tasks idempotent.

    Args:
        settings: Locations.
        batch_id: The batch the rows came from.
        stage: ``ingest`` or ``validation``.
        rows: The rejected rows (any columns, e.g. the source columns plus ``source_file`` and
            ``line``).
        reasons: One human-readable reason per row, aligned with ``rows``.

    Raises:
        ValueError: if ``reasons`` does not have one entry per row (a row without a reason
            would be lost to the operator).
    """
    path = quarantine_path(settings, batch_id, stage)
    reasons = list(reasons)
    if len(reasons) != len(rows):
        raise ValueError(f"{len(rows)} quarantined rows but {len(reasons)} reasons")
    if rows.empty:
        path.unlink(missing_ok=True)
        return None
    out = rows.reset_index(drop=True).astype("string")
    out["reason"] = pd.Series(reasons, dtype="string")
    out["stage"] = stage
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    out.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def read_quarantine(settings: Settings, batch_id: str) -> pd.DataFrame:
    """All quarantined rows of a batch (every stage), empty if none."""
    files = sorted((settings.quarantine_dir / batch_id).glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=["reason", "stage"])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def ledger_path(settings: Settings, batch_id: str) -> Path:
    """``reports/ledger/<batch_id>.json``: the machine-readable conservation record."""
    return settings.reports_dir / "ledger" / f"{batch_id}.json"


def update_ledger(settings: Settings, batch_id: str, **counts: Any) -> dict[str, Any]:
    """Merge ``counts`` (and any extra facts) into the batch's ledger and return it.

    When all of :data:`LEDGER_FIELDS` are known the record gets ``balanced``; an unbalanced
    ledger means a row went missing, which must never happen, so it raises.

    Raises:
        RuntimeError: if the counts are complete and do not balance.
    """
    path = ledger_path(settings, batch_id)
    record: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    record.update(counts, batch_id=batch_id)
    if all(k in record for k in LEDGER_FIELDS):
        accounted = sum(int(record[k]) for k in LEDGER_FIELDS[1:])
        record["balanced"] = accounted == int(record["read"])
        if not record["balanced"]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=2, default=str))
            parts = ", ".join(f"{k}={record[k]}" for k in LEDGER_FIELDS[1:])
            raise RuntimeError(f"batch {batch_id}: read {record['read']} rows but accounted for "
                               f"{accounted} ({parts})")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))
    if record.get("balanced") and "stored" in counts:
        # The per-batch file is replaced when an interval is re-run; the history keeps every
        # completed run's record for audits.
        with (path.parent / "history.jsonl").open("a") as history:
            history.write(json.dumps(record, default=str) + "\n")
    return record


def format_ledger(record: dict[str, Any]) -> str:
    """One human line: ``read N = stored S + duplicates D + quarantined Q (per stage)``."""
    qi, qv = int(record.get("quarantined_ingest", 0)), int(record.get("quarantined_validation", 0))
    return (f"batch {record.get('batch_id')}: read {record.get('read', '?')} = stored "
            f"{record.get('stored', '?')} + duplicates {record.get('duplicates', '?')} + "
            f"quarantined {qi + qv} (ingest {qi}, validation {qv})")
