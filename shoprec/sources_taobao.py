"""The ``taobao`` format: Alibaba's Taobao UserBehavior CSV.

Layout: no header, five fields ``user_id,item_id,category_id,behavior_type,timestamp``, with
``behavior_type`` in ``pv``/``cart``/``fav``/``buy`` and Unix seconds. Mapping (see
``docs/sources.md``):

* ``pv`` → ``click`` (a page view of the item's detail page is the click of the funnel),
  ``cart`` → ``cart``, ``fav`` → ``fav``, ``buy`` → ``purchase``; every event has strength 1.0.
* ``event_id`` = ``tb:<user>:<item>:<behavior>:<timestamp>`` from the typed values, so the same
  line read again (another copy, gzip or not) is a duplicate, not a new event.
* The item table comes from the events: ``category_id`` of the item's last line, ``launch_ts``
  its first event; ``shop_id`` 0, ``price`` 0.0 and ``stock`` 0 are unknown. Users get
  ``signup_ts`` = first event and ``age_band``/``city_tier`` 0 (unknown).

Real dumps are often cut at a byte boundary: the last line of a file that does not end with a
newline is quarantined as truncated (see :class:`shoprec.ingest_readers.Delimited`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA
from shoprec.ingest_readers import Delimited, RawChunk, delimited_chunks
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
    keyless,
    plain_name,
)

CATEGORY = ITEM_SCHEMA.column("category_id")
BEHAVIOR, TIMESTAMP = "behavior_type", "timestamp"
COLUMNS = (USER_KEY, ITEM_KEY, CATEGORY.name, BEHAVIOR, TIMESTAMP)
"""The five fields of a UserBehavior line, in file order."""
BEHAVIORS = {"pv": "click", "cart": "cart", "fav": "fav", "buy": "purchase"}
"""Taobao ``behavior_type`` → contract event type."""
ITEM_DEFAULTS = {"shop_id": 0, "price": 0.0, "stock": 0}
USER_DEFAULTS = {"age_band": 0, "city_tier": 0}
"""Attributes the source does not have; 0 means unknown."""


def default_rows(schema, keys: pd.Index, first_ts: pd.Series, defaults: dict,
                 ts_column: str, **columns: pd.Series) -> pd.DataFrame:
    """Table rows for ``keys``: given ``columns``, the first event time, documented defaults."""
    out = pd.DataFrame({schema.key: keys.to_numpy()})
    for name, values in columns.items():
        out[name] = values.to_numpy()
    out[ts_column] = first_ts.to_numpy()
    for name, value in defaults.items():
        out[name] = value
    return out[schema.names]


class TaobaoSource(Source):
    """UserBehavior.csv (and ``.csv.gz``) files."""

    name = "taobao"
    schema = keyless(EVENT_SCHEMA, CATEGORY)
    gate = HISTORICAL_GATE
    csv = Delimited(",", COLUMNS, strict_end=True)

    def event_files(self, paths: list[Path]) -> list[Path]:
        """``*.csv`` / ``*.csv.gz`` (the dump is ``UserBehavior.csv``)."""
        return [p for p in paths if plain_name(p).endswith(".csv")]

    def chunks(self, path: Path, chunk_rows: int) -> Iterator[RawChunk]:
        """Headerless comma-separated lines; a cut last line comes back as malformed."""
        return delimited_chunks(path, self.csv)

    def prepare(self, chunk: RawChunk) -> Prepared:
        """Translate behaviours; refuse a behaviour Taobao does not define."""
        raw = chunk.frame
        behavior = raw[BEHAVIOR].astype("string[pyarrow]").str.strip()
        mapped = behavior.map(BEHAVIORS)
        bad = mapped.isna().to_numpy()
        reasons = [f"{BEHAVIOR}: missing value" if pd.isna(v) else
                   f"{BEHAVIOR}: unknown Taobao behavior {v!r}; expected one of "
                   f"{list(BEHAVIORS)}" for v in raw[BEHAVIOR][bad].tolist()]
        out = pd.DataFrame({USER_KEY: raw[USER_KEY], ITEM_KEY: raw[ITEM_KEY],
                            CATEGORY.name: raw[CATEGORY.name], EVENT_TYPE: mapped.astype(object),
                            EVENT_TS: raw[TIMESTAMP], STRENGTH: 1.0, BEHAVIOR: behavior})
        return Prepared(out, bad, reasons)

    def finish(self, typed: pd.DataFrame, prepared: pd.DataFrame) -> pd.DataFrame:
        """Derive ``event_id`` from the typed values and the source behaviour code."""
        out = typed.copy()
        out[EVENT_KEY] = composite_ids("tb", [
            typed[USER_KEY], typed[ITEM_KEY], prepared.loc[typed.index, BEHAVIOR],
            epoch_seconds(typed[EVENT_TS])]).to_numpy()
        return out[[*EVENT_SCHEMA.names, CATEGORY.name]]

    def seen(self) -> dict[str, Seen]:
        """Items keep their last category; users and items their first event."""
        return {"items": Seen(ITEM_KEY, (CATEGORY.name,)), "users": Seen(USER_KEY)}

    def tables(self, paths: list[Path], seen: dict[str, Seen]) -> list[SideTable]:
        """Item and user rows derived from the events."""
        items, users = seen["items"].summary(), seen["users"].summary()
        launch = next(c.name for c in ITEM_SCHEMA.columns if c.dtype == "timestamp")
        signup = next(c.name for c in USER_SCHEMA.columns if c.dtype == "timestamp")
        return [
            SideTable(ITEM_SCHEMA, default_rows(ITEM_SCHEMA, items.index, items["first_ts"],
                                                ITEM_DEFAULTS, launch,
                                                **{CATEGORY.name: items[CATEGORY.name]}),
                      "events", (launch,), np.zeros(len(items), dtype=np.int64)),
            SideTable(USER_SCHEMA, default_rows(USER_SCHEMA, users.index, users["first_ts"],
                                                USER_DEFAULTS, signup),
                      "events", (signup,), np.zeros(len(users), dtype=np.int64)),
        ]
