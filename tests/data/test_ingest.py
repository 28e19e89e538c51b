"""Ingestion against a catalogue of real bad inputs: every row is staged or quarantined with a
reason, the ledger balances, commits deduplicate and are idempotent, partitions follow the date.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

import shoprec.ingest_delimited as delimited
import shoprec.ingest_readers as readers
from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA
from shoprec.generator import GeneratorConfig, generate
from shoprec.ingest import commit_batch, ingest_tables, read_events, stage_files
from shoprec.quarantine import ledger_path, read_quarantine, update_ledger
from shoprec.settings import Settings

MIDNIGHT = 1_790_812_800  # 2026-10-01T00:00:00Z in epoch seconds


def row(n: int, **over: object) -> dict[str, object]:
    """A valid raw event; ``over`` replaces fields (``None`` drops the value)."""
    base = {"event_id": f"e{n}", "user_id": str(n), "item_id": str(100 + n),
            "event_type": "click", "event_ts": f"2026-10-01T10:00:{n % 60:02d}Z",
            "session_id": "s1", "device": "web", "strength": "1.0"}
    base.update(over)
    return base


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    columns = columns or EVENT_SCHEMA.names
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r[c] for c in columns])
    return path


def ledger(settings: Settings, batch_id: str) -> dict:
    return json.loads(ledger_path(settings, batch_id).read_text())


def staged(settings: Settings, batch_id: str) -> pd.DataFrame:
    return pd.read_parquet(settings.staging_dir / f"{batch_id}.parquet")


def assert_balanced(settings: Settings, batch_id: str) -> None:
    rec = ledger(settings, batch_id)
    assert rec["read"] == rec["staged"] + rec["quarantined_ingest"]
    if "stored" in rec:
        assert rec["balanced"] is True


# --------------------------------------------------------------------------------- staging


def test_clean_csv_is_typed_to_the_contract(settings: Settings, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "ok.csv", [
        row(1, event_ts="2026-10-01T12:30:00+02:00"),  # offset → UTC
        row(2, event_ts=str(MIDNIGHT + 7200)),  # epoch seconds → 02:00 UTC
        row(3, event_ts="2026-10-01 08:00:00", session_id=None, device=None),  # naive = UTC
    ])
    report = stage_files([f], settings, "b1")
    assert (report.read, report.staged, report.quarantined) == (3, 3, 0)
    assert report.quarantine is None
    df = staged(settings, "b1")
    assert list(df.columns) == [*EVENT_SCHEMA.names, "source_file", "source_line"]
    assert df["event_ts"].tolist() == [pd.Timestamp("2026-10-01T10:30Z"),
                                       pd.Timestamp("2026-10-01T02:00Z"),
                                       pd.Timestamp("2026-10-01T08:00Z")]
    assert str(df["event_ts"].dtype) == "datetime64[ns, UTC]"
    assert df["user_id"].dtype == "int64" and df["strength"].dtype == "float64"
    assert df["user_id"].tolist() == [1, 2, 3]
    assert df["session_id"].isna().tolist() == [False, False, True]
    assert df["source_line"].tolist() == [1, 2, 3]
    assert set(df["source_file"]) == {str(f)}
    assert_balanced(settings, "b1")


@pytest.mark.parametrize(("bad", "reason"), [
    ({"user_id": "abc"}, "user_id: not an integer: 'abc'"),
    ({"item_id": "12.5"}, "item_id: not an integer: '12.5'"),
    ({"item_id": "-4"}, "item_id: negative value: '-4'"),
    ({"event_ts": "yesterday"}, "event_ts: unparseable timestamp: 'yesterday'"),
    ({"event_ts": "2026-13-45"}, "event_ts: unparseable timestamp: '2026-13-45'"),
    ({"event_ts": "99999999999"}, "event_ts: epoch seconds out of range: '99999999999'"),
    ({"strength": "strong"}, "strength: not a number: 'strong'"),
    ({"event_id": None}, "event_id: missing value"),
    ({"event_ts": "  "}, "event_ts: missing value"),
    ({"user_id": "x", "strength": None}, "user_id: not an integer: 'x'; strength: missing value"),
])
def test_untypable_values_are_quarantined_with_column_and_value(
        settings: Settings, tmp_path: Path, bad: dict, reason: str) -> None:
    f = write_csv(tmp_path / "mixed.csv", [row(1), row(2, **bad), row(3)])
    report = stage_files([f], settings, "b1")
    assert (report.read, report.staged, report.quarantined) == (3, 2, 1)
    q = read_quarantine(settings, "b1")
    assert q["reason"].tolist() == [reason]
    assert q["source_line"].tolist() == ["2"]
    assert q["event_id"].fillna("<null>").tolist() == ["<null>" if "event_id" in bad else "e2"]
    for col, value in bad.items():  # the raw text is kept as it arrived (empty = null)
        kept = q[col].iloc[0]
        assert pd.isna(kept) if value is None else kept == value, (col, kept)
    assert staged(settings, "b1")["event_id"].tolist() == ["e1", "e3"]
    assert_balanced(settings, "b1")


def test_semantic_problems_are_left_to_validation(settings: Settings, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "semantic.csv", [
        row(1, event_type="teleport"), row(2, device="fax"), row(3, strength="-2"),
        row(4, event_ts="1999-01-01T00:00:00Z")])
    report = stage_files([f], settings, "b1")
    assert (report.staged, report.quarantined) == (4, 0)
    assert staged(settings, "b1")["strength"].tolist() == [1.0, 1.0, -2.0, 1.0]


def test_missing_required_column_quarantines_every_row_of_that_file(
        settings: Settings, tmp_path: Path) -> None:
    columns = [c for c in EVENT_SCHEMA.names if c != "user_id"]
    no_user = write_csv(tmp_path / "no_user.csv", [row(1), row(2), row(3)], columns)
    good = write_csv(tmp_path / "good.csv", [row(4)])
    report = stage_files([no_user, good], settings, "b1")
    assert (report.read, report.staged, report.quarantined) == (4, 1, 3)
    q = read_quarantine(settings, "b1")
    assert q["reason"].unique().tolist() == ["missing required column 'user_id'"]
    assert q["event_id"].tolist() == ["e1", "e2", "e3"]
    assert q["item_id"].tolist() == ["101", "102", "103"]
    assert q["source_line"].tolist() == ["1", "2", "3"]
    assert set(q["source_file"]) == {str(no_user)}
    assert_balanced(settings, "b1")


def test_missing_optional_columns_are_filled_with_nulls(settings: Settings, tmp_path: Path) -> None:
    columns = [c.name for c in EVENT_SCHEMA.columns if c.required]
    f = write_csv(tmp_path / "minimal.csv", [row(1), row(2)], columns)
    assert stage_files([f], settings, "b1").staged == 2
    df = staged(settings, "b1")
    optional = [c.name for c in EVENT_SCHEMA.columns if not c.required]
    assert optional and df[optional].isna().all().all()


def test_malformed_csv_rows_are_quarantined_with_their_text(
        settings: Settings, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "ragged.csv", [row(1), row(2)])
    with open(f, "a") as out:
        out.write("e3,3,103,click,2026-10-01T10:00:03Z,s1,web,1.0,EXTRA\n")
        out.write("e4,4\n")
        out.write('e5,5,105,click,2026-10-01T10:00:05Z,"multi\nline",web,1.0\n')
    report = stage_files([f], settings, "b1")
    assert (report.read, report.staged, report.quarantined) == (5, 3, 2)
    q = read_quarantine(settings, "b1")
    assert q["reason"].tolist() == ["malformed CSV row: expected 8 fields, got 9",
                                    "malformed CSV row: expected 8 fields, got 2"]
    assert q["raw"].tolist() == ["e3,3,103,click,2026-10-01T10:00:03Z,s1,web,1.0,EXTRA", "e4,4"]
    assert q["source_line"].tolist() == ["3", "4"]
    df = staged(settings, "b1")
    assert df["source_line"].tolist() == [1, 2, 5]
    assert df["session_id"].iloc[2] == "multi\nline"


def test_empty_and_header_only_files_are_counted_and_noted(
        settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header_only = write_csv(tmp_path / "header.csv", [])
    empty_gz = tmp_path / "empty.csv.gz"
    with gzip.open(empty_gz, "wb"):
        pass
    good = write_csv(tmp_path / "good.csv", [row(1)])
    report = stage_files([empty, header_only, empty_gz, good], settings, "b1")
    assert (report.files, report.read, report.staged, report.quarantined) == (4, 1, 1, 0)
    assert report.notes == ["empty.csv: empty file", "header.csv: no rows",
                            "empty.csv.gz: empty file"]
    assert "note: empty.csv: empty file" in str(report)
    assert_balanced(settings, "b1")


def test_only_empty_files_stage_an_empty_batch(settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    report = stage_files([empty], settings, "b1")
    assert (report.read, report.staged) == (0, 0)
    df = staged(settings, "b1")
    assert df.empty and list(df.columns) == [*EVENT_SCHEMA.names, "source_file", "source_line"]
    commit = commit_batch(settings, "b1")
    assert (commit.stored, commit.duplicates, commit.partitions) == (0, 0, [])
    assert ledger(settings, "b1")["balanced"] is True


def test_gzip_csv_stages_like_plain_csv(settings: Settings, tmp_path: Path) -> None:
    rows = [row(1), row(2, user_id="bad"), row(3)]
    plain = write_csv(tmp_path / "a.csv", rows)
    zipped = write_csv(tmp_path / "a.csv.gz", rows)
    stage_files([plain], settings, "plain")
    stage_files([zipped], settings, "zipped")
    a, b = staged(settings, "plain"), staged(settings, "zipped")
    pd.testing.assert_frame_equal(a.drop(columns="source_file"), b.drop(columns="source_file"))
    assert read_quarantine(settings, "zipped")["reason"].tolist() == \
        ["user_id: not an integer: 'bad'"]


def test_jsonl_with_numbers_nulls_and_broken_lines(settings: Settings, tmp_path: Path) -> None:
    lines = [
        json.dumps({**row(1), "user_id": 1, "item_id": 101, "strength": 2.5,
                    "event_ts": MIDNIGHT + 60}),  # JSON numbers, epoch seconds
        "",  # blank line: not a row
        '{"event_id": "e2", "user_id": ',  # broken JSON
        json.dumps([1, 2, 3]),  # not an object
        json.dumps({k: v for k, v in row(5).items() if k != "item_id"}),  # key absent
        json.dumps({**row(6), "user_id": True}),
        json.dumps({**row(7), "user_id": 7.0, "device": None}),
    ]
    f = tmp_path / "events.jsonl.gz"
    with gzip.open(f, "wt") as out:
        out.write("\n".join(lines) + "\n")
    report = stage_files([f], settings, "b1")
    assert (report.read, report.staged, report.quarantined) == (6, 2, 4)
    q = read_quarantine(settings, "b1").sort_values("source_line", key=lambda s: s.astype(int))
    assert q["source_line"].tolist() == ["3", "4", "5", "6"]
    assert q["reason"].tolist() == [
        "invalid JSON: Expecting value at column 31", "not a JSON object: list",
        "item_id: missing value", "user_id: not an integer: True"]
    assert q["raw"].iloc[0] == '{"event_id": "e2", "user_id": '
    df = staged(settings, "b1")
    assert df["event_id"].tolist() == ["e1", "e7"]
    assert df["user_id"].tolist() == [1, 7]
    assert df["strength"].tolist() == [2.5, 1.0]
    assert df["event_ts"].iloc[0] == pd.Timestamp("2026-10-01T00:01:00Z")
    assert df["source_line"].tolist() == [1, 7]
    assert pd.isna(df["device"].iloc[1])
    assert_balanced(settings, "b1")


def test_typed_parquet_input_with_nulls_and_naive_times(settings: Settings, tmp_path: Path) -> None:
    f = tmp_path / "typed.parquet"
    pd.DataFrame({
        "event_id": ["e1", "e2", "e3"], "user_id": [1.0, None, 3.0], "item_id": [101, 102, -1],
        "event_type": ["click"] * 3,
        "event_ts": pd.to_datetime(["2026-10-01 10:00", "2026-10-01 11:00", "2026-10-02 00:00"]),
        "session_id": ["s", None, "s"], "device": ["ios"] * 3, "strength": [1.0, 1.0, 0.5],
    }).to_parquet(f)
    report = stage_files([f], settings, "b1")
    assert (report.read, report.staged, report.quarantined) == (3, 1, 2)
    assert read_quarantine(settings, "b1")["reason"].tolist() == [
        "user_id: missing value", "item_id: negative value: -1"]
    df = staged(settings, "b1")
    assert df["user_id"].tolist() == [1]
    assert df["event_ts"].tolist() == [pd.Timestamp("2026-10-01T10:00Z")]


def test_big_csv_is_read_in_chunks_with_exact_line_numbers(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delimited, "CSV_BLOCK_BYTES", 4096)  # ~60 rows per chunk
    rows = [row(i, user_id="oops" if i % 97 == 0 else str(i)) for i in range(1, 2001)]
    f = write_csv(tmp_path / "big.csv", rows)
    with open(f, "a") as out:
        out.write("e2001,1\n")
    chunks = list(readers.read_chunks(f))
    assert len(chunks) > 20
    report = stage_files([f], settings, "b1")
    assert (report.read, report.staged, report.quarantined) == (2001, 1980, 21)
    df = staged(settings, "b1")
    assert (df["source_line"] == df["event_id"].str[1:].astype(int)).all()
    q = read_quarantine(settings, "b1")
    assert sorted(q["source_line"].astype(int)) == [*range(97, 2001, 97), 2001]


def test_bad_paths_fail_before_anything_is_staged(settings: Settings, tmp_path: Path) -> None:
    odd = tmp_path / "events.xlsx"
    odd.write_text("x")
    with pytest.raises(ValueError, match=r"events\.xlsx: unsupported file type"):
        stage_files([odd], settings, "b1")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        stage_files([tmp_path / "nope.csv"], settings, "b1")
    with pytest.raises(ValueError, match="invalid batch id '../x'"):
        stage_files([], settings, "../x")
    twice = tmp_path / "twice.csv"
    twice.write_text("event_id,user_id,user_id\ne1,1,2\n")
    with pytest.raises(ValueError, match=r"repeated column\(s\) in the CSV header: \['user_id'\]"):
        stage_files([twice], settings, "b1")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match=r"broken\.parquet: cannot read as parquet"):
        stage_files([broken], settings, "b1")
    assert not (settings.staging_dir / "b1.parquet").exists()
    assert not list(settings.staging_dir.glob(".*tmp"))


def test_restaging_a_batch_replaces_its_files(settings: Settings, tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", [row(1, user_id="x"), row(2)])
    stage_files([bad], settings, "b1")
    assert len(read_quarantine(settings, "b1")) == 1
    good = write_csv(tmp_path / "good.csv", [row(3), row(4), row(5)])
    report = stage_files([good], settings, "b1")
    assert report.read == 3 and read_quarantine(settings, "b1").empty
    assert staged(settings, "b1")["event_id"].tolist() == ["e3", "e4", "e5"]
    assert ledger(settings, "b1")["read"] == 3


# --------------------------------------------------------------------------------- commit


def test_commit_partitions_by_utc_event_date(settings: Settings, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "days.csv", [
        row(1, event_ts="2026-10-01T23:59:59Z"),
        row(2, event_ts="2026-10-02T01:30:00+02:00"),  # = 2026-10-01T23:30Z
        row(3, event_ts="2026-10-02T00:00:00Z"),
        row(4, event_ts=str(MIDNIGHT + 2 * 86400 + 5)),  # 2026-10-03T00:00:05Z
    ])
    stage_files([f], settings, "b1")
    report = commit_batch(settings, "b1")
    assert report.partitions == ["2026-10-01", "2026-10-02", "2026-10-03"]
    assert (report.stored, report.duplicates) == (4, 0)
    by_part = {p.parent.name: pd.read_parquet(p)["event_id"].tolist()
               for p in settings.events_dir.glob("*/*.parquet")}
    assert by_part == {"event_date=2026-10-01": ["e2", "e1"], "event_date=2026-10-02": ["e3"],
                       "event_date=2026-10-03": ["e4"]}
    assert ledger(settings, "b1")["balanced"] is True
    # read_events prunes by partition and filters [start, end)
    assert read_events(settings)["event_id"].tolist() == ["e2", "e1", "e3", "e4"]
    assert read_events(settings, "2026-10-02", "2026-10-03")["event_id"].tolist() == ["e3"]
    window = read_events(settings, pd.Timestamp("2026-10-01T23:45Z"), "2026-10-02",
                         columns=["event_id", "user_id"])
    assert window.to_dict("list") == {"event_id": ["e1"], "user_id": [1]}
    assert window["user_id"].dtype == "int64"
    with pytest.raises(ValueError, match=r"unknown event column\(s\) \['colour'\]"):
        read_events(settings, columns=["colour"])


def test_reingesting_the_same_file_stores_nothing(settings: Settings, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "a.csv", [row(1), row(2), row(3, user_id="bad")])
    stage_files([f], settings, "first")
    assert commit_batch(settings, "first").stored == 2
    stage_files([f], settings, "second")
    again = commit_batch(settings, "second")
    assert (again.stored, again.duplicates, again.partitions) == (0, 2, [])
    rec = ledger(settings, "second")
    assert (rec["read"], rec["stored"], rec["duplicates"], rec["quarantined_ingest"]) == \
        (3, 0, 2, 1)
    assert rec["balanced"] is True
    assert len(read_events(settings)) == 2


def test_retried_commit_is_idempotent(settings: Settings, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "a.csv", [row(1), row(2), row(1, user_id="99")])  # e1 twice
    stage_files([f], settings, "b1")
    first = commit_batch(settings, "b1")
    files = {p: p.read_bytes() for p in settings.events_dir.rglob("*.parquet")}
    second = commit_batch(settings, "b1")
    assert (first.stored, first.duplicates) == (second.stored, second.duplicates) == (2, 1)
    assert {p: p.read_bytes() for p in settings.events_dir.rglob("*.parquet")} == files
    events = read_events(settings)
    assert events.set_index("event_id")["user_id"].to_dict() == {"e1": 1, "e2": 2}  # first kept
    assert ledger(settings, "b1")["balanced"] is True


def test_commit_of_validated_rows_and_conservation_check(
        settings: Settings, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "a.csv", [row(1), row(2), row(3, event_type="teleport")])
    stage_files([f], settings, "b1")
    df = staged(settings, "b1")
    # what the validation stage does: quarantine a row and record it
    update_ledger(settings, "b1", quarantined_validation=1)
    with pytest.raises(RuntimeError, match="asked to commit 3 rows but the ledger expects 2"):
        commit_batch(settings, "b1")  # the whole staged file would smuggle the bad row in
    assert not settings.events_dir.exists()
    report = commit_batch(settings, "b1", df[df["event_type"] != "teleport"])
    assert (report.stored, report.duplicates) == (2, 0)
    assert ledger(settings, "b1")["balanced"] is True


def test_commit_needs_a_staged_batch(settings: Settings) -> None:
    with pytest.raises(FileNotFoundError, match="batch 'ghost' is not staged"):
        commit_batch(settings, "ghost")
    empty = read_events(settings)  # an empty store reads as an empty, typed frame
    assert empty.empty and list(empty.columns) == EVENT_SCHEMA.names
    assert str(empty["event_ts"].dtype) == "datetime64[ns, UTC]"


def test_generated_landing_round_trips_through_the_store(
        settings: Settings, tmp_path: Path) -> None:
    config = GeneratorConfig(n_users=60, n_items=40, n_categories=4, n_shops=5, days=3)
    summary = generate(config, settings.landing_dir)
    files = sorted((settings.landing_dir / "events").glob("*.parquet"))
    report = stage_files(files, settings, "gen")
    assert (report.read, report.staged, report.quarantined) == (summary["total_events"],) * 2 + (0,)
    commit = commit_batch(settings, "gen")
    assert commit.partitions == ["2026-10-01", "2026-10-02", "2026-10-03"]
    stored = read_events(settings).sort_values("event_id", ignore_index=True)
    landed = pd.read_parquet(settings.landing_dir / "events").sort_values("event_id",
                                                                          ignore_index=True)
    pd.testing.assert_frame_equal(stored, landed, check_dtype=False)


# --------------------------------------------------------------------------------- tables


def test_ingest_tables_types_quarantines_and_keeps_the_last_duplicate(
        settings: Settings, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    items = [
        {"item_id": "1", "category_id": "2", "shop_id": "3", "price": "9.99",
         "launch_ts": "2026-01-01T00:00:00Z", "stock": "5"},
        {"item_id": "2", "category_id": "2", "shop_id": "3", "price": "-3",
         "launch_ts": "2026-01-01", "stock": "1"},
        {"item_id": "1", "category_id": "4", "shop_id": "3", "price": "12.5",
         "launch_ts": str(MIDNIGHT), "stock": "0"},  # later update of item 1
        {"item_id": "3", "category_id": "x", "shop_id": "3", "price": "1",
         "launch_ts": "2026-01-01", "stock": "1"},
    ]
    write_csv(landing / "items.csv", items, ITEM_SCHEMA.names)
    pd.DataFrame({"user_id": [1, 2], "age_band": [0, 3], "city_tier": [1, 2],
                  "signup_ts": pd.to_datetime(["2025-01-01", "2025-06-01"], utc=True)}) \
        .to_parquet(landing / "users.parquet")
    counts = ingest_tables(settings, landing)
    assert {k: v for k, v in counts["items"].items() if k not in ("path", "quarantine")} == \
        {"read": 4, "stored": 1, "duplicates": 1, "quarantined": 2}
    assert counts["users"]["stored"] == 2 and counts["users"]["quarantined"] == 0
    table = pd.read_parquet(settings.tables_dir / "items.parquet")
    assert table.to_dict("records") == [{
        "item_id": 1, "category_id": 4, "shop_id": 3, "price": 12.5,
        "launch_ts": pd.Timestamp("2026-10-01T00:00Z"), "stock": 0}]
    assert list(pd.read_parquet(settings.tables_dir / "users.parquet").columns) == \
        USER_SCHEMA.names
    q = read_quarantine(settings, "tables")
    assert sorted(q["reason"]) == ["category_id: not an integer: 'x'",
                                   "price: negative value: '-3'"]
    assert set(q["stage"]) == {"ingest_items"}


def test_missing_table_is_named(settings: Settings, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_csv(landing / "items.csv", [], ITEM_SCHEMA.names)
    with pytest.raises(FileNotFoundError, match="no users table in .*users.parquet, users.csv"):
        ingest_tables(settings, landing)
    assert not settings.tables_dir.exists()


def test_epoch_cast_never_hands_nan_to_pandas_even_under_raising_float_errors() -> None:
    """NaN and out-of-range slots come out NaT and in-range seconds exact, with float errors
    raising. (CI once hit FloatingPointError in pandas' unit cast of a NaN-holding array, which
    reads the NaN slots through an undefined int64 cast; that path is now never taken. The
    garbage is nondeterministic, so this checks the values rather than replaying the crash.)"""
    import numpy as np

    from shoprec.ingest_typing import _epoch

    raw = pd.Series([1_790_000_000.0, np.nan, 1.79e12, -5.0, np.nan] * 200)
    with np.errstate(all="raise"):
        ts, too_big, _what = _epoch(raw)
    assert ts.iloc[0] == pd.Timestamp("2026-09-21T14:13:20Z")
    assert ts.iloc[3] == pd.Timestamp("1969-12-31T23:59:55Z")
    assert ts.isna().sum() == 600  # the NaNs and the millisecond value
    assert too_big.sum() == 200 and bool(too_big[2]) and not bool(too_big[1])
