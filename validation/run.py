"""One ingest run end to end: stage → validate → commit, streamed, with its conservation record.

This is what ``shoprec ingest --format ...`` and the pipeline's ingest step call. Each step
streams in chunks (staging by the source adapter, validation chunk by chunk with one merged GX
result, commit through per-day spill files), so memory does not grow with the batch. Nothing
is committed unless every batch expectation passed: a failing batch raises
:class:`~validation.gate.ValidationFailed` naming the failed expectations and the Data Docs.

The ledger ``reports/ledger/<batch_id>.json`` is the machine-readable record of the run:
``read = stored + duplicates + quarantined_ingest + quarantined_validation`` (``balanced``),
with ``duplicates`` split into ``duplicates_in_batch`` and ``duplicates_in_store``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from shoprec.ingest import CommitReport, StageReport, commit_batch, stage_files
from shoprec.quarantine import format_ledger, update_ledger
from shoprec.settings import Settings
from shoprec.sources_base import get_source
from validation.config import GateConfig
from validation.gate import ValidationReport, validate_staged


def gate_config_for(fmt: str, base: GateConfig | None = None, **overrides: Any) -> GateConfig:
    """The gate thresholds for source format ``fmt``: ``base`` + the format's + ``overrides``.

    Public benchmark dumps (``taobao``, ``movielens``, ``amazon-seq``) are historical, so they
    drop the relative age bound (``max_age_days``) and keep the absolute floor and the future
    bound; live ``events`` keep the default ten-year window.

    Raises:
        ValueError: for an unknown format or an unknown setting.
    """
    known = {f.name for f in fields(GateConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown gate setting(s) {unknown}; known: {sorted(known)}")
    config = base or GateConfig()
    return replace(config, **{**get_source(fmt).gate, **overrides})


@dataclass
class BatchRun:
    """The reports of one run and its final ledger record."""

    stage: StageReport
    validation: ValidationReport
    commit: CommitReport
    ledger: dict[str, Any]

    def __str__(self) -> str:
        return "\n".join([str(self.stage), str(self.validation), str(self.commit),
                          summary_line(self.ledger)])


def summary_line(record: dict[str, Any]) -> str:
    """The ledger line plus how the duplicates split (within the batch / already stored)."""
    line = format_ledger(record)
    if "duplicates_in_batch" in record:
        line += (f"; duplicates: {record['duplicates_in_batch']} repeated within the batch, "
                 f"{record['duplicates_in_store']} already stored")
    return line


def run_batch(paths: list[Path], settings: Settings, batch_id: str, *, fmt: str = "events",
              mapping: Path | str | None = None, now: pd.Timestamp | None = None,
              config: GateConfig | None = None, chunk_rows: int = 200_000,
              log: Callable[[str], None] | None = None) -> BatchRun:
    """Stage, validate and commit ``paths`` as batch ``batch_id`` of format ``fmt``.

    Args:
        paths: Event files (and side files of the format).
        settings: Locations.
        batch_id: Names every output of the run (file-name safe); re-running replaces them.
        fmt: Source format (see :data:`shoprec.sources_base.FORMATS`).
        mapping: Column-mapping file for ``events`` logs of other shops.
        now: Reference time of the gate (default: now, UTC).
        config: Gate thresholds (default: :func:`gate_config_for` ``fmt``).
        chunk_rows: Rows per chunk in every step.
        log: Called with each step's report as it finishes (e.g. ``print``).

    Raises:
        ValidationFailed: when a batch expectation failed; nothing was committed.
        ValueError, FileNotFoundError: for bad arguments or unreadable files (see
            :func:`shoprec.ingest.stage_files`).
    """
    config = config or gate_config_for(fmt)
    say = log or (lambda _text: None)
    staged = stage_files(paths, settings, batch_id, fmt=fmt, mapping=mapping,
                         chunk_rows=chunk_rows)
    say(str(staged))
    report = validate_staged(settings, batch_id, now=now, config=config, chunk_rows=chunk_rows)
    say(str(report))
    committed = commit_batch(settings, batch_id, path=report.valid_path)
    say(str(committed))
    # committed: the event store holds the rows now (quarantined rows keep their source line)
    report.valid_path.unlink(missing_ok=True)
    staged.path.unlink(missing_ok=True)
    record = update_ledger(settings, batch_id)
    say(summary_line(record))
    return BatchRun(staged, report, committed, record)
