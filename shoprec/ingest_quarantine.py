"""Streaming quarantine: rejected rows of a large batch written in parts, never all in memory.

The layout is the one :mod:`shoprec.quarantine` defines (``quarantine/<batch_id>/<stage>*.parquet``,
raw values as strings plus ``reason`` and ``stage``), so :func:`shoprec.quarantine.read_quarantine`
finds every part. A batch whose rows are mostly bad (a wrong delimiter, a unit error) would
otherwise hold millions of rejected rows in memory until the end of the file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shoprec.quarantine import quarantine_path
from shoprec.settings import Settings

PART_ROWS = 100_000
"""Rejected rows buffered before a part file is written."""


class QuarantineSink:
    """Collects rejected rows of one batch and stage, written in parts.

    The first part is ``<stage>.parquet``, the next ``<stage>-2.parquet`` and so on, one per
    :data:`PART_ROWS` rejected rows.

    Parts are written under hidden names and take their final names in :meth:`close`, which
    also removes the stage's earlier files; :meth:`discard` (a failed run) leaves the earlier
    files as they were.
    """

    def __init__(self, settings: Settings, batch_id: str, stage: str) -> None:
        self.first = quarantine_path(settings, batch_id, stage)
        self.stage = stage
        self.rows = 0
        self._parts: list[Path] = []
        self._frames: list[pd.DataFrame] = []
        self._reasons: list[str] = []

    def add(self, rows: pd.DataFrame, reasons: list[str]) -> None:
        """Queue rejected ``rows`` (any columns) with one reason each.

        Raises:
            ValueError: if there is not one reason per row (a row without one is lost).
        """
        if len(reasons) != len(rows):
            raise ValueError(f"{len(rows)} quarantined rows but {len(reasons)} reasons")
        if not len(rows):
            return
        self._frames.append(rows.reset_index(drop=True).astype("string"))
        self._reasons += reasons
        self.rows += len(rows)
        if len(self._reasons) >= PART_ROWS:
            self._flush()

    def _name(self, n: int) -> Path:
        return self.first if n == 1 else self.first.with_name(f"{self.stage}-{n}.parquet")

    def _flush(self) -> None:
        if not self._reasons:
            return
        out = pd.concat(self._frames, ignore_index=True)
        out["reason"] = pd.Series(self._reasons, dtype="string")
        out["stage"] = self.stage
        final = self._name(len(self._parts) + 1)
        part = final.with_name(f".{final.name}.partial")
        part.parent.mkdir(parents=True, exist_ok=True)
        out.to_parquet(part, index=False)
        self._parts.append(part)
        self._frames, self._reasons = [], []

    def close(self) -> Path | None:
        """Publish the parts; return the first file, or ``None`` when nothing was rejected."""
        self._flush()
        for old in [self.first, *self.first.parent.glob(f"{self.stage}-*.parquet")]:
            old.unlink(missing_ok=True)
        for n, part in enumerate(self._parts, start=1):
            part.replace(self._name(n))
        return self.first if self._parts else None

    def discard(self) -> None:
        """Drop what this run wrote (the stage's earlier files stay)."""
        for part in self._parts:
            part.unlink(missing_ok=True)
        self._parts, self._frames, self._reasons = [], [], []
