"""The ``movielens`` format: GroupLens ratings with their movie and user tables.

Event files: ``u.data`` layout (no header, tab-separated ``user item rating timestamp``; also
``u1.base`` etc.) or ``ratings.csv`` (header ``userId,movieId,rating,timestamp``), told apart
by the ``.csv`` suffix. Side files, taken from the paths given or else found next to the event
files by name: ``u.item`` (pipe-separated, Latin-1, 19 genre flags) or ``movies.csv``
(``movieId,title,genres``) for items, ``u.user`` (``id|age|gender|occupation|zip``) for users.

A rating becomes one event (see ``docs/sources.md``): ``event_type`` ``purchase`` for a rating
of :data:`LIKE_THRESHOLD` or more (the user valued what they consumed), ``click`` below it
(consumed, not valued); ``strength`` is the rating itself. A rating outside [0.5, 5] or not a
number is quarantined. ``event_id`` is ``ml:<user>:<item>:<timestamp>``.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA
from shoprec.ingest_readers import CSV, Delimited, RawChunk, delimited_chunks
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
    epoch_seconds,
    find_beside,
    keyless,
    plain_name,
)
from shoprec.sources_taobao import ITEM_DEFAULTS, USER_DEFAULTS

LIKE_THRESHOLD = 4.0
"""Ratings at or above this are ``purchase`` events, below it ``click`` events."""
RATING_RANGE = (0.5, 5.0)
UDATA = Delimited("\t", (USER_KEY, ITEM_KEY, "rating", "timestamp"), strict_end=True)
RATINGS_CSV = {"userId": USER_KEY, "movieId": ITEM_KEY, "rating": "rating",
               "timestamp": "timestamp"}
ITEM_FILES, USER_FILES = ("u.item", "movies.csv"), ("u.user",)
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western", "IMAX")
"""``category_id`` = position of the movie's first genre here (u.genre order, then IMAX)."""
GENRE_ALIASES = {"Children": "Children's", "(no genres listed)": "unknown"}
AGE_BANDS = (18, 25, 35, 45, 55)
"""``age_band`` = 1 + number of these bounds at or below the age (1: <18 ... 6: 55+; 0: unknown)."""

LAUNCH = next(c.name for c in ITEM_SCHEMA.columns if c.dtype == "timestamp")
SIGNUP = next(c.name for c in USER_SCHEMA.columns if c.dtype == "timestamp")
CATEGORY = ITEM_SCHEMA.column("category_id").name


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _read_text(path: Path, encoding: str) -> str:
    raw = gzip.open(path, "rb").read() if path.name.endswith(".gz") else path.read_bytes()
    return raw.decode(encoding)


def _genre(names: list[str]) -> int:
    for name in names:
        name = GENRE_ALIASES.get(name, name)
        if name in GENRES and name != "unknown":
            return GENRES.index(name)
    return 0


