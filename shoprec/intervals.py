"""Data intervals: which slice of the landing data a pipeline run owns, and its stable key.

Every output a run writes (staged batch, quarantine, ledger, event partitions, model run folder)
is named by the interval key, so re-running an interval replaces exactly what it wrote before
and a backfill is idempotent. Three ways to pick an interval, in order of precedence:

1. the operator's ``date_from``/``date_to`` Params (inclusive days) on a manual run;
2. the Airflow data interval of a scheduled or backfilled run (``[start, end)``);
3. neither (a manual run with no dates): everything in the landing folder, key ``all``.

Landing files are assigned to days by a ``YYYY-MM-DD`` in their name (``events_2026-10-03.csv``)
or in a ``dt=YYYY-MM-DD`` folder. A file without a date belongs to no day: only an ``all`` run
ingests it, so a dated interval never picks up undated files twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
ALL = "all"


@dataclass(frozen=True)
class Interval:
    """A half-open UTC interval ``[start, end)``; both ``None`` means all data.

    Attributes:
        start: First instant included.
        end: First instant excluded.
        key: File-name-safe identifier: ``2026-10-03`` for one day, ``2026-10-01_2026-10-03``
            for several, ``all`` for everything.
    """

    start: datetime | None
    end: datetime | None
    key: str

    @property
    def bounded(self) -> bool:
        """Whether the run is restricted to a date range."""
        return self.start is not None

    def contains_day(self, day: date) -> bool:
        """Whether the whole UTC day ``day`` lies inside the interval."""
        if not self.bounded:
            return True
        begin = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return self.start <= begin and begin + timedelta(days=1) <= self.end  # type: ignore[operator]


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _key(start: datetime, end: datetime) -> str:
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return first.isoformat() if first == last else f"{first.isoformat()}_{last.isoformat()}"


def resolve(data_interval_start: datetime | None, data_interval_end: datetime | None,
            date_from: str | None = None, date_to: str | None = None) -> Interval:
    """The interval a run owns (see the module docstring for the precedence).

    Args:
        data_interval_start: Airflow's data interval start, or ``None`` (manual run).
        data_interval_end: Airflow's data interval end, or ``None``.
        date_from: Operator's first day (``YYYY-MM-DD``), inclusive.
        date_to: Operator's last day, inclusive; defaults to ``date_from``.

    Raises:
        ValueError: for a malformed date, ``date_to`` before ``date_from``, ``date_to`` without
            ``date_from``, or an empty Airflow interval.
    """
    if date_from or date_to:
        if not date_from:
            raise ValueError("date_to needs date_from")
        try:
            first = date.fromisoformat(date_from)
            last = date.fromisoformat(date_to) if date_to else first
        except ValueError as err:
            raise ValueError(f"dates must be YYYY-MM-DD: {err}") from err
        if last < first:
            raise ValueError(f"date_to {last} is before date_from {first}")
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        return Interval(start, end, _key(start, end))
    if data_interval_start is not None and data_interval_end is not None:
        start, end = _utc(data_interval_start), _utc(data_interval_end)
        if end <= start:
            raise ValueError(f"empty data interval [{start}, {end})")
        return Interval(start, end, _key(start, end))
    return Interval(None, None, ALL)


def file_day(path: Path) -> date | None:
    """The day a landing file belongs to: the last ``YYYY-MM-DD`` in its path, if any."""
    for part in reversed(path.parts):
        found = _DATE.findall(part)
        if found:
            y, m, d = (int(x) for x in found[-1])
            try:
                return date(y, m, d)
            except ValueError:
                return None
    return None


def select_files(folder: Path, interval: Interval) -> list[Path]:
    """Landing files under ``folder`` (recursively) that belong to ``interval``, sorted.

    Hidden files and temporary files (``.tmp``, ``.part``) are skipped: a file still being
    written must not be half-ingested.
    """
    files = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        if path.name.startswith(".") or path.suffix in (".tmp", ".part"):
            continue
        day = file_day(path.relative_to(folder))
        if interval.bounded:
            if day is not None and interval.contains_day(day):
                files.append(path)
        else:
            files.append(path)
    return files
