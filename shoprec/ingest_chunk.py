"""The unit every reader yields: a chunk of raw rows with line numbers and malformed rows."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class RawChunk:
    """Rows of one file as read.

    Attributes:
        frame: Parsed rows with the file's own columns and raw values.
        lines: 1-based data row numbers aligned with ``frame``.
        malformed: Rows that could not be parsed at all: column ``raw`` (their text).
        malformed_lines: Row numbers of ``malformed``.
        malformed_reasons: One reason per malformed row.
    """

    frame: pd.DataFrame
    lines: np.ndarray
    malformed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"raw": []}))
    malformed_lines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    malformed_reasons: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """All rows of the chunk, parsed or malformed."""
        return len(self.frame) + len(self.malformed)


def open_text(path: Path) -> io.TextIOBase:
    """UTF-8 text of a plain or gzip file (a leading byte-order mark is dropped)."""
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def is_empty(path: Path) -> bool:
    """True for a file without any content (0 bytes, or a gzip of nothing)."""
    if path.stat().st_size == 0:
        return True
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return f.read(1) == b""
    return False