def read_items(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """``u.item`` or ``movies.csv`` → ``item_id``, ``category_id``, release ``launch_ts``."""
    if _is_csv(path):
        rows = list(csv.DictReader(io.StringIO(_read_text(path, "utf-8-sig"))))
        frame = pd.DataFrame({
            ITEM_KEY: [r.get("movieId") for r in rows],
            CATEGORY: [_genre((r.get("genres") or "").split("|")) for r in rows],
            LAUNCH: pd.NaT})
    else:  # u.item: id|title|release date|video release|url|19 flags
        rows = [line.split("|") for line in _read_text(path, "latin-1").splitlines() if line]
        flags = [[GENRES[i] for i, f in enumerate(r[5:24]) if f.strip() == "1"] for r in rows]
        frame = pd.DataFrame({
            ITEM_KEY: [r[0] for r in rows], CATEGORY: [_genre(f) for f in flags],
            LAUNCH: pd.to_datetime([r[2] if len(r) > 2 else "" for r in rows],
                                   format="%d-%b-%Y", errors="coerce", utc=True)})
    return frame, np.arange(1, len(frame) + 1, dtype=np.int64)


def read_users(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """``u.user`` → ``user_id`` and ``age_band`` (see :data:`AGE_BANDS`)."""
    rows = [line.split("|") for line in _read_text(path, "latin-1").splitlines() if line]
    age = pd.to_numeric(pd.Series([r[1] if len(r) > 1 else "" for r in rows]), errors="coerce")
    band = np.where(age.isna(), 0, 1 + np.searchsorted(AGE_BANDS, age.fillna(0), side="right"))
    frame = pd.DataFrame({USER_KEY: [r[0] for r in rows], "age_band": band.astype("int64")})
    return frame, np.arange(1, len(frame) + 1, dtype=np.int64)


def fill_from_events(frame: pd.DataFrame, key: str, ts_column: str, seen: Seen,
                     defaults: dict) -> pd.DataFrame:
    """Fill a missing timestamp and absent attributes.

    The timestamp falls back to the entity's first event, else the earliest event of the
    ingest; attributes get their documented defaults.
    """
    first = seen.summary()["first_ts"]
    keys = pd.to_numeric(frame[key], errors="coerce")
    from_events = pd.Series(keys.map(first).to_numpy(), index=frame.index)
    fallback = seen.earliest if seen.earliest is not None else pd.Timestamp(0, tz="UTC")
    if ts_column not in frame:
        frame[ts_column] = pd.NaT
    frame[ts_column] = pd.to_datetime(frame[ts_column], utc=True)
    frame[ts_column] = frame[ts_column].fillna(from_events).fillna(fallback)
    for name, value in defaults.items():
        if name not in frame:
            frame[name] = value
    return frame


class MovieLensSource(Source):
    """Ratings files plus the movie and user tables next to them."""

    name = "movielens"
    schema = keyless(EVENT_SCHEMA)
    gate = HISTORICAL_GATE

    def event_files(self, paths: list[Path]) -> list[Path]:
        """``u.data``, ``ratings.csv`` and GroupLens' split files ``u1.base`` … ``ub.test``.

        The split files are subsets of ``u.data``: when it is among the paths they are left
        out (they would only add duplicates).
        """
        names = [plain_name(p) for p in paths]
        full = "u.data" in names
        return [p for p, n in zip(paths, names, strict=True)
                if n in ("u.data", "ratings.csv")
                or (not full and re.fullmatch(r"u[0-9a-z]*\.(base|test)", n))]

    def side_files(self, paths: list[Path]) -> list[Path]:
        """``u.item`` / ``movies.csv`` and ``u.user``."""
        return [p for p in paths if plain_name(p) in ITEM_FILES + USER_FILES]

    def chunks(self, path: Path, chunk_rows: int) -> Iterator[RawChunk]:
        """``ratings.csv`` with its header, anything else as tab-separated ``u.data``."""
        if not _is_csv(path):
            yield from delimited_chunks(path, UDATA)
            return
        for chunk in delimited_chunks(path, CSV):
            chunk.frame = chunk.frame.rename(columns=RATINGS_CSV)
            yield chunk

    def prepare(self, chunk: RawChunk) -> Prepared:
        """Rating → event type and strength; refuse a rating that is not one."""
        raw = chunk.frame
        if "rating" not in raw or "timestamp" not in raw:
            missing = [c for c in ("rating", "timestamp") if c not in raw]
            reason = f"missing required column(s) {missing}"
            return Prepared(raw, np.ones(len(raw), dtype=bool), [reason] * len(raw))
        rating = pd.to_numeric(raw["rating"].astype("string").str.strip(), errors="coerce")
        lo, hi = RATING_RANGE
        bad = ~rating.between(lo, hi).to_numpy(dtype=bool)
        reasons = ["rating: missing value" if pd.isna(v) else
                   f"rating: not a rating in [{lo:g}, {hi:g}]: {v!r}"
                   for v in raw["rating"][bad].tolist()]
        kind = np.where(rating >= LIKE_THRESHOLD, "purchase", "click").astype(object)
        columns = {USER_KEY: raw.get(USER_KEY), ITEM_KEY: raw.get(ITEM_KEY), EVENT_TYPE: kind,
                   EVENT_TS: raw["timestamp"], STRENGTH: rating.to_numpy()}
        out = pd.DataFrame({k: v for k, v in columns.items() if v is not None}, index=raw.index)
        return Prepared(out, bad, reasons)

    def finish(self, typed: pd.DataFrame, prepared: pd.DataFrame) -> pd.DataFrame:
        """``event_id`` = ``ml:<user>:<item>:<timestamp>``."""
        out = typed.copy()
        out[EVENT_KEY] = composite_ids("ml", [typed[USER_KEY], typed[ITEM_KEY],
                                              epoch_seconds(typed[EVENT_TS])]).to_numpy()
        return out[EVENT_SCHEMA.names]

    def seen(self) -> dict[str, Seen]:
        """First event per movie and per user: the launch/sign-up default."""
        return {"items": Seen(ITEM_KEY), "users": Seen(USER_KEY)}

    def tables(self, paths: list[Path], seen: dict[str, Seen]) -> list[SideTable]:
        """Movies from u.item/movies.csv, users from u.user or else from the events."""
        events = self.event_files(paths)
        item_file = next((p for p in paths if plain_name(p) in ITEM_FILES), None) \
            or find_beside(events, ITEM_FILES)
        user_file = next((p for p in paths if plain_name(p) in USER_FILES), None) \
            or find_beside(events, USER_FILES)
        out = []
        if item_file is not None:
            items, lines = read_items(item_file)
            items = fill_from_events(items, ITEM_KEY, LAUNCH, seen["items"], ITEM_DEFAULTS)
            out.append(SideTable(ITEM_SCHEMA, items[ITEM_SCHEMA.names], str(item_file),
                                 (), lines))
        if user_file is not None:
            users, lines = read_users(user_file)
            source, derived = str(user_file), (SIGNUP,)
        else:  # ratings.csv releases have no user table: every rater gets a default row
            users = pd.DataFrame({USER_KEY: seen["users"].summary().index.to_numpy()})
            lines, source, derived = np.zeros(len(users), np.int64), "events", (SIGNUP,)
        users = fill_from_events(users, USER_KEY, SIGNUP, seen["users"], USER_DEFAULTS)
        out.append(SideTable(USER_SCHEMA, users[USER_SCHEMA.names], source, derived, lines))
        return out
