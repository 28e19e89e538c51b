"""Source adapters: how each supported log format becomes contract events and side tables.

A *source* turns the files of one format (``events``, ``taobao``, ``movielens``,
``amazon-seq``) into the same three things, so every later stage works unchanged whatever the
origin: rows of :data:`~shoprec.contract.EVENT_SCHEMA` for the event store, and rows of
:data:`~shoprec.contract.ITEM_SCHEMA` / :data:`~shoprec.contract.USER_SCHEMA` for the tables.

Staging (:func:`shoprec.ingest.stage_files`) drives a source chunk by chunk:

1. :meth:`Source.chunks` reads a file as raw rows (source column names, text values);
2. :meth:`Source.prepare` renames them to contract columns, translates source vocabularies
   (``pv`` → ``click``) and refuses rows the source itself can tell are wrong, with a reason;
3. the rows are typed against :attr:`Source.schema` (:mod:`shoprec.ingest_typing`);
4. :meth:`Source.finish` derives what the source lacks (a deterministic ``event_id``) and
   returns event-schema rows; :class:`Seen` remembers per entity what the tables need;
5. :meth:`Source.tables` builds the item/user rows from side files, :class:`Seen` and defaults.

The registry :func:`get_source` imports the format modules lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA, Column, TableSchema
from shoprec.ingest_readers import RawChunk
from shoprec.ingest_store import EVENT_TS

FORMATS: dict[str, str] = {
    "events": "shoprec.sources_events:EventsSource",
    "taobao": "shoprec.sources_taobao:TaobaoSource",
    "movielens": "shoprec.sources_movielens:MovieLensSource",
    "amazon-seq": "shoprec.sources_amazon:AmazonSeqSource",
}
"""Format name → ``module:class`` of its adapter."""

HISTORICAL_GATE: dict[str, Any] = {"max_age_days": None}
"""Gate overrides of public benchmark dumps: their events are years old by nature, so only the
absolute floor (``GateConfig.earliest``) and the future bound of the sane window apply."""

USER_KEY, ITEM_KEY = USER_SCHEMA.key, ITEM_SCHEMA.key
EVENT_KEY = EVENT_SCHEMA.key
_EVENT_TYPE = next(c for c in EVENT_SCHEMA.columns if c.allowed and c.required).name
_STRENGTH = next(c for c in EVENT_SCHEMA.columns if c.dtype == "float64").name
EVENT_TYPE, STRENGTH = _EVENT_TYPE, _STRENGTH


def keyless(schema: TableSchema, *extra: Column) -> TableSchema:
    """``schema`` without its key column, plus ``extra`` columns.

    The typing schema of a source whose key is derived after typing (and that carries
    side-table columns on each row).
    """
    cols = tuple(c for c in schema.columns if c.name != schema.key) + extra
    return TableSchema(schema.name, schema.key, cols)


@dataclass
class Prepared:
    """Rows of a chunk in contract column names, raw values, before typing.

    Attributes:
        frame: Contract-named columns; index aligned with the chunk's frame.
        rejected: Rows the source refuses before typing.
        reasons: One reason per rejected row, in row order.
    """

    frame: pd.DataFrame
    rejected: np.ndarray
    reasons: list[str] = field(default_factory=list)


def accept_all(frame: pd.DataFrame) -> Prepared:
    """Nothing refused."""
    return Prepared(frame, np.zeros(len(frame), dtype=bool), [])


def refuse(frame: pd.DataFrame, bad: np.ndarray, reasons: list[str]) -> Prepared:
    """Refuse the rows of ``bad`` (a mask) with one reason each."""
    return Prepared(frame, bad, reasons)


def composite_ids(prefix: str, parts: list[pd.Series | np.ndarray]) -> pd.Series:
    """``prefix:part1:part2:...`` per row, built by Arrow kernels from canonical typed values.

    Derived from the row's own values (not from a file name or line), so the same event read
    from a renamed, re-compressed or re-sent file gets the same id and is stored once.
    """
    arrays = [pa.array(np.asarray(p)) if not isinstance(p, pd.Series)
              else pa.array(p.to_numpy(), from_pandas=True) for p in parts]
    text = [pc.cast(a, pa.string()) for a in arrays]
    n = len(arrays[0]) if arrays else 0
    joined = pc.binary_join_element_wise(pa.array([prefix] * n, pa.string()), *text, ":")
    return pd.Series(pd.StringDtype().__from_arrow__(joined))


def epoch_seconds(ts: pd.Series) -> np.ndarray:
    """Whole epoch seconds of UTC timestamps (the unit of every source that has times)."""
    return ts.to_numpy(dtype="datetime64[ns]").astype("int64") // 1_000_000_000


class Seen:
    """Per-entity facts gathered while events stream by: first event time, last attribute.

    Tables of sources without a complete catalogue default their timestamps to the entity's
    first event (an item "launches" when it is first seen). Chunk summaries are buffered and
    compacted, so memory grows with the number of entities, not of events.
    """

    def __init__(self, key: str, attrs: tuple[str, ...] = ()) -> None:
        self.key, self.attrs = key, attrs
        self._parts: list[pd.DataFrame] = []
        self._buffered = 0

    def observe(self, events: pd.DataFrame) -> None:
        """Record the entities of typed rows (key, event time and ``attrs`` columns)."""
        if events.empty:
            return
        grouped = events.groupby(self.key, sort=False)
        part = grouped[EVENT_TS].min().to_frame("first_ts")
        for attr in self.attrs:
            part[attr] = grouped[attr].last()
        self._parts.append(part)
        self._buffered += len(part)
        if self._buffered > 2_000_000:
            self._parts = [self.summary()]
            self._buffered = len(self._parts[0])

    def summary(self) -> pd.DataFrame:
        """One row per entity key: ``first_ts`` and the last value of each attribute."""
        if not self._parts:
            index = pd.Index([], dtype="int64", name=self.key)
            out = pd.DataFrame({"first_ts": pd.Series(dtype="datetime64[ns, UTC]")}, index=index)
            for attr in self.attrs:
                out[attr] = pd.Series(dtype="int64")
            return out
        both = pd.concat(self._parts)
        grouped = both.groupby(level=0, sort=True)
        out = grouped["first_ts"].min().to_frame()
        for attr in self.attrs:
            out[attr] = grouped[attr].last()
        return out

    @property
    def earliest(self) -> pd.Timestamp | None:
        """Earliest event time of any entity seen, or ``None``."""
        first = self.summary()["first_ts"]
        return None if first.empty else first.min()


@dataclass
class SideTable:
    """Rows for one table, raw or typed, and which columns were derived rather than read.

    Attributes:
        schema: ``ITEM_SCHEMA`` or ``USER_SCHEMA``.
        frame: Rows in contract column names (typing quarantines what does not fit).
        source: Where they came from (file, or ``events`` when derived).
        derived: Timestamp columns computed from first events: when merged into the existing
            table the earlier value wins, since a later batch sees an entity later.
        lines: Source line per row, for quarantine provenance.
    """

    schema: TableSchema
    frame: pd.DataFrame
    source: str
    derived: tuple[str, ...] = ()
    lines: np.ndarray | None = None


class Source:
    """Base adapter: contract-shaped input read with the generic readers (the ``events`` case).

    Subclasses override what differs. Attributes are class-level so a format's behaviour can
    be read in one place.
    """

    name = "base"
    schema: TableSchema = EVENT_SCHEMA
    gate: dict[str, Any] = {}

    def event_files(self, paths: list[Path]) -> list[Path]:
        """The paths holding events, recognised by name (see each format)."""
        return list(paths)

    def side_files(self, paths: list[Path]) -> list[Path]:
        """The paths holding item/user tables; anything neither events nor side is ignored."""
        return []

    def chunks(self, path: Path, chunk_rows: int) -> Iterator[RawChunk]:
        """Raw rows of one event file."""
        raise NotImplementedError

    def prepare(self, chunk: RawChunk) -> Prepared:
        """Contract-named raw columns and rows refused by source rules."""
        return accept_all(chunk.frame)

    def finish(self, typed: pd.DataFrame, prepared: pd.DataFrame) -> pd.DataFrame:
        """Typed rows → event-schema rows (derive ids; ``prepared`` is aligned by index)."""
        return typed

    def seen(self) -> dict[str, Seen]:
        """Trackers fed with every chunk of typed events (empty: no derived tables)."""
        return {}

    def tables(self, paths: list[Path], seen: dict[str, Seen]) -> list[SideTable]:
        """Item/user rows of this ingest (empty: the tables are left alone)."""
        return []

    def notes(self, path: Path, chunk: RawChunk) -> list[str]:
        """Remarks on a file worth telling the operator (e.g. ignored extra columns)."""
        return []


def get_source(fmt: str, mapping: Path | str | None = None) -> Source:
    """The adapter of format ``fmt`` (``mapping``: column-mapping file, ``events`` only).

    Raises:
        ValueError: naming the known formats for an unknown name, or when a mapping file is
            given to a format that does not take one.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown source format {fmt!r}; known: {sorted(FORMATS)}")
    module, _, cls = FORMATS[fmt].partition(":")
    source_cls = getattr(importlib.import_module(module), cls)
    if mapping is not None:
        if fmt != "events":
            raise ValueError(f"a column mapping applies to the 'events' format only, not {fmt!r}")
        return source_cls(mapping)
    return source_cls()


def plain_name(path: Path) -> str:
    """File name without a trailing ``.gz``, lower case: what format rules match on."""
    name = Path(path).name.lower()
    return name[:-3] if name.endswith(".gz") else name


def find_beside(paths: list[Path], names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` present next to any of ``paths`` (side files found by name)."""
    for folder in dict.fromkeys(Path(p).parent for p in paths):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None
