"""One rule for times without a zone: every stored ShopRec time is UTC, so naive means UTC."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd


def as_utc(value: date | datetime | str | pd.Timestamp) -> pd.Timestamp:
    """``value`` as a UTC ``pd.Timestamp``: a naive time is taken as UTC, an aware one converted.

    Event timestamps, data intervals and ``now`` arguments meet in comparisons with the
    stored UTC columns; pandas refuses to compare naive with aware times, so each is made UTC
    on the way in, the same way everywhere. ``NaT`` stays ``NaT``.
    """
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
