"""Streaming freshness: push a user's recomputed features the moment new events arrive.

The batch path refreshes the online store when the features DAG materializes new snapshot
days. Between runs, :func:`push_events` takes a handful of new events, recomputes the rows of
the affected entities with the *same* builder code (``feature_repo.build.view_snapshots``
interpreting the contract recipes, so online values cannot drift from training values) and
writes them through each view's Feast ``PushSource`` (``PushMode.ONLINE``).

What is pushed is the snapshot row the batch builder will produce for the next midnight
(day ``D + 1`` for ``now`` on day ``D``): every window ends at that midnight, so it counts the
stored events plus the new ones up to ``now``. It carries that snapshot's timestamp, so when the
features DAG later materializes the same day (with the events committed meanwhile) it replaces
the pushed row by the identical batch row. New events are unioned with the committed ones and
de-duplicated by ``event_id``: pushing an event again, or after ingestion committed it, counts
it once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.events import day_numbers, day_timestamps
from feature_repo.push_sources import push_source_name, pushable_views
from shoprec.contract import EVENT_SCHEMA, Contract
from shoprec.settings import Settings
from shoprec.utc import as_utc

_TS = EVENT_SCHEMA.column("event_ts").name


def clean_events(events: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Return ``events`` typed as :data:`EVENT_SCHEMA`, or raise naming what is wrong.

    Rejected rather than quarantined: the pushed events are a copy of what ingestion also
    receives, and ingestion keeps (or quarantines with a reason) every row.

    Raises:
        ValueError: a required column is missing, a value cannot be typed, a required value is
            null, a value is below its minimum or outside its allowed set, or an event is
            later than ``now``; the message names the column and the first offending row.
    """
    missing = [c.name for c in EVENT_SCHEMA.columns if c.required and c.name not in events]
    if missing:
        raise ValueError(f"pushed events lack required columns {missing}")
    out = pd.DataFrame(index=events.index)
    for col in EVENT_SCHEMA.columns:
        raw = events[col.name] if col.name in events else pd.Series(None, index=events.index,
                                                                    dtype=object)
        if col.required and raw.isna().any():
            raise ValueError(f"pushed events: {col.name!r} is null in row {raw.isna().idxmax()}")
        try:
            if col.dtype == "timestamp":
                typed = pd.to_datetime(raw, utc=True).astype("datetime64[ns, UTC]")
            elif col.dtype in ("int64", "float64"):
                typed = pd.to_numeric(raw, errors="raise").astype(col.dtype)
            else:
                typed = raw.astype("string")
        except (TypeError, ValueError) as err:
            raise ValueError(f"pushed events: {col.name!r} is not {col.dtype}: {err}") from err
        bad = pd.Series(False, index=events.index)
        if col.min_value is not None:
            bad |= typed < col.min_value
        if col.allowed is not None:
            bad |= typed.notna() & ~typed.isin(col.allowed)
        if bad.any():
            row = bad.idxmax()
            raise ValueError(f"pushed events: {col.name!r} value {raw[row]!r} in row {row} is "
                             f"not allowed (min {col.min_value}, allowed {col.allowed})")
        out[col.name] = typed
    late = out[_TS] > now
    if late.any():
        raise ValueError(f"pushed events: {int(late.sum())} event(s) are later than now={now}, "
                         f"e.g. row {late.idxmax()} at {out[_TS][late.idxmax()]}")
    return out.reset_index(drop=True)


def _lookback_days(contract: Contract, views: list[str]) -> int | None:
    """Longest event window of ``views`` (``None``: some recipe has no window, read all)."""
    windows = [getattr(f.recipe, "window_days", None) for v in views
               for f in contract.view_features(v) if hasattr(f.recipe, "events")]
    return None if any(w is None for w in windows) else max(windows, default=0) + 1


