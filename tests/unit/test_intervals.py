"""Interval resolution and landing-file selection (what makes pipeline runs idempotent)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from shoprec.intervals import ALL, file_day, resolve, select_files


def test_operator_dates_win_and_are_inclusive() -> None:
    iv = resolve(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC),
                 "2026-10-01", "2026-10-03")
    assert (iv.start, iv.end, iv.key) == (datetime(2026, 10, 1, tzinfo=UTC),
                                          datetime(2026, 10, 4, tzinfo=UTC),
                                          "2026-10-01_2026-10-03")
    assert resolve(None, None, "2026-10-05").key == "2026-10-05"


def test_airflow_daily_interval_and_manual_run() -> None:
    iv = resolve(datetime(2026, 10, 2), datetime(2026, 10, 3))  # naive → UTC
    assert iv.key == "2026-10-02" and iv.start.tzinfo is not None
    assert iv.contains_day(date(2026, 10, 2)) and not iv.contains_day(date(2026, 10, 3))
    assert resolve(None, None) == resolve(None, None, "", None)
    assert resolve(None, None).key == ALL and resolve(None, None).contains_day(date(1999, 1, 1))


@pytest.mark.parametrize(("args", "message"), [
    ((None, None, "2026-13-01"), "YYYY-MM-DD"),
    ((None, None, "2026-10-03", "2026-10-01"), "before date_from"),
    ((None, None, None, "2026-10-01"), "date_to needs date_from"),
    ((datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)), "empty data"),
])
def test_bad_intervals_are_named(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve(*args)


def test_files_are_assigned_to_days_by_name_or_folder(tmp_path: Path) -> None:
    names = ["events_2026-10-01.parquet", "events_2026-10-02.csv.gz", "dt=2026-10-02/a.csv",
             "undated.csv", ".hidden_2026-10-02.csv", "events_2026-10-02.parquet.tmp",
             "sub/2026-10-03/b.jsonl"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    day2 = resolve(None, None, "2026-10-02")
    assert [p.relative_to(tmp_path).as_posix() for p in select_files(tmp_path, day2)] == [
        "dt=2026-10-02/a.csv", "events_2026-10-02.csv.gz"]
    everything = select_files(tmp_path, resolve(None, None))
    assert len(everything) == 5 and tmp_path / "undated.csv" in everything
    assert file_day(Path("sub/2026-10-03/b.jsonl")) == date(2026, 10, 3)
    assert file_day(Path("events_2026-02-30.csv")) is None
