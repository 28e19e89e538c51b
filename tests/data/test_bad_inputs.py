"""The catalogue of bad inputs: each kind goes through the real stage → GX gate → commit path.

Every case asserts the exact outcome (which rows are quarantined with which reason, or which
batch expectation rejects the batch with which message) and that the counts balance:
``read = stored + duplicates + quarantined at ingest + quarantined at validation``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shoprec.contract import EVENT_SCHEMA
from shoprec.ingest import read_events
from shoprec.quarantine import ledger_path, read_quarantine
from shoprec.settings import Settings
from tests.data.validation_cases import (
    RUN_NOW,
    TB_T0,
    event_row,
    tb_line,
    write_events_csv,
    write_lines,
)
from validation.gate import ValidationFailed, summary_path
from validation.run import gate_config_for, run_batch

TYPES = ["impression", "click", "cart", "fav", "purchase"]
WINDOW = "[2016-11-03T00:00:00+00:00, 2026-11-01T00:10:00+00:00]"  # RUN_NOW - 3650 d, + 10 min
SHARE = "expect_column_max_to_be_between(quarantine_share)"
NO_ROWS = "expect_table_row_count_to_be_between: observed 0, limit >= 1"
ALL_BAD = f"{SHARE}: observed 1.0, limit <= 0.2"


@dataclass
class Case:
    """Files of one kind of bad input and the exact outcome they must have."""

    fmt: str
    files: Callable[[Path], list[Path]]
    reasons: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # read, stored, duplicates, ...
    rejected: list[str] = field(default_factory=list)  # exact failed-expectation messages
    notes: list[str] = field(default_factory=list)
    before: Callable[[Path], list[Path]] | None = None  # a batch committed first
    config: dict = field(default_factory=dict)


def good(n: int, start: int = 1) -> list[dict]:
    return [event_row(i) for i in range(start, start + n)]


def csv_file(name: str, rows: list[dict], **kw) -> Callable[[Path], list[Path]]:
    return lambda d: [write_events_csv(d / name, rows, **kw)]


def tb_file(name: str, lines: list[str], end: str = "\n") -> Callable[[Path], list[Path]]:
    return lambda d: [write_lines(d / name, lines, end)]


TB4 = [tb_line(1, 10, "pv"), tb_line(1, 11, "cart"), tb_line(2, 10, "fav"),
       tb_line(2, 12, "buy")]


def _utf8(d: Path) -> list[Path]:
    path = write_events_csv(d / "bytes.csv", good(9, 1) + [event_row(10, session_id="SESSION")])
    path.write_bytes(path.read_bytes().replace(b"SESSION", b"\xffS"))
    return [path]


def _two_files(d: Path) -> list[Path]:
    return [write_lines(d / "a.csv", TB4), write_lines(d / "b.csv", [TB4[1], TB4[3],
                                                                    tb_line(3, 13)])]


CASES: dict[str, Case] = {
    "empty_file": Case("events", lambda d: [write_lines(d / "empty.csv", [])],
                       counts={"read": 0}, rejected=[NO_ROWS]),
    "header_only": Case("events", csv_file("header.csv", []), counts={"read": 0},
                        rejected=[NO_ROWS]),
    "wrong_delimiter": Case(
        "events", csv_file("semicolon.csv", good(3), delimiter=";"),
        reasons={"wrong delimiter: the header is one field "
                 f"{';'.join(EVENT_SCHEMA.names)!r} that contains ';'; expected fields "
                 "separated by ','": 3},
        counts={"read": 3, "quarantined_ingest": 3}, rejected=[NO_ROWS, ALL_BAD]),
    "wrong_delimiter_taobao": Case(
        "taobao", tb_file("tabs.csv", [line.replace(",", "\t") for line in TB4[:3]]),
        reasons={"malformed CSV row: expected 5 fields, got 1": 3},
        counts={"read": 3, "quarantined_ingest": 3}, rejected=[NO_ROWS, ALL_BAD]),
    "missing_column": Case(
        "events", lambda d: [
            write_events_csv(d / "no_user.csv", good(3),
                             [c for c in EVENT_SCHEMA.names if c != "user_id"]),
            write_events_csv(d / "ok.csv", good(12, 4))],
        reasons={"missing required column 'user_id'": 3},
        counts={"read": 15, "stored": 12, "duplicates": 0, "quarantined_ingest": 3}),
    "extra_column": Case(
        "events", csv_file("extra.csv", [dict(r, coupon="X1") for r in good(3)],
                           columns=[*EVENT_SCHEMA.names, "coupon"]),
        counts={"read": 3, "stored": 3, "duplicates": 0, "quarantined_ingest": 0},
        notes=["extra.csv: extra column(s) ['coupon'] ignored"]),
    "non_numeric_id": Case(
        "events", csv_file("abc.csv", good(9) + [event_row(10, user_id="abc")]),
        reasons={"user_id: not an integer: 'abc'": 1},
        counts={"read": 10, "stored": 9, "quarantined_ingest": 1}),
    "negative_id": Case(
        "events", csv_file("neg.csv", good(9) + [event_row(10, item_id="-4")]),
        reasons={"item_id: negative value: '-4'": 1},
        counts={"read": 10, "stored": 9, "quarantined_ingest": 1}),
    "null_user": Case(
        "events", csv_file("null.csv", good(9) + [event_row(10, user_id=None)]),
        reasons={"user_id: missing value": 1},
        counts={"read": 10, "stored": 9, "quarantined_ingest": 1}),
    "unknown_event_type": Case(
        "events", csv_file("view.csv", good(9) + [event_row(10, event_type="view")]),
        reasons={f"expect_column_values_to_be_in_set(event_type): 'view' not in {TYPES}": 1},
        counts={"read": 10, "stored": 9, "quarantined_validation": 1}),
    "unknown_taobao_behavior": Case(
        "taobao", tb_file("view.csv", [*TB4, tb_line(3, 13, "view")]),
        reasons={"behavior_type: unknown Taobao behavior 'view'; expected one of "
                 "['pv', 'cart', 'fav', 'buy']": 1},
        counts={"read": 5, "stored": 4, "quarantined_ingest": 1}),
    "future_timestamp": Case(
        "events", csv_file("future.csv", good(9) + [event_row(10, event_ts="2026-12-01")]),
        reasons={"expect_column_values_to_be_between(event_ts): 2026-12-01T00:00:00+00:00 "
                 f"outside {WINDOW}": 1},
        counts={"read": 10, "stored": 9, "quarantined_validation": 1}),
    "millisecond_timestamps": Case(
        "taobao", tb_file("ms.csv", [tb_line(1, 10, ts=TB_T0 * 1000),
                                     tb_line(2, 11, ts=TB_T0 * 1000 + 1500)]),
        reasons={"event_ts: epoch seconds out of range (looks like milliseconds): "
                 "'1511544070000'": 1,
                 "event_ts: epoch seconds out of range (looks like milliseconds): "
                 "'1511544071500'": 1},
        counts={"read": 2, "quarantined_ingest": 2}, rejected=[NO_ROWS, ALL_BAD]),
    "duplicates_within_file": Case(
        "taobao", tb_file("dup.csv", [*TB4, TB4[2]]),
        counts={"read": 5, "stored": 4, "duplicates": 1, "duplicates_in_batch": 1,
                "duplicates_in_store": 0}),
    "duplicates_across_files": Case(
        "taobao", _two_files,
        counts={"read": 7, "stored": 5, "duplicates": 2, "duplicates_in_batch": 2,
                "duplicates_in_store": 0}),
    "duplicates_across_batches": Case(
        "taobao", tb_file("again.csv", [*TB4, tb_line(3, 13)]),
        before=tb_file("first.csv", TB4),
        counts={"read": 5, "stored": 1, "duplicates": 4, "duplicates_in_batch": 0,
                "duplicates_in_store": 4}),
    "invalid_utf8": Case(
        "events", _utf8,
        reasons={"invalid UTF-8 in column 'session_id': byte b'\\xff' at position 0": 1},
        counts={"read": 10, "stored": 9, "quarantined_ingest": 1}),
    "truncated_last_line": Case(
        "taobao", tb_file("cut.csv", [*TB4, "3,13,1006,p"], end=""),
        reasons={"truncated last line: the file does not end with a newline; malformed CSV "
                 "row: expected 5 fields, got 4": 1},
        counts={"read": 5, "stored": 4, "quarantined_ingest": 1}),
    "truncated_last_line_parsable": Case(
        "taobao", tb_file("cut2.csv", [*TB4, f"3,13,1006,pv,{str(TB_T0)[:7]}"], end=""),
        reasons={"truncated last line: the file does not end with a newline": 1},
        counts={"read": 5, "stored": 4, "quarantined_ingest": 1}),
    "gzip": Case("taobao", tb_file("part.csv.gz", TB4),
                 counts={"read": 4, "stored": 4, "duplicates": 0, "quarantined_ingest": 0}),
    "mixed_good_and_bad": Case(
        "events", csv_file("mixed.csv", good(12) + [
            event_row(13, user_id="x"), event_row(14, event_type="teleport"), event_row(3)]),
        reasons={"user_id: not an integer: 'x'": 1,
                 f"expect_column_values_to_be_in_set(event_type): 'teleport' not in {TYPES}": 1},
        counts={"read": 15, "stored": 12, "duplicates": 1, "quarantined_ingest": 1,
                "quarantined_validation": 1}),
    "volume_collapse": Case(
        "taobao", tb_file("small.csv", [tb_line(9, 90)]),
        before=tb_file("usual.csv", [tb_line(u, i) for u in range(1, 6) for i in (10, 11)]),
        counts={"read": 1}, rejected=[
            "expect_column_max_to_be_between(volume_ratio): observed 0.1, limit >= 0.2 and "
            "<= 5.0"]),
    "unknown_items": Case(
        "movielens", lambda d: [
            write_lines(d / "u.data", [f"{u}\t{i}\t4\t{TB_T0 + u}" for u in (1, 2)
                                       for i in (1, 2, 3, 9)]),
            write_lines(d / "u.item", [f"{i}|Movie {i} (1995)|01-Jan-1995||url|" + "0|" * 18
                                       + "1" for i in (1, 2, 3)])],
        counts={"read": 8}, rejected=[
            "expect_column_max_to_be_between(unknown_item_id_share): observed 0.25, "
            "limit <= 0.05"]),
    "stale_batch": Case(
        "events", csv_file("old.csv", good(3)), config={"freshness_days": 7.0},
        counts={"read": 3}, rejected=[
            # newest event 2026-10-01T10:00:03Z, now 2026-11-01: 30 d 13 h 59 m 57 s
            "expect_column_max_to_be_between(newest_event_ts_age_days): observed "
            "30.58329861111111, limit <= 7.0"]),
}


def _ledger(settings: Settings, batch_id: str) -> dict:
    return json.loads(ledger_path(settings, batch_id).read_text())


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_input_catalogue(kind: str, settings: Settings, tmp_path: Path) -> None:
    case = CASES[kind]
    config = gate_config_for(case.fmt, **case.config)
    if case.before is not None:
        (tmp_path / "before").mkdir()
        run_batch(case.before(tmp_path / "before"), settings, "before", fmt=case.fmt,
                  now=RUN_NOW, config=config)
    store_before = {p: p.read_bytes() for p in settings.events_dir.rglob("*.parquet")}
    files = case.files(tmp_path)
    if case.rejected:
        with pytest.raises(ValidationFailed) as info:
            run_batch(files, settings, "b1", fmt=case.fmt, now=RUN_NOW, config=config)
        assert info.value.failed_expectations == case.rejected
        assert str(info.value.docs_path) in str(info.value)
        # nothing was committed: the store is exactly as before
        assert {p: p.read_bytes() for p in settings.events_dir.rglob("*.parquet")} == \
            store_before
        summary = json.loads(summary_path(settings, "b1").read_text())
        rec = _ledger(settings, "b1")
        assert rec["validation_passed"] is False and "stored" not in rec
        # conservation up to the gate: read = ingest-quarantined + validated rows
        assert rec["read"] == rec["quarantined_ingest"] + summary["rows"]
        assert summary["rows"] == summary["valid"] + rec["quarantined_validation"]
    else:
        run = run_batch(files, settings, "b1", fmt=case.fmt, now=RUN_NOW, config=config)
        rec = run.ledger
        assert rec["balanced"] is True
        assert rec["read"] == (rec["stored"] + rec["duplicates"] + rec["quarantined_ingest"]
                               + rec["quarantined_validation"])
        earlier = _ledger(settings, "before")["stored"] if case.before else 0
        assert len(read_events(settings)) == earlier + rec["stored"]
        assert run.stage.notes == case.notes
    for name, value in case.counts.items():
        assert rec[name] == value, name
    q = read_quarantine(settings, "b1")
    assert dict(Counter(q["reason"])) == case.reasons


def test_catalogue_covers_at_least_15_kinds() -> None:
    assert len(CASES) >= 15


def test_volume_is_compared_per_event_day(settings: Settings, tmp_path: Path) -> None:
    """A backfill of many days at the usual daily volume is not a flood: the volume check
    compares rows per event day (2 rows on one day before; 12 rows over 6 days now → ratio 1,
    although the raw count is 6× the previous batch, beyond the 5× band)."""
    config = gate_config_for("events")
    (tmp_path / "before").mkdir()
    run_batch([write_events_csv(tmp_path / "before" / "day.csv", good(2))], settings, "before",
              fmt="events", now=RUN_NOW, config=config)
    week = [event_row(i, event_ts=f"2026-10-{2 + i % 6:02d}T10:00:00Z") for i in range(10, 22)]
    run = run_batch([write_events_csv(tmp_path / "week.csv", week)], settings, "b1",
                    fmt="events", now=RUN_NOW, config=config)
    assert run.ledger["stored"] == 12 and run.ledger["balanced"] is True
    summary = json.loads(summary_path(settings, "b1").read_text())
    assert summary["metrics"]["volume_ratio"] == pytest.approx(1.0)
