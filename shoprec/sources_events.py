"""The ``events`` format: ShopRec's own event schema, or another shop's log through a mapping.

Without a mapping, files carry the contract column names (Parquet, CSV, CSV.gz, JSONL); this is
the behaviour of :func:`shoprec.ingest.stage_files` by default. A *mapping file* (YAML or
JSON) adapts another shop's log without code::

    columns:            # contract column: source column
      event_id: id      # leave event_id out to derive it from the row (see below)
      user_id: customer
      item_id: sku
      event_type: action
      event_ts: time
    values:             # per contract column: source value -> contract value
      event_type: {view: click, basket: cart, order: purchase}
    defaults:           # constant for a contract column the log lacks (or leaves empty)
      strength: 1.0
    timestamp_unit: ms  # numeric times are epoch s (default), ms, us or ns
    delimiter: ";"      # CSV field separator (default ",")

Unknown keys, unknown contract columns and values outside the contract's sets are refused
when the mapping is loaded, before any file is read. Without ``event_id`` the id is
``ev:<user>:<item>:<event_type>:<epoch seconds>``, so re-sending the same log stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA
from shoprec.ingest_readers import CSV, Delimited, RawChunk, read_chunks
from shoprec.ingest_store import EVENT_TS
from shoprec.sources_base import (
    EVENT_KEY,
    EVENT_TYPE,
    ITEM_KEY,
    USER_KEY,
    Prepared,
    Source,
    composite_ids,
    epoch_seconds,
    keyless,
)

MAPPING_KEYS = ("columns", "values", "defaults", "timestamp_unit", "delimiter")
UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
DERIVED_PREFIX = "ev"


def load_mapping(path: Path | str) -> dict[str, Any]:
    """Read and check a mapping file (``.yaml``/``.yml`` or ``.json``).

    Raises:
        ValueError: naming the file and the problem (unknown key, unknown contract column,
            a value outside the contract's allowed set, an unknown time unit).
        FileNotFoundError: if the file does not exist.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        spec = yaml.safe_load(text) or {}
    else:
        spec = json.loads(text)
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a mapping must be an object with keys {list(MAPPING_KEYS)}")
    problems = [f"unknown key {k!r}" for k in spec if k not in MAPPING_KEYS]
    names = EVENT_SCHEMA.names
    for section in ("columns", "values", "defaults"):
        for column in spec.get(section) or {}:
            if column not in names:
                problems.append(f"{section}: {column!r} is not a contract column {names}")
    for column, table in (spec.get("values") or {}).items():
        allowed = EVENT_SCHEMA.column(column).allowed if column in names else None
        bad = sorted(str(v) for v in (table or {}).values() if allowed and v not in allowed)
        if bad:
            problems.append(f"values: {column} maps to {bad}, not in {list(allowed)}")
    if spec.get("timestamp_unit", "s") not in UNITS:
        problems.append(f"timestamp_unit must be one of {list(UNITS)}")
    if len(str(spec.get("delimiter", ","))) != 1:
        problems.append("delimiter must be one character")
    if problems:
        raise ValueError(f"{path}: invalid column mapping: " + "; ".join(problems))
    return spec


class EventsSource(Source):
    """Contract-shaped event files, optionally renamed and recoded by a mapping file."""

    name = "events"
    schema = EVENT_SCHEMA

    def __init__(self, mapping: Path | str | None = None) -> None:
        self.mapping = load_mapping(mapping) if mapping is not None else None
        spec = self.mapping or {}
        self.columns: dict[str, str] = dict(spec.get("columns") or {})
        self.values: dict[str, dict] = {k: {str(a): b for a, b in (v or {}).items()}
                                        for k, v in (spec.get("values") or {}).items()}
        self.defaults: dict[str, Any] = dict(spec.get("defaults") or {})
        self.unit = UNITS[spec.get("timestamp_unit", "s")]
        self.csv = Delimited(delimiter=str(spec.get("delimiter", ","))) if spec else CSV
        self.derive_ids = self.mapping is not None and EVENT_KEY not in self.columns
        if self.derive_ids:
            self.schema = keyless(EVENT_SCHEMA)

    def chunks(self, path: Path, chunk_rows: int) -> Iterator[RawChunk]:
        """Rows of a Parquet, CSV or JSONL file, as read."""
        return read_chunks(path, chunk_rows, self.csv)

    def prepare(self, chunk: RawChunk) -> Prepared:
        """Rename mapped columns, recode values, fill defaults, convert time units."""
        raw = chunk.frame
        hint = self._wrong_delimiter(list(raw.columns))
        if hint:
            return Prepared(raw, np.ones(len(raw), dtype=bool), [hint] * len(raw))
        if self.mapping is None:
            return Prepared(raw, np.zeros(len(raw), dtype=bool))
        missing = [f"{src!r} (mapped to {dst!r})" for dst, src in self.columns.items()
                   if src not in raw.columns and dst not in self.defaults
                   and EVENT_SCHEMA.column(dst).required]
        if missing:
            reason = f"missing mapped column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
            return Prepared(raw, np.ones(len(raw), dtype=bool), [reason] * len(raw))
        out = pd.DataFrame(index=raw.index)
        mapped_sources = set(self.columns.values())
        for column in EVENT_SCHEMA.names:
            source = self.columns.get(column, column if column not in mapped_sources else None)
            if source is not None and source in raw.columns:
                out[column] = raw[source]
        for column, table in self.values.items():
            if column in out:  # unmapped values pass through; validation names them
                text = out[column].astype("string").str.strip()
                out[column] = text.map(table).fillna(text).astype(object)
        for column, value in self.defaults.items():
            if column not in out:
                out[column] = value
            else:
                empty = out[column].isna() | (out[column].astype("string").str.strip() == "")
                out[column] = out[column].where(~empty.to_numpy(), value)
        if self.unit != 1 and EVENT_TS in out:
            numbers = pd.to_numeric(out[EVENT_TS], errors="coerce")
            is_number = numbers.notna().to_numpy()
            seconds = (numbers / self.unit).astype(object)
            out[EVENT_TS] = out[EVENT_TS].astype(object).where(~is_number, seconds)
        return Prepared(out, np.zeros(len(out), dtype=bool))

    def _wrong_delimiter(self, columns: list[str]) -> str | None:
        """Name the likely cause when a CSV header came out as one field holding separators."""
        if len(columns) != 1 or columns[0] in EVENT_SCHEMA.names + list(self.columns.values()):
            return None
        found = [d for d in (";", "\t", "|", ",") if d != self.csv.delimiter and d in columns[0]]
        if not found:
            return None
        return (f"wrong delimiter: the header is one field {columns[0]!r} that contains "
                f"{found[0]!r}; expected fields separated by {self.csv.delimiter!r}")

    def finish(self, typed: pd.DataFrame, prepared: pd.DataFrame) -> pd.DataFrame:
        """Add derived ids when the mapping has no ``event_id`` column."""
        if not self.derive_ids:
            return typed
        out = typed.copy()
        out[EVENT_KEY] = composite_ids(DERIVED_PREFIX, [
            typed[USER_KEY], typed[ITEM_KEY], typed[EVENT_TYPE],
            epoch_seconds(typed[EVENT_TS])]).to_numpy()
        return out[[*EVENT_SCHEMA.names]]

    def notes(self, path: Path, chunk: RawChunk) -> list[str]:
        """Name the columns of the file that no contract column takes (they are dropped)."""
        used = set(self.columns.values()) | set(EVENT_SCHEMA.names)
        extra = [c for c in chunk.frame.columns if c not in used]
        return [f"{path.name}: extra column(s) {extra} ignored"] if extra else []