def _read_events(files: list[Path], key: str, ids: np.ndarray) -> pd.DataFrame:
    """The :data:`EVENT_SCHEMA` columns of ``files``' rows of entities ``ids``."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    arrow = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "timestamp": pa.timestamp("ns", tz="UTC")}
    schema = pa.schema([(c.name, arrow[c.dtype]) for c in EVENT_SCHEMA.columns])
    if not files:
        return schema.empty_table().to_pandas()
    table = ds.dataset([str(f) for f in files], format="parquet", schema=schema).to_table(
        filter=ds.field(key).isin(pa.array(ids, pa.int64())))
    return table.to_pandas()


def _stored_events(settings: Settings, key: str, ids: np.ndarray, first_day: int | None,
                   pending: tuple[Path, ...]) -> pd.DataFrame:
    """Events of ``ids`` from partitions on or after ``first_day``.

    Committed ones first, then those landed in ``pending`` folders (``dt=YYYY-MM-DD``
    partitions) but not ingested yet.
    """
    first = None if first_day is None else str(np.datetime64(first_day, "D"))

    def since(files: list[Path]) -> list[Path]:
        return [f for f in files if first is None or f.parent.name.split("=", 1)[1] >= first]

    committed = since(sorted(settings.events_dir.glob("event_date=*/*.parquet")))
    landed = since(sorted(f for d in pending for f in Path(d).glob("dt=*/*.parquet")))
    return pd.concat([_read_events(committed, key, ids), _read_events(landed, key, ids)],
                     ignore_index=True)


def push_events(settings: Settings, contract: Contract, store: Any, events: pd.DataFrame, *,
                now: pd.Timestamp | None = None, entity: str = "user",
                pending: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Recompute the ``entity`` views of the entities in ``events`` and push them online.

    Args:
        settings: Locations (committed events, catalogue tables).
        contract: Views, features and recipes.
        store: The open ``FeatureStore`` whose pushable views have PushSources
            (``feature_repo.store.apply`` registers them).
        events: New events, :data:`EVENT_SCHEMA` columns, possibly not committed yet.
        now: The current instant (UTC); default the wall clock. No event may be later.
        entity: Contract entity whose views are recomputed.
        pending: Landing folders (``dt=YYYY-MM-DD/*.parquet``, event columns) of events that
            are stored but not ingested yet, e.g. earlier ``/feedback`` batches: without them a
            second push before the next pipeline run would forget the first one's events.

    Returns:
        ``snapshot_ts`` (ISO), ``seconds`` taken, and per view the pushed ``rows``.

    Raises:
        ValueError: for bad events (see :func:`clean_events`).
        KeyError: if ``entity`` is not a contract entity.
    """
    from feast.data_source import PushMode

    started = time.perf_counter()
    now = pd.Timestamp.now(tz="UTC") if now is None else as_utc(now)
    new = clean_events(events, now)
    views = pushable_views(contract, entity)
    snap_day = int(day_numbers(pd.Series([now]))[0]) + 1
    snap_ts = day_timestamps(np.array([snap_day]))[0]
    report: dict[str, Any] = {"snapshot_ts": snap_ts.isoformat(), "views": {}}
    if new.empty or not views:
        report["seconds"] = time.perf_counter() - started
        return report
    key = contract.entity(entity).join_key
    ids = new[key].unique()
    lookback = _lookback_days(contract, views)
    stored = _stored_events(settings, key, ids, None if lookback is None
                            else snap_day - lookback, pending)
    if len(stored):  # committed rows first: a re-pushed or since-committed event counts once
        new = new.astype(stored.dtypes.to_dict())
        both = pd.concat([stored, new], ignore_index=True).drop_duplicates("event_id")
    else:
        both = new.drop_duplicates("event_id")
    both = both[both[_TS] < snap_ts].reset_index(drop=True)
    from feature_repo.build import BuildInputs, view_snapshots

    inputs = BuildInputs(settings, contract, events=both)  # the batch builder, on these rows
    inputs.lo = inputs.hi = snap_day
    for view in views:
        frame = view_snapshots(contract.view(view), contract, inputs)
        frame = frame[frame[key].isin(ids)].reset_index(drop=True)
        if not frame.empty:
            store.push(push_source_name(view), frame, to=PushMode.ONLINE)
        report["views"][view] = {"rows": len(frame)}
    report["seconds"] = time.perf_counter() - started
    return report
