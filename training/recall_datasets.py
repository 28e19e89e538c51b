"""Interaction data for the recall sources and their evaluation, from four kinds of input.

Every recall source (popularity, item-CF, swing, graph embedding) and the evaluation harness work
on one shape, :class:`Interactions`: positive user–item interactions in time order with dense
``0..n-1`` indices, plus optional per-item category and shop. Loaders turn each input into it:

* the committed event store of a ``SHOPREC_HOME`` (:func:`load_event_store`);
* synthetic events made on the fly by :mod:`shoprec.generator` (:func:`generate_interactions`);
* the S3-Rec preprocessing of Amazon Beauty, ``Beauty.txt`` + ``Beauty_item2attributes.json``
  (:func:`load_beauty`);
* MovieLens-100K ``u.data`` (+ ``u.item`` genres) (:func:`load_movielens`).

Real datasets are only read from a folder the caller names; nothing here downloads anything.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, POSITIVE_EVENT_TYPES
from shoprec.settings import Settings

BEAUTY_FILES = ("Beauty.txt", "Beauty_item2attributes.json")
MOVIELENS_FILES = ("u.data", "u.item")
_EV_USER, _EV_ITEM, _EV_TYPE, _EV_TS, _EV_SESSION = (
    "user_id", "item_id", "event_type", "event_ts", "session_id")
_CATEGORY = ITEM_SCHEMA.column("category_id").name  # raises if the schema drops it
_SHOP = ITEM_SCHEMA.column("shop_id").name
_EVENT_COLS = [EVENT_SCHEMA.column(c).name for c in (_EV_USER, _EV_ITEM, _EV_TYPE, _EV_TS,
                                                     _EV_SESSION)]


@dataclass(frozen=True)
class Interactions:
    """Positive interactions sorted by (user, time), with dense user and item indices.

    Attributes:
        name: Dataset name shown in reports.
        user: Dense user index per interaction (``0..n_users-1``).
        item: Dense item index per interaction (``0..n_items-1``).
        ts: Order key per interaction: Unix seconds when ``has_time``, else the position in the
            user's sequence.
        session: Session index per interaction; the user index when there are no sessions.
        user_ids: Original user id of each dense user index.
        item_ids: Original item id of each dense item index (the whole catalogue, including items
            a split may leave without interactions).
        item_category: Category per dense item, ``-1`` when unknown.
        item_shop: Shop (or brand) per dense item, ``-1`` when unknown.
        has_time: Whether ``ts`` is wall-clock time (trending popularity needs it).
    """

    name: str
    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    session: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_category: np.ndarray
    item_shop: np.ndarray
    has_time: bool

    @property
    def n_users(self) -> int:
        """Number of users (dense index range)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of catalogue items (dense index range)."""
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The interactions where ``mask`` is true; users and catalogue keep their indices."""
        return replace(self, user=self.user[mask], item=self.item[mask], ts=self.ts[mask],
                       session=self.session[mask])


