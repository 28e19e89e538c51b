"""The ``amazon-seq`` format: S3Rec-style interaction sequences plus item attributes.

Event files hold one line per user, ``user item item ...``, items in time order and no times
(e.g. ``Beauty.txt``). The item file ``*_item2attributes.json`` maps item id → list of
attribute ids (categories, then brand); it is taken from the paths given or found next to the
event files.

Mapping (see ``docs/sources.md``):

* every item token is one ``purchase`` event (a review follows a purchase), strength 1.0;
  a row of the ledger is one token, so ``read`` counts interactions, not lines;
* ``event_id`` = ``az:<user>:<position>`` (0-based position in the user's sequence);
* times are synthesized deterministically: the last item of every user is at
  :data:`SEQUENCE_END` and each earlier item one :data:`SEQUENCE_STEP` before the next, so
  the order is kept, the same file always gets the same times, and a time split at the last
  day is exactly the leave-last-out split of the benchmark;
* ``category_id`` = the item's first attribute (0 if it has none); ``launch_ts`` = its first
  synthesized event; ``shop_id``/``price``/``stock`` 0 (unknown). Users come from the events
  (``signup_ts`` = first event, ``age_band``/``city_tier`` 0).

A line without items is quarantined (one row); the last line of a file cut mid-line is
quarantined token by token as truncated.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA
from shoprec.ingest_readers import TRUNCATED, RawChunk, ends_with_newline, is_empty
from shoprec.ingest_store import EVENT_TS
from shoprec.sources_base import (
    EVENT_KEY,
    EVENT_TYPE,
    HISTORICAL_GATE,
    ITEM_KEY,
    STRENGTH,
    USER_KEY,
    Prepared,
    Seen,
    SideTable,
    Source,
    composite_ids,
    find_beside,
    keyless,
    plain_name,
)
from shoprec.sources_movielens import fill_from_events
from shoprec.sources_taobao import ITEM_DEFAULTS, USER_DEFAULTS

SEQUENCE_END = pd.Timestamp("2014-07-31T00:00:00Z")
"""Time of every user's last item (the Amazon 2014 review dump ends in July 2014)."""
SEQUENCE_STEP = pd.Timedelta(days=1)
"""Gap between consecutive items of a sequence."""
ATTRIBUTES_SUFFIX = "_item2attributes.json"
POSITION, LENGTH = "position", "length"
CATEGORY = ITEM_SCHEMA.column("category_id").name
LAUNCH = next(c.name for c in ITEM_SCHEMA.columns if c.dtype == "timestamp")
SIGNUP = next(c.name for c in USER_SCHEMA.columns if c.dtype == "timestamp")


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115


