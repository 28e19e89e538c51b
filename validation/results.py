"""Turn GX validation results into per-row quarantine reasons and batch failure messages.

The gate never re-implements a check in pandas: which rows failed comes from GX's
``unexpected_index_list`` (result format ``COMPLETE``, which lists every failing row); this
module only words them for an operator. The offending values are read from the frame at those
indices, because GX 1.24 caps ``unexpected_list`` at 200 values
(``great_expectations.constants.MAX_RESULT_RECORDS``) while the index list is complete.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pandas as pd

ROW_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    # The pandas "query" is a string listing every failing index: large and unused here.
    "return_unexpected_index_query": False,
}
"""Result format for row suites: every unexpected value with its row index."""


def expectation_key(config: Any) -> str:
    """``expect_x(column)`` or ``expect_x`` for table expectations: the name used everywhere."""
    column = config.kwargs.get("column")
    return f"{config.type}({column})" if column is not None else config.type


def fmt(value: Any) -> str:
    """Readable value: ISO text for times, ``repr`` for strings, plain text otherwise."""
    if isinstance(value, pd.Timestamp | dt.datetime):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, str):
        return repr(value)
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "null"
    return str(value)


def _bounds(kwargs: dict[str, Any]) -> str:
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if lo is not None and hi is not None:
        return f"outside [{fmt(lo)}, {fmt(hi)}]"
    return f"< min {fmt(lo)}" if lo is not None else f"> max {fmt(hi)}"


def _limits(kwargs: dict[str, Any]) -> str:
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    parts = [f">= {fmt(lo)}"] if lo is not None else []
    parts += [f"<= {fmt(hi)}"] if hi is not None else []
    return " and ".join(parts)


def row_reason(config: Any, value: Any) -> str:
    """Why one row failed one column-map expectation, e.g. ``... 'view' not in [...]``."""
    key, kwargs = expectation_key(config), config.kwargs
    if "value_set" in kwargs:
        return f"{key}: {fmt(value)} not in {list(kwargs['value_set'])}"
    if "min_value" in kwargs or "max_value" in kwargs:
        return f"{key}: {fmt(value)} {_bounds(kwargs)}"
    if config.type.endswith("not_be_null"):
        return f"{key}: null"
    return f"{key}: unexpected value {fmt(value)}"


def exception_message(res: Any) -> str | None:
    """First line of the error GX caught while evaluating ``res``, or ``None`` if none.

    GX reports it either flat (``{"raised_exception": True, "exception_message": ...}``) or,
    when a metric failed, keyed by metric id (``{metric_id: {"raised_exception": ...}}``).
    """
    info = res.exception_info or {}
    candidates = [info] + [v for v in info.values() if isinstance(v, dict)]
    for entry in candidates:
        if entry.get("raised_exception"):
            return str(entry.get("exception_message") or "unknown error").splitlines()[0]
    return None


def _is_row_result(res: Any) -> bool:
    """A failed row-level check whose failing rows GX could list (no exception raised)."""
    return (exception_message(res) is None
            and (res.expectation_config.meta or {}).get("level") == "row"
            and "unexpected_index_list" in (res.result or {}))


def row_failures(result: Any, frame: pd.DataFrame) -> tuple[dict[int, list[str]], dict[str, int]]:
    """Failing rows of a row-suite result.

    Args:
        result: The GX result of the row suite on ``frame``.
        frame: The validated frame (RangeIndex, so GX's index labels are row positions).

    Returns:
        ``(reasons, counts)``: reasons by row position (a row failing several checks gets
        several reasons), and the number of unexpected rows per failed expectation key.
    """
    reasons: dict[int, list[str]] = defaultdict(list)
    counts: dict[str, int] = {}
    for res in result.results:
        if res.success or not _is_row_result(res):
            continue
        config = res.expectation_config
        indices = [int(i) for i in res.result["unexpected_index_list"]]
        counts[expectation_key(config)] = int(res.result["unexpected_count"])
        values = frame[config.kwargs["column"]].iloc[indices].tolist()
        for index, value in zip(indices, values, strict=True):
            reasons[index].append(row_reason(config, value))
    return dict(reasons), counts


def batch_failures(result: Any) -> list[str]:
    """One message per failed expectation that is not a quarantinable row check.

    Each names the expectation, what GX observed and the allowed range, so the operator sees
    the cause without opening the Data Docs.
    """
    out: list[str] = []
    failed = [r for r in result.results if not r.success and not _is_row_result(r)]
    # Table-level verdicts first: a missing column explains the column errors that follow.
    failed.sort(key=lambda r: r.expectation_config.kwargs.get("column") is not None)
    for res in failed:
        config, error = res.expectation_config, exception_message(res)
        key = expectation_key(config)
        if error is not None:
            out.append(f"{key}: raised {error}")
            continue
        observed = (res.result or {}).get("observed_value")
        kwargs = {k: v for k, v in config.kwargs.items()
                  if k not in ("column", "batch_id", "result_format")}
        if "min_value" in kwargs or "max_value" in kwargs:
            expected = f"limit {_limits(kwargs)}"
        else:
            expected = f"expected {kwargs}"
        out.append(f"{key}: observed {fmt(observed)}, {expected}")
    return out
