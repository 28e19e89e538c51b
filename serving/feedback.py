"""``/feedback``: validate shop events, land them for the next pipeline run, remember purchases.

Each accepted request becomes ONE new Parquet file::

    $SHOPREC_HOME/landing/events/feedback/dt=YYYY-MM-DD/<uuid>.parquet

with the :data:`~shoprec.contract.EVENT_SCHEMA` columns (so ``shoprec.ingest`` reads it like any
landing file; ``dt=`` is the UTC day the request was received, which is how
``shoprec.intervals.file_day`` assigns it to a run) plus two side columns ingestion ignores:

* ``variant``: the request's A/B variants, ``layer:variant,...`` (:mod:`serving.experiments`);
  the client's value if it sent one, else recomputed from the user id (assignment is a pure
  function of the id), so every stored event carries one. ``serving.ab_report`` reads it.
* ``request_id``: the ``/recommend`` answer the event refers to, if the client sent it.

Event ids are deterministic: ``fb-<16 hex of sha256 over the normalised events>-<n>``, and the
file name is a UUID5 of the same digest, so a client retrying a request (with explicit
``event_ts``) writes the same file with the same ids and ingestion stores nothing twice. Events
without ``event_ts`` get the receipt time. The file is written to a hidden temp name and renamed.

Not done here: pushing the user's fresh counters to the online store. That needs a Feast
``PushSource`` on the user views, which the feature repo does not define yet; until it does,
feedback reaches the features through the next pipeline run.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from serving.experiments import decode
from shoprec.contract import EVENT_SCHEMA, EVENT_TYPES
from shoprec.ingest_store import EVENT_TS, PARTITION_PREFIX, atomic_parquet, partition_dir
from shoprec.ingest_typing import arrow_schema
from shoprec.settings import Settings
from shoprec.utc import as_utc

IMPRESSION, CLICK, PURCHASE = EVENT_TYPES[0], EVENT_TYPES[1], EVENT_TYPES[-1]
"""Funnel steps by their documented position in ``EVENT_TYPES``."""
SIDE_COLUMNS = {"variant": pa.string(), "request_id": pa.string()}
SERVER_DEFAULTS: dict[str, Any] = {"strength": 1.0}
"""Values for required columns a shop front-end rarely knows (``event_ts``: receipt time)."""
MAX_EVENTS = 1000
NAMESPACE = uuid.UUID("5f0c1d2e-8a7b-4c3d-9e1f-2a3b4c5d6e7f")


class InvalidFeedback(ValueError):
    """An event breaks the event schema; the message names the event and the column."""


def feedback_dir(settings: Settings) -> Path:
    """Where ``/feedback`` lands its files (a subfolder of the events landing folder)."""
    return settings.landing_dir / "events" / "feedback"


def _check(i: int, name: str, value: Any) -> Any:
    col = EVENT_SCHEMA.column(name)
    if value is None:
        if col.required:
            raise InvalidFeedback(f"event {i}: {name} is required")
        return None
    if col.dtype == "int64" and (isinstance(value, bool) or not isinstance(value, int | np.integer)
                                 or not -2**63 <= value < 2**63):
        raise InvalidFeedback(f"event {i}: {name} must be a 64-bit integer, got {value!r}")
    if col.dtype == "float64":
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise InvalidFeedback(f"event {i}: {name} must be a finite number, got {value!r}")
        value = float(value)
    if col.dtype == "string":
        if not isinstance(value, str):
            raise InvalidFeedback(f"event {i}: {name} must be a string, got {value!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:  # a lone surrogate from a JSON escape
            raise InvalidFeedback(f"event {i}: {name} is not valid UTF-8 text: {err}") from err
    if col.min_value is not None and value < col.min_value:
        raise InvalidFeedback(f"event {i}: {name} must be >= {col.min_value:g}, got {value!r}")
    if col.allowed is not None and value not in col.allowed:
        raise InvalidFeedback(f"event {i}: {name} must be one of {list(col.allowed)}, "
                              f"got {value!r}")
    return value


def _timestamp(i: int, value: Any, now: datetime) -> pd.Timestamp:
    if value is None:
        return pd.Timestamp(now).tz_convert("UTC")
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise InvalidFeedback(f"event {i}: {EVENT_TS} is not a timestamp: {value!r}") from err
    if ts is pd.NaT:
        raise InvalidFeedback(f"event {i}: {EVENT_TS} is not a timestamp: {value!r}")
    try:  # pandas parses years up to 9999, but the stores hold nanoseconds since 1970
        ts = ts.as_unit("ns")
    except (OverflowError, ValueError) as err:
        raise InvalidFeedback(f"event {i}: {EVENT_TS} {value!r} is outside the storable range "
                              f"{pd.Timestamp.min} to {pd.Timestamp.max}") from err
    return as_utc(ts)


def normalise(events: Sequence[Mapping[str, Any]], now: datetime,
              variant_of: Callable[[int], str]) -> pd.DataFrame:
    """Check events against the schema and return them as typed rows with ids.

    Args:
        events: Dicts with the event columns (``event_id`` is assigned here, not accepted),
            optionally ``variant`` and ``request_id``.
        now: Receipt time, used for events without ``event_ts``.
        variant_of: The current variant string of a user (for events that carry none).

    Raises:
        InvalidFeedback: naming the first bad event and column.
    """
    if not 1 <= len(events) <= MAX_EVENTS:
        raise InvalidFeedback(f"send between 1 and {MAX_EVENTS} events, got {len(events)}")
    allowed = set(EVENT_SCHEMA.names) - {EVENT_SCHEMA.key} | set(SIDE_COLUMNS)
    rows = []
    for i, ev in enumerate(events):
        unknown = sorted(set(ev) - allowed)
        if unknown:
            raise InvalidFeedback(f"event {i}: unknown field(s) {unknown}; allowed: "
                                  f"{sorted(allowed)}")
        row: dict[str, Any] = {}
        for name in EVENT_SCHEMA.names:
            if name == EVENT_SCHEMA.key:
                continue
            if name == EVENT_TS:
                row[name] = _timestamp(i, ev.get(name), now)
            else:
                row[name] = _check(i, name, ev.get(name, SERVER_DEFAULTS.get(name)))
        variant = ev.get("variant")
        if variant is None:
            variant = variant_of(row["user_id"])
        try:
            decode(variant)
        except (TypeError, ValueError, AttributeError) as err:
            raise InvalidFeedback(f"event {i}: {err}") from err
        row["variant"], row["request_id"] = variant, ev.get("request_id")
        rows.append(row)
    canonical = json.dumps([{k: (v.isoformat() if isinstance(v, pd.Timestamp) else v)
                             for k, v in r.items()} for r in rows], sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    frame = pd.DataFrame(rows)
    frame.insert(0, EVENT_SCHEMA.key, [f"fb-{digest[:16]}-{n:04d}" for n in range(len(rows))])
    frame.attrs["digest"] = digest
    return frame


def write_feedback(settings: Settings, frame: pd.DataFrame, now: datetime) -> Path:
    """Write normalised events as one new landing file (atomically); return its path."""
    table = pa.Table.from_pandas(frame[[*EVENT_SCHEMA.names, *SIDE_COLUMNS]],
                                 schema=arrow_schema(EVENT_SCHEMA, SIDE_COLUMNS),
                                 preserve_index=False)
    name = uuid.uuid5(NAMESPACE, frame.attrs["digest"])
    path = feedback_dir(settings) / f"dt={now.astimezone(UTC):%Y-%m-%d}" / f"{name}.parquet"
    atomic_parquet(table, path)
    return path


class PurchaseMemory:
    """Recent purchases per user, for the already-purchased filter (thread-safe, bounded).

    Filled at startup by :func:`recent_purchases` and kept current by ``/feedback``. Only the
    newest ``per_user`` items of a user are kept.
    """

    def __init__(self, window_days: int, per_user: int = 200) -> None:
        """An empty memory."""
        self.window = pd.Timedelta(days=window_days)
        self.per_user = per_user
        self._items: dict[int, OrderedDict[int, pd.Timestamp]] = {}
        self._lock = threading.Lock()

    def add(self, user_id: int, item_id: int, ts: pd.Timestamp) -> None:
        """Remember one purchase (a later one of the same item refreshes it)."""
        with self._lock:
            items = self._items.setdefault(int(user_id), OrderedDict())
            if item_id in items and items[item_id] >= ts:
                return
            items.pop(int(item_id), None)
            items[int(item_id)] = ts
            while len(items) > self.per_user:
                items.popitem(last=False)

    def add_frame(self, frame: pd.DataFrame) -> int:
        """Remember the purchase rows of an event frame; return how many there were."""
        buys = frame[frame["event_type"] == PURCHASE].sort_values(EVENT_TS)
        for user, item, ts in zip(buys["user_id"], buys["item_id"], buys[EVENT_TS], strict=True):
            self.add(int(user), int(item), ts)
        return len(buys)

    def items(self, user_id: int, now: datetime) -> set[int]:
        """Items ``user_id`` bought within the window before ``now``."""
        since = pd.Timestamp(now).tz_convert("UTC") - self.window
        with self._lock:
            return {i for i, ts in self._items.get(int(user_id), {}).items() if ts >= since}


def recent_purchases(settings: Settings, since: pd.Timestamp) -> pd.DataFrame:
    """Purchases since ``since``: committed events plus landed feedback not yet ingested.

    Only ``user_id``, ``item_id``, ``event_type``, ``event_ts`` of purchase rows are read, with
    partition pruning on the event date and the feedback ``dt=`` folders.
    """
    import pyarrow.parquet as pq

    cols = ["user_id", "item_id", "event_type", EVENT_TS]
    day = since.strftime("%Y-%m-%d")
    first = partition_dir(settings, day).name
    parts = [p for p in sorted(settings.events_dir.glob(f"{PARTITION_PREFIX}*")) if p.name >= first]
    parts += [p for p in sorted(feedback_dir(settings).glob("dt=*")) if p.name >= f"dt={day}"]
    files = [f for part in parts for f in sorted(part.glob("*.parquet"))]
    tables = [pq.read_table(f, columns=cols, filters=[("event_type", "=", PURCHASE)])
              for f in files]
    if not tables:
        return pd.DataFrame({c: [] for c in cols})
    df = pa.concat_tables(tables, promote_options="default").to_pandas()
    return df[df[EVENT_TS] >= since].reset_index(drop=True)
