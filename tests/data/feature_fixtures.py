"""Small event stores for the features-stage tests and a synthetic log for the benchmark.

The tiny log is small enough to compute every snapshot value by hand; its dates lie months in
the past on purpose (the online store must still serve them after materialization).
The event store layout is the committed one: ``events/event_date=YYYY-MM-DD/batch-<id>.parquet``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA
from shoprec.settings import Settings

T = pd.Timestamp


def _ts(s: str) -> pd.Timestamp:
    return T(s, tz="UTC")


# (user, item, type, ts, session)
TINY_EVENTS = [
    (1, 10, "impression", "2025-03-01 09:00:00", "s1"),
    (1, 10, "click", "2025-03-01 09:00:05", "s1"),
    (1, 11, "impression", "2025-03-01 09:01:00", "s1"),
    (2, 10, "impression", "2025-03-01 10:00:00", "s2"),
    (1, 12, "impression", "2025-03-02 08:00:00", "s3"),
    (1, 12, "click", "2025-03-02 08:00:03", "s3"),
    (1, 12, "purchase", "2025-03-02 08:00:30", "s3"),
    (1, 11, "impression", "2025-03-02 08:05:00", "s3"),
    (1, 11, "click", "2025-03-02 08:05:02", "s3"),
    (2, 12, "impression", "2025-03-03 12:00:00", "s4"),
    (2, 12, "click", "2025-03-03 12:00:04", "s4"),
    (3, 10, "impression", "2025-03-03 23:59:59", "s5"),
    (2, 11, "impression", "2025-04-10 07:00:00", None),
    (2, 11, "click", "2025-04-10 07:00:09", None),
]
"""User 3's only event is in the last second of 03-03: in the 03-04 snapshot, not 03-03's.
User 1's last events are on 03-02: still in the 04-01 snapshot (30-day window), zero on 04-02
(exit row), absent from 04-03 on."""


def tiny_events() -> pd.DataFrame:
    rows = []
    for i, (u, it, kind, ts, sess) in enumerate(TINY_EVENTS):
        rows.append({"event_id": f"e{i:03d}", "user_id": u, "item_id": it, "event_type": kind,
                     "event_ts": _ts(ts), "session_id": sess,
                     "device": "web" if sess else None, "strength": 1.0})
    return typed_events(pd.DataFrame(rows))


def typed_events(df: pd.DataFrame) -> pd.DataFrame:
    out = df[EVENT_SCHEMA.names].copy()
    for col in EVENT_SCHEMA.columns:
        if col.dtype == "int64":
            out[col.name] = out[col.name].astype("int64")
        elif col.dtype == "float64":
            out[col.name] = out[col.name].astype("float64")
        elif col.dtype == "timestamp":
            out[col.name] = pd.to_datetime(out[col.name], utc=True).astype("datetime64[us, UTC]")
        else:
            out[col.name] = out[col.name].astype("string")
    return out


def tiny_items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": np.array([10, 11, 12], np.int64),
        "category_id": np.array([1, 2, 2], np.int64),
        "shop_id": np.array([100, 100, 101], np.int64),
        "price": [10.0, 30.0, 20.0],
        "launch_ts": [_ts("2025-02-01"), _ts("2025-03-02 12:00"), _ts("2025-01-01")],
        "stock": np.array([5, 0, 7], np.int64),
    })[ITEM_SCHEMA.names]


def tiny_users() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": np.array([1, 2, 3], np.int64), "age_band": np.array([1, 2, 3], np.int64),
        "city_tier": np.array([1, 1, 2], np.int64), "signup_ts": [_ts("2024-12-01")] * 3,
    })[USER_SCHEMA.names]


def write_event_store(settings: Settings, events: pd.DataFrame, batch_id: str = "t1") -> None:
    """Write ``events`` like ingestion commits them: one file per UTC date partition."""
    dates = events["event_ts"].dt.strftime("%Y-%m-%d")
    for date, part in events.groupby(dates):
        d = settings.events_dir / f"event_date={date}"
        d.mkdir(parents=True, exist_ok=True)
        part.reset_index(drop=True).to_parquet(d / f"batch-{batch_id}.parquet", index=False)


def write_tables(settings: Settings, items: pd.DataFrame, users: pd.DataFrame) -> None:
    settings.tables_dir.mkdir(parents=True, exist_ok=True)
    items.to_parquet(settings.tables_dir / "items.parquet", index=False)
    users.to_parquet(settings.tables_dir / "users.parquet", index=False)


def write_tiny(settings: Settings) -> None:
    write_event_store(settings, tiny_events())
    write_tables(settings, tiny_items(), tiny_users())


def synthetic_log(n_events: int, n_users: int = 20_000, n_items: int = 5_000, days: int = 60,
                  seed: int = 7, start: str = "2025-01-01"):
    """A funnel-shaped event log of about ``n_events`` rows plus its item and user tables.

    Every click/cart/fav/purchase follows an impression of the same (user, item, session) a
    few seconds later, as in the real event store.
    """
    rng = np.random.default_rng(seed)
    n_imp = int(n_events / 1.2)
    user = rng.integers(0, n_users, n_imp)
    item = (rng.zipf(1.3, n_imp) - 1) % n_items
    t0 = pd.Timestamp(start, tz="UTC").value
    ts = t0 + rng.integers(0, days * 86_400, n_imp) * 1_000_000_000
    session = (ts // 1_800_000_000_000).astype(np.int64) * 1_000_003 + user
    frames = [pd.DataFrame({"user_id": user, "item_id": item, "event_type": "impression",
                            "ts": ts, "session_id": session})]
    parent = np.flatnonzero(rng.random(n_imp) < 0.12)
    for kind, p, lag in (("click", 1.0, 4), ("fav", 0.3, 20), ("cart", 0.4, 30),
                         ("purchase", 0.25, 60)):
        pick = parent if p == 1.0 else parent[rng.random(len(parent)) < p]
        frames.append(pd.DataFrame({"user_id": user[pick], "item_id": item[pick],
                                    "event_type": kind, "ts": ts[pick] + lag * 1_000_000_000,
                                    "session_id": session[pick]}))
    ev = pd.concat(frames, ignore_index=True)
    ev["event_ts"] = pd.to_datetime(ev.pop("ts"), utc=True)
    ev["event_id"] = [f"s{i}" for i in range(len(ev))]
    ev["session_id"] = ev["session_id"].astype(str)
    ev["device"] = np.array(["ios", "android", "web"])[rng.integers(0, 3, len(ev))]
    ev["strength"] = 1.0
    items = pd.DataFrame({
        "item_id": np.arange(n_items, dtype=np.int64),
        "category_id": rng.integers(0, 50, n_items), "shop_id": rng.integers(0, 300, n_items),
        "price": rng.gamma(2.0, 15.0, n_items).round(2),
        "launch_ts": pd.to_datetime(t0 - rng.integers(0, 400 * 86_400, n_items) * 10**9, utc=True),
        "stock": rng.integers(0, 100, n_items)})
    users = pd.DataFrame({"user_id": np.arange(n_users, dtype=np.int64),
                          "age_band": rng.integers(0, 6, n_users),
                          "city_tier": rng.integers(1, 4, n_users),
                          "signup_ts": pd.to_datetime(t0, utc=True)})
    return typed_events(ev), items[ITEM_SCHEMA.names], users[USER_SCHEMA.names]
