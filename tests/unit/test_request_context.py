"""Request-time features: the function the on-demand view runs, on hand-picked requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from feature_repo.request_context import compute, make_udf, udf_source, view_spec
from shoprec.contract import CONTRACT, DEVICES

VIEW = CONTRACT.request_views[0].name


def test_hour_weekday_device_by_hand() -> None:
    spec = view_spec(CONTRACT, VIEW)
    plus2 = timezone(timedelta(hours=2))
    out = compute({"request_ts": [datetime(2025, 3, 1, 9, 30, tzinfo=UTC),  # a Saturday
                                  pd.Timestamp("2025-03-03 23:59:59", tz="UTC"),  # Monday
                                  datetime(2025, 3, 3, 1, 0, tzinfo=plus2),  # = Sunday 23:00 UTC
                                  datetime(2025, 3, 4, 5, 0),  # naive: taken as UTC
                                  None],
                   "request_device": ["web", "ios", None, "fridge", pd.NA]}, spec)
    assert out == {"ctx_hour": [9, 23, 23, 5, -1], "ctx_weekday": [5, 0, 6, 1, -1],
                   "ctx_device": [DEVICES.index("web"), DEVICES.index("ios"), -1, -1, -1]}


def test_registered_source_is_a_stub_calling_the_shared_function() -> None:
    """Feast re-creates the function from this text: it must only import and call compute."""
    udf, source = make_udf(CONTRACT, VIEW)
    assert source == udf_source(CONTRACT, VIEW)
    assert "from feature_repo.request_context import compute" in source
    got = udf({"request_ts": [datetime(2025, 3, 1, 9, tzinfo=UTC)], "request_device": ["ios"]})
    assert got == {"ctx_hour": [9], "ctx_weekday": [5], "ctx_device": [0]}


def test_missing_field_and_bad_timestamp_are_named() -> None:
    spec = view_spec(CONTRACT, VIEW)
    with pytest.raises(KeyError, match="needs request field 'request_device'"):
        compute({"request_ts": [None]}, spec)
    with pytest.raises(TypeError, match="must be a datetime, got str"):
        compute({"request_ts": ["2025-03-01"], "request_device": ["ios"]}, spec)
