"""Where the monitoring reports go, which interval they cover, and how they are written.

Both monitoring checks (:mod:`validation.drift`, :mod:`validation.skew`) write one folder per
interval, ``reports/<check>/<interval key>/``, holding ``<check>.json`` (for scripts and tests)
and ``<check>.html`` (a self-contained page for operators). Each file is written to a hidden temp
name and renamed, so re-running an interval replaces its report atomically and a reader never
sees half of one: the DAG is idempotent per data interval.

The interval is a :class:`shoprec.intervals.Interval`. A manual run without dates has no
interval of its own; monitoring then looks at the **latest snapshot day** of the feature store,
the newest data a model could have been served with.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from shoprec.atomic import write_text_atomic
from shoprec.contract import Contract
from shoprec.intervals import Interval, resolve
from shoprec.runrecords import jsonable
from shoprec.settings import Settings


def report_dir(settings: Settings, check: str, interval: Interval) -> Path:
    """``reports/<check>/<interval key>/``."""
    return settings.reports_dir / check / interval.key


def latest_snapshot_day(settings: Settings, contract: Contract) -> Interval:
    """The one-day interval of the newest snapshot timestamp over all contract views.

    Raises:
        FileNotFoundError: if no view has a snapshot file (the features stage never ran).
    """
    import pyarrow.parquet as pq

    ts_col, newest = contract.timestamp_field, None
    for spec in contract.views:
        path = settings.features_dir / f"{spec.name}.parquet"
        if not path.exists():
            continue
        col = pq.read_table(path, columns=[ts_col]).column(ts_col).to_pandas()
        if len(col):
            newest = col.max() if newest is None else max(newest, col.max())
    if newest is None:
        raise FileNotFoundError(f"no feature snapshots under {settings.features_dir}; run the "
                                "features stage before monitoring")
    day = pd.Timestamp(newest).tz_convert("UTC").floor("D").to_pydatetime()
    return resolve(day, day + timedelta(days=1))


def monitoring_interval(settings: Settings, contract: Contract,
                        data_interval_start: datetime | None = None,
                        data_interval_end: datetime | None = None,
                        date_from: str | None = None, date_to: str | None = None) -> Interval:
    """The interval a monitoring run covers (module docstring; ``resolve`` for precedence)."""
    interval = resolve(data_interval_start, data_interval_end, date_from, date_to)
    return interval if interval.bounded else latest_snapshot_day(settings, contract)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return html.escape(json.dumps(jsonable(value), default=str))
    return html.escape("" if value is None else str(value))


def render_html(title: str, summary: dict[str, Any], header: Sequence[str],
                rows: Sequence[Sequence[Any]], flagged: Sequence[bool]) -> str:
    """A self-contained HTML page: a summary list and one table, flagged rows highlighted."""
    items = "".join(f"<li><b>{html.escape(str(k))}</b>: {_cell(v)}</li>"
                    for k, v in summary.items())
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        ('<tr class="alert">' if bad else "<tr>") + "".join(f"<td>{_cell(v)}</td>" for v in row)
        + "</tr>" for row, bad in zip(rows, flagged, strict=True))
    return ("<!doctype html><html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
            "tr.alert{background:#fdd}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><ul>{items}</ul>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p><small>generated {datetime.now(UTC).isoformat(timespec='seconds')}</small></p>"
            "</body></html>\n")


def write_report(folder: Path, check: str, payload: dict[str, Any], page: str) -> dict[str, Path]:
    """Write ``<check>.json`` and ``<check>.html`` into ``folder`` atomically; return both."""
    paths = {"json": folder / f"{check}.json", "html": folder / f"{check}.html"}
    write_text_atomic(paths["json"], json.dumps(jsonable(payload), indent=2, sort_keys=True))
    write_text_atomic(paths["html"], page)
    return paths
