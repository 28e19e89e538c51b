"""Read landing files in bounded-memory chunks, keeping every row and where it came from.

Supported: ``.parquet``, ``.csv``, ``.csv.gz``, ``.jsonl``, ``.jsonl.gz``. CSV values are read as
text (never type-guessed), so a bad value reaches :mod:`shoprec.ingest_typing` exactly as it was
written and the quarantine shows it verbatim. Rows that cannot even be split into columns (a CSV
line with the wrong number of fields, a JSONL line that is not a JSON object) are returned as
*malformed* with their text and a reason instead of failing the whole file; so are rows holding
bytes that are not UTF-8, and (for dump formats, :class:`Delimited` ``strict_end``) a last line
cut at a byte boundary.

Every row carries ``line``: its 1-based data row number (CSV: the header is not counted, a quoted
value spanning lines is one row; JSONL: the physical line number; Parquet: the row number).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprec.ingest_chunk import RawChunk, is_empty, open_text
from shoprec.ingest_delimited import (
    CSV,
    TRUNCATED,
    Delimited,
    _delimited_chunks,
    delimited_chunks,
    ends_with_newline,
)

__all__ = ["CSV", "FORMATS", "TRUNCATED", "Delimited", "RawChunk", "delimited_chunks",
           "ends_with_newline", "file_format", "is_empty", "read_chunks"]

FORMATS = {".parquet": "parquet", ".csv": "csv", ".csv.gz": "csv", ".jsonl": "jsonl",
           ".jsonl.gz": "jsonl"}
"""Recognised file suffixes and their format."""


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


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[RawChunk]:
    done = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        frame = batch.to_pandas()
        yield RawChunk(frame, np.arange(done + 1, done + len(frame) + 1, dtype=np.int64))
        done += len(frame)


def _jsonl_records(path: Path) -> Iterator[tuple[int, str, dict | None, str]]:
    """(line number, text, object or None, reason) per non-blank line."""
    with open_text(path) as f:
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


def read_chunks(path: Path, chunk_rows: int = 200_000, csv_spec: Delimited = CSV
                ) -> Iterator[RawChunk]:
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
            yield from _delimited_chunks(path, csv_spec)
        else:
            yield from _jsonl_chunks(path, chunk_rows)
    except (pa.ArrowException, UnicodeDecodeError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read as {fmt}: {exc}") from exc
