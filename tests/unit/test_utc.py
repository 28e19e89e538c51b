"""``shoprec.utc.as_utc``: naive times are UTC, aware ones are converted."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pandas as pd

from shoprec.utc import as_utc


def test_naive_is_utc_and_aware_is_converted() -> None:
    assert as_utc("2026-01-02 03:04:05") == pd.Timestamp("2026-01-02 03:04:05", tz="UTC")
    assert str(as_utc(date(2026, 1, 2))) == "2026-01-02 00:00:00+00:00"
    plus2 = datetime(2026, 1, 2, 5, 0, tzinfo=timezone(timedelta(hours=2)))
    assert as_utc(plus2) == pd.Timestamp("2026-01-02 03:00", tz="UTC")
    assert str(as_utc(plus2).tz) == "UTC"
    assert as_utc(pd.Timestamp("2026-01-02T01:00-05:00")).hour == 6
    assert as_utc(pd.NaT) is pd.NaT