class _Block:
    """Rows of a chunk being assembled from sequence lines."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self.items: list[str] = []
        self.positions: list[int] = []
        self.lengths: list[int] = []
        self.lines: list[int] = []
        self.bad_text: list[str] = []
        self.bad_lines: list[int] = []
        self.bad_reasons: list[str] = []

    def add(self, number: int, data: bytes, truncated: bool) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad(number, data.decode("utf-8", "backslashreplace"),
                     f"invalid UTF-8: byte {data[exc.start:exc.start + 1]!r} at position "
                     f"{exc.start}")
            return
        tokens = text.split()
        if not tokens:
            return  # a blank line is not a row
        if len(tokens) < 2:
            self.bad(number, text.strip(), "sequence line without items")
            return
        if truncated:
            for token in tokens[1:]:
                self.bad(number, f"{tokens[0]} {token}", TRUNCATED)
            return
        n = len(tokens) - 1
        self.users += [tokens[0]] * n
        self.items += tokens[1:]
        self.positions += range(n)
        self.lengths += [n] * n
        self.lines += [number] * n

    def bad(self, number: int, text: str, reason: str) -> None:
        self.bad_text.append(text)
        self.bad_lines.append(number)
        self.bad_reasons.append(reason)

    @property
    def rows(self) -> int:
        return len(self.items) + len(self.bad_lines)

    def chunk(self) -> RawChunk:
        frame = pd.DataFrame({USER_KEY: self.users, ITEM_KEY: self.items,
                              POSITION: np.array(self.positions, dtype=np.int64),
                              LENGTH: np.array(self.lengths, dtype=np.int64)})
        return RawChunk(frame, np.array(self.lines, dtype=np.int64),
                        pd.DataFrame({"raw": self.bad_text}),
                        np.array(self.bad_lines, dtype=np.int64), self.bad_reasons)


def sequence_chunks(path: Path, chunk_rows: int) -> Iterator[RawChunk]:
    """One row per item token, in blocks of about ``chunk_rows`` rows."""
    if is_empty(path):
        return
    complete = ends_with_newline(path)
    block = _Block()
    with _open(path) as f:
        pending: tuple[int, bytes] | None = None
        for number, data in enumerate(f, start=1):
            if pending is not None:
                block.add(*pending, truncated=False)
                if block.rows >= chunk_rows:
                    yield block.chunk()
                    block = _Block()
            pending = (number, data.rstrip(b"\r\n"))
        if pending is not None:
            block.add(*pending, truncated=not complete)
    if block.rows:
        yield block.chunk()


def synthesized_ts(position: pd.Series, length: pd.Series) -> np.ndarray:
    """Epoch seconds of item ``position`` of a sequence of ``length`` items (see module doc)."""
    steps = length.to_numpy(dtype=np.int64) - 1 - position.to_numpy(dtype=np.int64)
    end = SEQUENCE_END.value // 1_000_000_000
    return end - steps * int(SEQUENCE_STEP.total_seconds())


def read_attributes(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Item rows from ``{item: [attribute, ...]}``: ``category_id`` = first attribute.

    Raises:
        ValueError: naming the file when it is not a JSON object.
    """
    with _open(path) as f:
        try:
            data = json.loads(f.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a JSON attribute map: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of item id -> attribute list")
    categories = [v[0] if isinstance(v, list) and v else (0 if v == [] else v)
                  for v in data.values()]
    frame = pd.DataFrame({ITEM_KEY: list(data.keys()),
                          CATEGORY: pd.Series(categories, dtype=object).astype("string")})
    return frame, np.arange(1, len(frame) + 1, dtype=np.int64)


class AmazonSeqSource(Source):
    """``<name>.txt`` sequences plus ``<name>_item2attributes.json``."""

    name = "amazon-seq"
    schema = keyless(EVENT_SCHEMA)
    gate = HISTORICAL_GATE

    def event_files(self, paths: list[Path]) -> list[Path]:
        """``<name>.txt`` files; with an attribute map among the paths, only its ``<name>``.

        S3Rec folders also hold ``<name>_sample.txt`` (sampled negatives) and notes, which
        are not interactions.
        """
        texts = [p for p in paths if plain_name(p).endswith(".txt")]
        stems = {plain_name(p)[:-len(ATTRIBUTES_SUFFIX)] for p in self.side_files(paths)}
        if stems:
            return [p for p in texts if plain_name(p)[:-4] in stems]
        return [p for p in texts if not plain_name(p).endswith("_sample.txt")]

    def side_files(self, paths: list[Path]) -> list[Path]:
        """``<name>_item2attributes.json``."""
        return [p for p in paths if plain_name(p).endswith(ATTRIBUTES_SUFFIX.lower())]

    def chunks(self, path: Path, chunk_rows: int) -> Iterator[RawChunk]:
        """One row per item token."""
        return sequence_chunks(path, chunk_rows)

    def prepare(self, chunk: RawChunk) -> Prepared:
        """Every interaction is a purchase at its synthesized time."""
        raw = chunk.frame
        out = pd.DataFrame({USER_KEY: raw[USER_KEY], ITEM_KEY: raw[ITEM_KEY],
                            EVENT_TYPE: "purchase",
                            EVENT_TS: synthesized_ts(raw[POSITION], raw[LENGTH]),
                            STRENGTH: 1.0, POSITION: raw[POSITION]}, index=raw.index)
        return Prepared(out, np.zeros(len(out), dtype=bool))

    def finish(self, typed: pd.DataFrame, prepared: pd.DataFrame) -> pd.DataFrame:
        """``event_id`` = ``az:<user>:<position>``."""
        out = typed.copy()
        out[EVENT_KEY] = composite_ids("az", [typed[USER_KEY],
                                              prepared.loc[typed.index, POSITION]]).to_numpy()
        return out[EVENT_SCHEMA.names]

    def seen(self) -> dict[str, Seen]:
        """First synthesized event per item and per user."""
        return {"items": Seen(ITEM_KEY), "users": Seen(USER_KEY)}

    def tables(self, paths: list[Path], seen: dict[str, Seen]) -> list[SideTable]:
        """Items from the attribute map (if any), users from the events."""
        out = []
        attributes = next(iter(self.side_files(paths)), None)
        if attributes is None:
            stems = tuple(f"{Path(p).name.split('.')[0]}{ATTRIBUTES_SUFFIX}"
                          for p in self.event_files(paths))
            attributes = find_beside(self.event_files(paths), stems)
        if attributes is not None:
            items, lines = read_attributes(attributes)
            items = fill_from_events(items, ITEM_KEY, LAUNCH, seen["items"], ITEM_DEFAULTS)
            out.append(SideTable(ITEM_SCHEMA, items[ITEM_SCHEMA.names], str(attributes),
                                 (LAUNCH,), lines))
        users = pd.DataFrame({USER_KEY: seen["users"].summary().index.to_numpy()})
        users = fill_from_events(users, USER_KEY, SIGNUP, seen["users"], USER_DEFAULTS)
        out.append(SideTable(USER_SCHEMA, users[USER_SCHEMA.names], "events", (SIGNUP,),
                             np.zeros(len(users), dtype=np.int64)))
        return out
