"""Ingest the item catalogue and the user table from the landing folder.

Tables are small next to events and have no later validation stage, so every rule of the
contract column (type, required, ``min_value``) is checked here; failing rows are quarantined
under batch ``tables`` with a reason, and the last row of a repeated key wins (a later line is a
later update of the same item or user).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprec.contract import ITEM_SCHEMA, USER_SCHEMA, TableSchema
from shoprec.ingest_readers import read_chunks
from shoprec.ingest_typing import arrow_schema, type_frame
from shoprec.quarantine import write_quarantine
from shoprec.settings import Settings

TABLES_BATCH = "tables"
"""Quarantine batch id of table rows (stage ``ingest_<table>``)."""
TABLE_SUFFIXES = (".parquet", ".csv", ".csv.gz")
"""Accepted table files, tried in this order: ``<table><suffix>`` in the landing folder."""


def find_table(landing_dir: Path, name: str) -> Path:
    """The landing file of table ``name``.

    Raises:
        FileNotFoundError: naming the folder and the file names that were looked for.
    """
    for suffix in TABLE_SUFFIXES:
        path = Path(landing_dir) / f"{name}{suffix}"
        if path.is_file():
            return path
    expected = ", ".join(f"{name}{s}" for s in TABLE_SUFFIXES)
    raise FileNotFoundError(f"no {name} table in {landing_dir}: expected one of {expected}")


def _ingest_table(settings: Settings, path: Path, schema: TableSchema) -> dict[str, Any]:
    good: list[pd.DataFrame] = []
    rejected: list[pd.DataFrame] = []
    reasons: list[str] = []
    read = 0
    for chunk in read_chunks(path):
        typed = type_frame(chunk.frame, schema, check_min="all")
        good.append(typed.frame)
        if typed.rejected.any():
            rows = chunk.frame[typed.rejected].astype("string")
            rejected.append(rows.assign(source_file=str(path),
                                        source_line=chunk.lines[typed.rejected]))
            reasons += typed.reasons
        if len(chunk.malformed):
            rejected.append(chunk.malformed.assign(source_file=str(path),
                                                   source_line=chunk.malformed_lines))
            reasons += chunk.malformed_reasons
        read += chunk.rows
    frames = [g for g in good if len(g)]
    table = pd.concat(frames, ignore_index=True) if frames else type_frame(
        pd.DataFrame(columns=schema.names), schema).frame
    unique = table.drop_duplicates(schema.key, keep="last").sort_values(schema.key)
    quarantine = write_quarantine(settings, TABLES_BATCH, f"ingest_{schema.name}",
                                  pd.concat(rejected, ignore_index=True) if rejected
                                  else pd.DataFrame(), reasons)
    target = settings.tables_dir / f"{schema.name}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(pa.Table.from_pandas(unique, arrow_schema(schema), preserve_index=False), tmp)
    tmp.replace(target)
    counts = {"read": read, "stored": len(unique), "duplicates": len(table) - len(unique),
              "quarantined": len(reasons)}
    if counts["stored"] + counts["duplicates"] + counts["quarantined"] != read:
        raise RuntimeError(f"{schema.name}: counts do not balance: {counts}")
    return {**counts, "path": str(target), "quarantine": str(quarantine) if quarantine else None}


def ingest_tables(settings: Settings, landing_dir: Path) -> dict[str, dict[str, Any]]:
    """Type ``items`` and ``users`` from ``landing_dir`` into ``settings.tables_dir``.

    Both files are located before anything is written, so a missing table leaves the current
    tables untouched.

    Returns:
        Per table: ``read``, ``stored``, ``duplicates``, ``quarantined``, ``path``, ``quarantine``.

    Raises:
        FileNotFoundError: naming the missing table file.
    """
    sources = [(find_table(landing_dir, s.name), s) for s in (ITEM_SCHEMA, USER_SCHEMA)]
    return {schema.name: _ingest_table(settings, path, schema) for path, schema in sources}


def merge_table(settings: Settings, schema: TableSchema, rows: pd.DataFrame,
                derived: tuple[str, ...] = ()) -> pd.DataFrame:
    """Upsert typed ``rows`` into ``tables/<schema.name>.parquet`` and return the new table.

    A key already in the table is replaced by its new row (a later source is a later
    update), except in ``derived`` columns (first-seen timestamps), where the earlier value
    is kept: a second batch sees an old entity later, not for the first time.
    """
    target = settings.tables_dir / f"{schema.name}.parquet"
    if target.exists():
        old = pd.read_parquet(target).set_index(schema.key)
        new = rows.set_index(schema.key)
        both = new.index.intersection(old.index)
        for column in derived:
            mine, theirs = new.loc[both, column], old.loc[both, column]
            new.loc[both, column] = mine.where(mine <= theirs, theirs)
        merged = pd.concat([old[~old.index.isin(new.index)], new]).reset_index()
    else:
        merged = rows
    merged = merged.sort_values(schema.key, ignore_index=True)[schema.names]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(pa.Table.from_pandas(merged, arrow_schema(schema), preserve_index=False), tmp)
    tmp.replace(target)
    return merged


def write_side_table(settings: Settings, schema: TableSchema, frame: pd.DataFrame, source: str,
                     derived: tuple[str, ...] = (), lines: np.ndarray | None = None
                     ) -> dict[str, Any]:
    """Type a source's item or user rows, quarantine misfits, upsert the rest.

    Every contract rule of the table applies (no later stage validates tables); failing rows
    go to quarantine batch :data:`TABLES_BATCH`, stage ``ingest_<table>``.

    Returns:
        ``read``, ``stored`` (rows of this source kept), ``duplicates`` (repeated keys, last
        wins), ``quarantined``, ``rows`` (table size after the merge), ``path``, ``source``.

    Raises:
        RuntimeError: if the counts do not balance.
    """
    typed = type_frame(frame, schema, check_min="all")
    lines = np.zeros(len(frame), dtype=np.int64) if lines is None else lines
    rejected = frame[typed.rejected].assign(source_file=source,
                                            source_line=lines[typed.rejected])
    write_quarantine(settings, TABLES_BATCH, f"ingest_{schema.name}", rejected, typed.reasons)
    unique = typed.frame.drop_duplicates(schema.key, keep="last")
    merged = merge_table(settings, schema, unique, derived)
    counts = {"read": len(frame), "stored": len(unique),
              "duplicates": len(typed.frame) - len(unique), "quarantined": len(typed.reasons)}
    if counts["stored"] + counts["duplicates"] + counts["quarantined"] != counts["read"]:
        raise RuntimeError(f"{schema.name}: counts do not balance: {counts}")
    return {**counts, "rows": len(merged), "source": source,
            "path": str(settings.tables_dir / f"{schema.name}.parquet")}
