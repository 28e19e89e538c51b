"""Delimited text (CSV, TSV, headerless dumps) read in byte blocks with Arrow, as text.

Values are never type-guessed, so a bad value reaches :mod:`shoprec.ingest_typing` exactly as
written. A row with the wrong number of fields, a row holding bytes that are not UTF-8 and (for
dump formats, :attr:`Delimited.strict_end`) a last line cut at a byte boundary come back as
*malformed* rows with their text and a reason instead of failing the file.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from shoprec.ingest_chunk import RawChunk, is_empty

CSV_BLOCK_BYTES = 8 << 20
"""Bytes of CSV parsed per chunk (~100k event rows): bounds memory for arbitrarily large files."""


def ends_with_newline(path: Path) -> bool:
    """Whether the (decompressed) content of ``path`` ends with a newline; True when empty.

    A dump cut at a byte boundary ends mid-line; this is how such a cut is recognised. A plain
    file costs one seek; a gzip file is decompressed once more (streamed, bounded memory).
    """
    if path.name.lower().endswith(".gz"):
        last = b""
        with gzip.open(path, "rb") as f:
            while block := f.read(1 << 20):
                last = block[-1:]
        return last in (b"", b"\n")
    if path.stat().st_size == 0:
        return True
    with open(path, "rb") as f:
        f.seek(-1, io.SEEK_END)
        return f.read(1) == b"\n"


@dataclass(frozen=True)
class Delimited:
    """How to read a delimited text file.

    Attributes:
        delimiter: One-character field separator.
        names: Column names of a headerless file; ``None`` reads them from the first line.
        strict_end: Treat a last line without a final newline as truncated (a dump cut at a
            byte boundary): it is returned as malformed with :data:`TRUNCATED`.
    """

    delimiter: str = ","
    names: tuple[str, ...] | None = None
    strict_end: bool = False


TRUNCATED = "truncated last line: the file does not end with a newline"
"""Reason given to the last row of a strict file that was cut mid-line."""
CSV = Delimited()


def _header(path: Path, spec: Delimited) -> list[str] | None:
    """Column names of the file, or ``None`` when it has no data row (empty / header only)."""
    if spec.names is not None:  # headerless: the bytes need not be text to have rows
        return list(spec.names)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:  # only the header must be text; rows are checked one by one
        head = f.readline()
        has_rows = any(line.strip() for line in iter(f.readline, b""))
    try:
        header = next(csv.reader([head.decode("utf-8-sig")], delimiter=spec.delimiter), None)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: the header line is not UTF-8 text: {exc}") from exc
    if not header or not has_rows:
        return None
    names = [h.strip() for h in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path}: repeated column(s) in the CSV header: {repeated}")
    return names


def _decode(batch: pa.RecordBatch, delimiter: str, names: list[str]
            ) -> tuple[pa.Table, np.ndarray, list[str], list[str]]:
    """Binary columns to UTF-8 text; rows holding invalid UTF-8 are split off as malformed.

    Returns the decoded table of the good rows, the positions of the bad rows, their text
    (bad bytes shown as backslash escapes) and one reason each. The per-value check runs only
    for a block that failed the fast whole-column cast.
    """
    try:
        return (pa.Table.from_batches([batch.cast(pa.schema(
            [pa.field(n, pa.string()) for n in batch.schema.names]))]),
            np.zeros(0, np.int64), [], [])
    except (pa.ArrowInvalid, UnicodeDecodeError):
        pass
    columns = [col.to_pylist() for col in batch.columns]
    bad_pos, texts, reasons = [], [], []
    for i in range(batch.num_rows):
        for name, col in zip(names, columns, strict=False):
            value = col[i]
            if value is None:
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_pos.append(i)
                texts.append(delimiter.join("" if c[i] is None else
                                            c[i].decode("utf-8", "backslashreplace")
                                            for c in columns))
                reasons.append(f"invalid UTF-8 in column {name!r}: byte "
                               f"{value[exc.start:exc.start + 1]!r} at position {exc.start}")
                break
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[bad_pos] = False
    good = pa.Table.from_batches([batch.filter(pa.array(keep))])
    decoded = good.cast(pa.schema([pa.field(n, pa.string()) for n in good.schema.names]))
    return decoded, np.array(bad_pos, dtype=np.int64), texts, reasons


def _delimited_chunks(path: Path, spec: Delimited) -> Iterator[RawChunk]:
    names = _header(path, spec)
    if names is None:  # empty or header-only: no rows
        return
    slots = [f"c{i}" for i in range(len(names))]  # positional names: duplicates cannot clash
    bad: list[tuple[int, str, int, int]] = []
    skip = 0 if spec.names is not None else 1

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # ``number`` counts rows from the top of the file, header included
        bad.append((row.number - skip, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False,
                                       skip_rows=skip, column_names=slots),
        parse_options=pacsv.ParseOptions(delimiter=spec.delimiter, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(slots, pa.binary()), strings_can_be_null=True,
            quoted_strings_can_be_null=False, null_values=[""]),
    )
    bad_rows = np.zeros(0, dtype=np.int64)  # data row numbers of unparsed rows, ascending
    valid = 0
    for batch in reader:
        new, bad[:] = bad[:], []
        new_rows = np.array([b[0] for b in new], dtype=np.int64)
        bad_rows = np.concatenate([bad_rows, new_rows])
        # k-th parsed row's number = k + unparsed rows before it (solve on the sorted gaps)
        ordinal = np.arange(valid + 1, valid + batch.num_rows + 1, dtype=np.int64)
        gaps = bad_rows - np.arange(len(bad_rows))
        lines = ordinal + np.searchsorted(gaps, ordinal, side="right")
        valid += batch.num_rows
        table, undecodable, texts, why = _decode(batch, spec.delimiter, names)
        frame = table.to_pandas()
        frame.columns = names[:len(frame.columns)]
        good = np.ones(len(lines), dtype=bool)
        good[undecodable] = False
        malformed_lines = np.concatenate([new_rows, lines[undecodable]])
        order = np.argsort(malformed_lines, kind="stable")
        texts = [b[1] for b in new] + texts
        why = [f"malformed CSV row: expected {b[2]} fields, got {b[3]}" for b in new] + why
        yield RawChunk(frame, lines[good], pd.DataFrame({"raw": [texts[i] for i in order]}),
                       malformed_lines[order], [why[i] for i in order])
    if bad:  # unparsed rows after the last parsed one (or a file of nothing else)
        empty = pd.DataFrame({n: pd.Series(dtype=object) for n in dict.fromkeys(names)})
        yield RawChunk(empty, np.zeros(0, dtype=np.int64),
                       pd.DataFrame({"raw": [b[1] for b in bad]}),
                       np.array([b[0] for b in bad], dtype=np.int64),
                       [f"malformed CSV row: expected {b[2]} fields, got {b[3]}" for b in bad])


def _mark_truncated(chunk: RawChunk, delimiter: str) -> RawChunk:
    """Move the last row of a file that was cut mid-line into ``malformed`` as truncated."""
    last_parsed = int(chunk.lines[-1]) if len(chunk.lines) else -1
    last_bad = int(chunk.malformed_lines[-1]) if len(chunk.malformed_lines) else -1
    if last_bad > last_parsed:
        chunk.malformed_reasons[-1] = f"{TRUNCATED}; {chunk.malformed_reasons[-1]}"
        return chunk
    if last_parsed < 0:
        return chunk
    text = delimiter.join("" if pd.isna(v) else str(v) for v in chunk.frame.iloc[-1].tolist())
    malformed = pd.concat([chunk.malformed, pd.DataFrame({"raw": [text]})], ignore_index=True)
    return RawChunk(chunk.frame.iloc[:-1], chunk.lines[:-1], malformed,
                    np.append(chunk.malformed_lines, last_parsed),
                    [*chunk.malformed_reasons, TRUNCATED])


def delimited_chunks(path: Path, spec: Delimited = CSV) -> Iterator[RawChunk]:
    """Rows of a delimited text file as text, chunk by chunk (see :class:`Delimited`).

    Raises:
        ValueError: naming the file when it cannot be parsed at all.
    """
    if is_empty(path):
        return
    try:
        chunks = _delimited_chunks(path, spec)
        if not spec.strict_end or ends_with_newline(path):
            yield from chunks
            return
        previous = None  # look one chunk ahead: only the very last row can be truncated
        for chunk in chunks:
            if previous is not None:
                yield previous
            previous = chunk
        if previous is not None:
            yield _mark_truncated(previous, spec.delimiter)
    except (pa.ArrowException, UnicodeDecodeError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read as delimited text: {exc}") from exc
