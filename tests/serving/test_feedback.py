"""serving.feedback: schema checks, deterministic ids, ingestible landing files, purchases."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow.parquet as pq
import pytest

from serving.feedback import (
    InvalidFeedback,
    PurchaseMemory,
    feedback_dir,
    normalise,
    recent_purchases,
    write_feedback,
)
from shoprec.contract import EVENT_SCHEMA
from shoprec.ingest import stage_files
from shoprec.ingest_store import atomic_parquet, partition_dir
from shoprec.ingest_typing import arrow_schema
from shoprec.intervals import resolve, select_files
from shoprec.settings import Settings

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
EVENTS = [
    {"user_id": 7, "item_id": 1003, "event_type": "impression", "variant": "ranker:champion",
     "request_id": "r1", "event_ts": "2026-03-04T11:59:00Z"},
    {"user_id": 7, "item_id": 1003, "event_type": "click", "device": "ios"},
    {"user_id": 8, "item_id": 1006, "event_type": "purchase", "strength": 2.5},
]


def variant_of(user: int) -> str:
    return f"ranker:u{user}"


def test_normalise_fills_defaults_ids_and_variants() -> None:
    df = normalise(EVENTS, NOW, variant_of)
    assert list(df.columns) == [*EVENT_SCHEMA.names, "variant", "request_id"]
    assert df["event_ts"].tolist() == [pd.Timestamp("2026-03-04T11:59:00Z"),
                                       pd.Timestamp(NOW), pd.Timestamp(NOW)]
    assert df["strength"].tolist() == [1.0, 1.0, 2.5]
    assert df["variant"].tolist() == ["ranker:champion", "ranker:u7", "ranker:u8"]
    assert df["request_id"].tolist() == ["r1", None, None]
    assert df["device"].tolist() == [None, "ios", None]
    ids = df["event_id"].tolist()
    assert len(set(ids)) == 3 and all(i.startswith("fb-") for i in ids)
    assert normalise(EVENTS, NOW, variant_of)["event_id"].tolist() == ids  # deterministic
    other = normalise(EVENTS[:2], NOW, variant_of)["event_id"].tolist()
    assert set(other).isdisjoint(ids)  # another request, other ids


@pytest.mark.parametrize("event,message", [
    ({"user_id": 7, "item_id": 1, "event_type": "like"}, "event 0: event_type must be one of"),
    ({"user_id": -1, "item_id": 1, "event_type": "click"}, "event 0: user_id must be >= 0"),
    ({"user_id": True, "item_id": 1, "event_type": "click"}, "user_id must be a 64-bit integer"),
    ({"item_id": 1, "event_type": "click"}, "event 0: user_id is required"),
    ({"user_id": 1, "item_id": 1, "event_type": "click", "strength": float("nan")},
     "strength must be a finite number"),
    ({"user_id": 1, "item_id": 1, "event_type": "click", "device": "fax"},
     "device must be one of"),
    ({"user_id": 1, "item_id": 1, "event_type": "click", "event_id": "x"},
     r"unknown field\(s\) \['event_id'\]"),
    ({"user_id": 1, "item_id": 1, "event_type": "click", "variant": "bad"},
     "is not a distinct 'layer:variant' pair"),
    ({"user_id": 1, "item_id": 1, "event_type": "click", "event_ts": "yesterday"},
     "event_ts is not a timestamp"),
    ({"user_id": 1, "item_id": 1, "event_type": "click", "event_ts": "9999-12-31T23:59:59"},
     "event_ts '9999-12-31T23:59:59' is outside the storable range"),
    ({"user_id": 1, "item_id": 1, "event_type": "click", "event_ts": "0001-01-01T00:00:00"},
     "event_ts '0001-01-01T00:00:00' is outside the storable range"),
])
def test_bad_events_are_named(event: dict, message: str) -> None:
    with pytest.raises(InvalidFeedback, match=message):
        normalise([event], NOW, variant_of)


def test_event_count_is_bounded() -> None:
    with pytest.raises(InvalidFeedback, match="send between 1 and 1000 events, got 0"):
        normalise([], NOW, variant_of)


def test_landing_file_is_ingested_like_any_other(settings: Settings) -> None:
    df = normalise(EVENTS, NOW, variant_of)
    path = write_feedback(settings, df, NOW)
    assert path.parent == feedback_dir(settings) / "dt=2026-03-04"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    stored = pq.read_table(path).to_pandas()
    assert stored["variant"].tolist() == df["variant"].tolist()
    # The pipeline's ingest task picks it for its day and stages every row.
    day = resolve(None, None, "2026-03-04")
    assert select_files(settings.landing_dir / "events", day) == [path]
    report = stage_files([path], settings, "2026-03-04")
    assert (report.read, report.staged, report.quarantined) == (3, 3, 0)
    staged = pd.read_parquet(report.path)
    assert staged["event_id"].tolist() == df["event_id"].tolist()


def test_a_retried_request_rewrites_the_same_file(settings: Settings) -> None:
    first = write_feedback(settings, normalise(EVENTS[:1], NOW, variant_of), NOW)
    again = write_feedback(settings, normalise(EVENTS[:1], NOW, variant_of), NOW)
    other = write_feedback(settings, normalise(EVENTS[1:], NOW, variant_of), NOW)
    assert first == again != other
    assert len(list(first.parent.glob("*.parquet"))) == 2


def test_purchase_memory_window_and_bound() -> None:
    mem = PurchaseMemory(window_days=30, per_user=2)
    mem.add(1, 10, pd.Timestamp("2026-01-01", tz="UTC"))  # 62 days before NOW
    mem.add(1, 11, pd.Timestamp("2026-03-01", tz="UTC"))
    assert mem.items(1, NOW) == {11}
    mem.add(1, 12, pd.Timestamp("2026-03-02", tz="UTC"))
    mem.add(1, 13, pd.Timestamp("2026-03-03", tz="UTC"))  # bound 2: 10 and 11 are forgotten
    assert mem.items(1, NOW) == {12, 13} and mem.items(2, NOW) == set()
    assert mem.add_frame(normalise(EVENTS, NOW, variant_of)) == 1
    assert mem.items(8, NOW) == {1006}


def test_recent_purchases_read_committed_events_and_landed_feedback(settings: Settings) -> None:
    committed = pd.DataFrame({
        "event_id": ["a", "b", "c"], "user_id": [1, 1, 2], "item_id": [10, 11, 12],
        "event_type": ["purchase", "click", "purchase"],
        "event_ts": pd.to_datetime(["2026-03-01", "2026-03-01", "2026-01-01"], utc=True),
        "session_id": [None] * 3, "device": [None] * 3, "strength": [1.0] * 3})
    for day, rows in committed.groupby(committed["event_ts"].dt.strftime("%Y-%m-%d")):
        import pyarrow as pa

        atomic_parquet(pa.Table.from_pandas(rows, schema=arrow_schema(EVENT_SCHEMA),
                                            preserve_index=False),
                       partition_dir(settings, day) / "batch-x.parquet")
    write_feedback(settings, normalise(EVENTS, NOW, variant_of), NOW)
    got = recent_purchases(settings, pd.Timestamp("2026-02-15", tz="UTC"))
    # 2026-01-01 is before the window; the click is not a purchase.
    assert sorted(zip(got["user_id"], got["item_id"], strict=True)) == [(1, 10), (8, 1006)]
    assert recent_purchases(Settings(home=settings.home / "empty"),
                            pd.Timestamp("2026-02-15", tz="UTC")).empty