def from_frame(name: str, frame: pd.DataFrame, *, items: pd.DataFrame | None = None,
               has_time: bool = True, session_col: str | None = None) -> Interactions:
    """Build :class:`Interactions` from a frame of ``user_id``, ``item_id``, ``ts`` columns.

    Rows are stably sorted by (user, ts), so equal timestamps keep their input order.

    Args:
        name: Dataset name.
        frame: One row per interaction; ``ts`` is an integer order key.
        items: Optional catalogue with ``item_id`` and any of ``category_id`` / ``shop_id``;
            its items join the catalogue even without interactions.
        has_time: Whether ``ts`` is wall-clock time.
        session_col: Column holding a session key; ``None`` makes each user one session.

    Raises:
        ValueError: when ``frame`` is empty or lacks a column.
    """
    missing = {"user_id", "item_id", "ts"} - set(frame.columns)
    if missing:
        raise ValueError(f"{name}: interaction frame lacks column(s) {sorted(missing)}")
    if frame.empty:
        raise ValueError(f"{name}: no interactions")
    item_ids = pd.unique(frame["item_id"].to_numpy(np.int64))
    if items is not None:
        item_ids = np.union1d(item_ids, items["item_id"].to_numpy(np.int64))
    item_ids = np.sort(item_ids)
    user_ids = np.sort(pd.unique(frame["user_id"].to_numpy(np.int64)))
    user = np.searchsorted(user_ids, frame["user_id"].to_numpy(np.int64))
    item = np.searchsorted(item_ids, frame["item_id"].to_numpy(np.int64))
    ts = frame["ts"].to_numpy(np.int64)
    if session_col is None:
        session = user
    else:
        # A missing session id must not glue different users' events into one session: such
        # events form one session per user.
        codes, uniques = pd.factorize(frame[session_col].astype("string"))
        session = np.where(codes >= 0, codes, len(uniques) + user).astype(np.int64)
    order = np.lexsort((np.arange(len(frame)), ts, user))
    cat = np.full(len(item_ids), -1, np.int64)
    shop = np.full(len(item_ids), -1, np.int64)
    if items is not None:
        pos = np.searchsorted(item_ids, items["item_id"].to_numpy(np.int64))
        for col, out in ((_CATEGORY, cat), (_SHOP, shop)):
            if col in items.columns:
                out[pos] = items[col].fillna(-1).to_numpy(np.int64)
    return Interactions(name, user[order], item[order], ts[order], session[order], user_ids,
                        item_ids, cat, shop, has_time)


