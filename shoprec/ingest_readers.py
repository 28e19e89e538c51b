"""Read landing files in bounded-memory chunks, keeping every row and where it came from.

Supported: ``.parquet``, ``.csv``, ``.csv.gz``, ``.jsonl``, ``.jsonl.gz``. CSV values are read as
text (never type-guessed), so a bad value reaches :mod:`shoprec.ingest_typing` exactly as it was
written and the quarantine shows it verbatim. Rows that cannot even be split into columns (a CSV
line with the wrong number of fields, a JSONL line that is not a JSON object) are returned as
*malformed* with their text and a reason instead of failing the whole file.

Every row carries ``line``: its 1-based data row number (CSV: the header is not counted, a quoted
value spanning lines is one row; JSONL: the physical line number; Parquet: the row number).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = {".parquet": "parquet", ".csv": "csv", ".csv.gz": "csv", ".jsonl": "jsonl",
           ".jsonl.gz": "jsonl"}
"""Recognised file suffixes and their format."""
CSV_BLOCK_BYTES = 8 << 20
"""Bytes of CSV parsed per chunk (~100k event rows): bounds memory for arbitrarily large files."""


def file_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl`` from the file name.

    Raises:
        ValueError: naming the file and the supported suffixes when the suffix is unknown.
    """
    name = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise ValueError(f"{path}: unsupported file type; expected one of {sorted(FORMATS)}")


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


def _open_text(path: Path) -> io.TextIOBase:
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


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[RawChunk]:
    done = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        frame = batch.to_pandas()
        yield RawChunk(frame, np.arange(done + 1, done + len(frame) + 1, dtype=np.int64))
        done += len(frame)


def _csv_chunks(path: Path) -> Iterator[RawChunk]:
    with _open_text(path) as f:
        rows = csv.reader(f)
        header, first = next(rows, None), next(rows, None)
    if not header or first is None:  # empty or header-only: no rows
        return
    names = [h.strip() for h in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path}: repeated column(s) in the CSV header: {repeated}")
    slots = [f"c{i}" for i in range(len(names))]  # positional names: duplicates cannot clash
    bad: list[tuple[int, str, int, int]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # ``number`` counts rows from the top of the file, header included
        bad.append((row.number - 1, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False,
                                       skip_rows=1, column_names=slots),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(slots, pa.string()), strings_can_be_null=True,
            quoted_strings_can_be_null=False, null_values=[""]),
    )
    bad_rows = np.zeros(0, dtype=np.int64)  # data row numbers of malformed rows, ascending
    valid = 0
    for batch in reader:
        new, bad[:] = bad[:], []
        new_rows = np.array([b[0] for b in new], dtype=np.int64)
        bad_rows = np.concatenate([bad_rows, new_rows])
        # k-th valid row's number = k + malformed rows before it (solve on the sorted gaps)
        ordinal = np.arange(valid + 1, valid + batch.num_rows + 1, dtype=np.int64)
        gaps = bad_rows - np.arange(len(bad_rows))
        lines = ordinal + np.searchsorted(gaps, ordinal, side="right")
        valid += batch.num_rows
        frame = batch.to_pandas()
        frame.columns = names[:len(frame.columns)]
        yield RawChunk(
            frame, lines, pd.DataFrame({"raw": [b[1] for b in new]}), new_rows,
            [f"malformed CSV row: expected {b[2]} fields, got {b[3]}" for b in new])


def _jsonl_records(path: Path) -> Iterator[tuple[int, str, dict | None, str]]:
    """(line number, text, object or None, reason) per non-blank line."""
    with _open_text(path) as f:
        for number, text in enumerate(f, start=1):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, text, None, f"invalid JSON: {exc.msg} at column {exc.colno}"
                continue
            if not isinstance(obj, dict):
                yield number, text, None, f"not a JSON object: {type(obj).__name__}"
                continue
            yield number, text, obj, ""


def _jsonl_chunk(items: list[tuple[int, str, dict | None, str]]) -> RawChunk:
    ok = [it for it in items if it[2] is not None]
    bad = [it for it in items if it[2] is None]
    return RawChunk(pd.DataFrame.from_records([it[2] for it in ok]),
                    np.array([it[0] for it in ok], dtype=np.int64),
                    pd.DataFrame({"raw": [it[1] for it in bad]}),
                    np.array([it[0] for it in bad], dtype=np.int64), [it[3] for it in bad])


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[RawChunk]:
    items: list[tuple[int, str, dict | None, str]] = []
    for item in _jsonl_records(path):
        items.append(item)
        if len(items) >= chunk_rows:
            yield _jsonl_chunk(items)
            items = []
    if items:
        yield _jsonl_chunk(items)


def read_chunks(path: Path, chunk_rows: int = 200_000) -> Iterator[RawChunk]:
    """Yield the rows of ``path`` chunk by chunk (nothing for an empty or header-only file).

    Raises:
        ValueError: for an unsupported suffix, or naming the file when it cannot be decoded at
            all (not UTF-8, not Parquet, corrupt gzip): nothing of it is staged then.
    """
    fmt = file_format(path)
    if is_empty(path):
        return
    try:
        if fmt == "parquet":
            yield from _parquet_chunks(path, chunk_rows)
        elif fmt == "csv":
            yield from _csv_chunks(path)
        else:
            yield from _jsonl_chunks(path, chunk_rows)
    except (pa.ArrowException, UnicodeDecodeError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read as {fmt}: {exc}") from exc