def _events_to_interactions(name: str, events: pd.DataFrame,
                            items: pd.DataFrame | None) -> Interactions:
    """Positive events → first occurrence of each (user, item), with sessions and time.

    A click, cart and purchase of the same item are one discovery; keeping only the first makes
    a held-out "next item" something recall could actually find (not a repeat of history).
    """
    pos = events[events[_EV_TYPE].isin(POSITIVE_EVENT_TYPES)]
    if pos.empty:
        raise ValueError(f"{name}: no positive events ({', '.join(POSITIVE_EVENT_TYPES)})")
    ts = pd.to_datetime(pos[_EV_TS], utc=True)
    frame = pd.DataFrame({"user_id": pos[_EV_USER].to_numpy(np.int64),
                          "item_id": pos[_EV_ITEM].to_numpy(np.int64),
                          "ts": (ts.astype("int64") // 10**9).to_numpy(),
                          "session": pos[_EV_SESSION].to_numpy()})
    frame = frame.sort_values(["ts"], kind="stable").drop_duplicates(["user_id", "item_id"])
    return from_frame(name, frame.reset_index(drop=True), items=items, session_col="session")


def load_event_store(settings: Settings) -> Interactions:
    """Positive interactions from the committed event store and the items table of a home.

    Raises:
        FileNotFoundError: when the home has no committed events.
    """
    from shoprec.ingest_store import read_events

    events = read_events(settings, columns=_EVENT_COLS)
    if events.empty:
        raise FileNotFoundError(f"no committed events under {settings.events_dir}; run the "
                                "pipeline (or ingest) first, or evaluate on generated data")
    items_path = settings.tables_dir / "items.parquet"
    items = pd.read_parquet(items_path) if items_path.is_file() else None
    return _events_to_interactions(f"store:{settings.home.name}", events, items)


def generate_interactions(config: object, workdir: Path | None = None) -> Interactions:
    """Generate synthetic shop events with ``config`` (a ``GeneratorConfig``) and load them.

    Args:
        config: :class:`shoprec.generator.GeneratorConfig`.
        workdir: Where the landing files go; a temporary folder (removed after) by default.
    """
    from shoprec.generator import generate

    def load(landing: Path) -> Interactions:
        generate(config, landing)  # type: ignore[arg-type]
        files = sorted((landing / "events").glob("*.parquet"))
        events = pd.concat([pd.read_parquet(f, columns=_EVENT_COLS) for f in files],
                           ignore_index=True)
        return _events_to_interactions("generated", events,
                                       pd.read_parquet(landing / "items.parquet"))

    if workdir is not None:
        return load(Path(workdir) / "landing")
    with tempfile.TemporaryDirectory(prefix="recall-gen-") as tmp:
        return load(Path(tmp) / "landing")


def find_dataset_files(data_dir: Path, names: tuple[str, ...], subdirs: tuple[str, ...]) -> Path:
    """The folder holding all of ``names``: ``data_dir`` itself or one of its ``subdirs``.

    Raises:
        FileNotFoundError: naming every folder searched and the files expected.
    """
    data_dir = Path(data_dir)
    tried = [data_dir, *(data_dir / s for s in subdirs)]
    for folder in tried:
        if all((folder / n).is_file() for n in names):
            return folder
    raise FileNotFoundError(f"dataset files {list(names)} not found in any of "
                            f"{[str(t) for t in tried]}")


def beauty_item_attributes(attrs: dict[str, list[int]]) -> pd.DataFrame:
    """Split S3-Rec attribute lists into a brand ("shop") and a leaf category per item.

    S3-Rec writes each item's list as ``[brand?, category path..., category path...]``: the brand
    (when known) first, then Amazon category paths from general to specific. The file does not
    say which id is a brand, but a brand never appears after position 0 while categories do
    (items without a brand start with a category). So: an attribute seen at any position > 0 is a
    category; ``shop_id`` = the first attribute when it is never seen later, else -1;
    ``category_id`` = the last category attribute of the list (the most specific), else -1.
    """
    later = {a for values in attrs.values() for a in values[1:]}
    rows = []
    for key, values in attrs.items():
        cats = [a for a in values if a in later]
        brand = values[0] if values and values[0] not in later else -1
        rows.append((int(key), cats[-1] if cats else -1, brand))
    return pd.DataFrame(rows, columns=["item_id", _CATEGORY, _SHOP])


def load_beauty(data_dir: Path) -> Interactions:
    """Amazon Beauty as preprocessed by S3-Rec: one line per user, items in time order.

    ``ts`` is the position in the user's sequence (the file has no timestamps).

    Raises:
        FileNotFoundError: when ``Beauty.txt`` / ``Beauty_item2attributes.json`` are missing.
        ValueError: naming the first malformed line.
    """
    folder = find_dataset_files(data_dir, BEAUTY_FILES, ("amazon_beauty", "beauty", "Beauty"))
    users: list[int] = []
    items: list[int] = []
    pos: list[int] = []
    with open(folder / BEAUTY_FILES[0], encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2 or not all(p.isdigit() for p in parts):
                raise ValueError(f"{folder / BEAUTY_FILES[0]}:{n}: expected 'user item item ...'"
                                 f" with integer ids, got {line.strip()[:80]!r}")
            seq = [int(p) for p in parts[1:]]
            users += [int(parts[0])] * len(seq)
            items += seq
            pos += list(range(len(seq)))
    attrs = json.loads((folder / BEAUTY_FILES[1]).read_text(encoding="utf-8"))
    frame = pd.DataFrame({"user_id": users, "item_id": items, "ts": pos})
    return from_frame("beauty", frame, items=beauty_item_attributes(attrs), has_time=False)


def load_movielens(data_dir: Path) -> Interactions:
    """MovieLens-100K ratings (every rating is an interaction) with each movie's first genre.

    Raises:
        FileNotFoundError: when ``u.data`` / ``u.item`` are missing.
        ValueError: when ``u.data`` is not four tab-separated integer columns.
    """
    folder = find_dataset_files(data_dir, MOVIELENS_FILES, ("movielens-100k", "ml-100k"))
    try:
        ratings = pd.read_csv(folder / "u.data", sep="\t", header=None,
                              names=["user_id", "item_id", "rating", "ts"], dtype=np.int64)
    except ValueError as exc:
        raise ValueError(f"{folder / 'u.data'}: expected 4 tab-separated integer columns "
                         f"(user, item, rating, unix time): {exc}") from exc
    meta = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1")
    genres = meta.iloc[:, 5:].to_numpy(np.int64)
    first = np.where(genres.any(axis=1), genres.argmax(axis=1), -1)
    items = pd.DataFrame({"item_id": meta.iloc[:, 0].to_numpy(np.int64), _CATEGORY: first})
    return from_frame("movielens-100k", ratings, items=items, has_time=True)
