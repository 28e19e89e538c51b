"""Great Expectations suites generated from the contract's table schemas.

No column name is typed here: every expectation comes from a :class:`~shoprec.contract.Column`
attribute (``required``, ``allowed``, ``min_value``, ``dtype``), so a column added to the
contract is validated without touching this module, and the Data Docs always describe the
contract that is actually in force.

Two suites exist per table:

* the *row* suite runs on the staged rows. Its column-map expectations (``..._values_...``)
  judge single rows, which the gate quarantines; its table expectations (columns present, row
  count) judge the batch.
* the *batch* suite runs on a one-row frame of batch metrics computed in pandas (shares of
  quarantined rows and unknown ids, freshness), so that every batch verdict is still a GX
  expectation result with its observed value and threshold in the Data Docs.

``great_expectations`` is imported inside the functions: the DAG imports this package at
parse time, and GX costs ~10 s to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from shoprec.contract import TableSchema
from shoprec.utc import as_utc
from validation.config import GateConfig

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

QUARANTINE_SHARE = "quarantine_share"
"""Metric: rows set aside by ingest + validation over rows read from the landing files."""
VOLUME_RATIO = "volume_ratio"
"""Metric: rows read by this batch over the mean of the previous committed batches."""
Limit = float | tuple[float, float]
"""An upper limit, or an inclusive ``(lower, upper)`` band."""


def row_suite_name(schema: TableSchema) -> str:
    """Name of the row suite of ``schema`` (also its Data Docs page name)."""
    return f"{schema.name}_rows"


def batch_suite_name(schema: TableSchema) -> str:
    """Name of the batch-metrics suite of ``schema``."""
    return f"{schema.name}_batch"


def unknown_key_metric(reference: TableSchema) -> str:
    """Metric: share of valid rows whose ``reference.key`` is missing from that table."""
    return f"unknown_{reference.key}_share"


def freshness_metric(column: str) -> str:
    """Metric: age in days of the newest valid value of timestamp ``column``."""
    return f"newest_{column}_age_days"


def timestamp_window(config: GateConfig, now: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The sane ``[oldest, latest]`` window for event times (UTC).

    The lower end is the later of the absolute floor ``config.earliest`` and ``now`` minus
    ``config.max_age_days``; the upper end is ``now`` plus the allowed clock skew.
    """
    now = as_utc(now)
    lo = pd.Timestamp(config.earliest, tz="UTC")
    if config.max_age_days is not None:
        lo = max(lo, now - pd.Timedelta(days=config.max_age_days))
    return lo, now + pd.Timedelta(minutes=config.future_skew_minutes)


def row_expectations(schema: TableSchema, config: GateConfig, now: pd.Timestamp) -> list[Any]:
    """Expectations for ``schema``: table shape first, then per-column row checks.

    Args:
        schema: The table whose columns define the checks.
        config: Gate thresholds (minimum rows, timestamp window).
        now: Reference time for the timestamp window; passed in so a backfill or a test can
            validate against a fixed clock.

    Returns:
        GX expectation objects, in a stable order (the Data Docs list them this way).
    """
    import great_expectations.expectations as gxe

    lo, hi = timestamp_window(config, now)
    out: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=schema.names, exact_match=False,
                                         meta={"level": "batch", "why": "contract columns"}),
        gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows,
                                           meta={"level": "batch", "why": "empty export"}),
    ]
    for col in schema.columns:
        meta = {"level": "row", "why": col.description or col.name}
        if col.required:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=col.name, meta=meta))
        if col.allowed is not None:
            # Column-map expectations skip nulls, so a nullable enum (device) accepts null.
            out.append(gxe.ExpectColumnValuesToBeInSet(column=col.name,
                                                       value_set=list(col.allowed), meta=meta))
        if col.min_value is not None:
            out.append(gxe.ExpectColumnValuesToBeBetween(column=col.name,
                                                         min_value=col.min_value, meta=meta))
        if col.dtype == "timestamp":
            out.append(gxe.ExpectColumnValuesToBeBetween(
                column=col.name, min_value=lo.to_pydatetime(), max_value=hi.to_pydatetime(),
                meta=meta))
    return out


def row_suite(schema: TableSchema, config: GateConfig, now: pd.Timestamp) -> ExpectationSuite:
    """The row suite of ``schema`` (see :func:`row_expectations`)."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=row_suite_name(schema),
                                meta={"table": schema.name, "key": schema.key})
    for expectation in row_expectations(schema, config, now):
        suite.add_expectation(expectation)
    return suite


def batch_limits(schema: TableSchema, reference: TableSchema | None,
                 config: GateConfig, has_history: bool = False) -> dict[str, Limit]:
    """Limit of every batch metric the gate checks, by metric name.

    Args:
        schema: The validated table (its timestamp columns get a freshness metric).
        reference: The table whose key the rows must mostly know (the item catalogue), or
            ``None`` when that table does not exist yet (first load), which skips the check.
        config: Gate thresholds; ``freshness_days=None`` switches freshness off.
        has_history: Whether earlier committed batches exist to compare the volume with.
    """
    limits: dict[str, Limit] = {QUARANTINE_SHARE: config.max_quarantine_share}
    if has_history:
        limits[VOLUME_RATIO] = (config.min_volume_ratio, config.max_volume_ratio)
    if reference is not None:
        limits[unknown_key_metric(reference)] = config.max_unknown_item_share
    if config.freshness_days is not None:
        for col in schema.columns:
            if col.dtype == "timestamp":
                limits[freshness_metric(col.name)] = float(config.freshness_days)
    return limits


def batch_suite(schema: TableSchema, limits: dict[str, Limit]) -> ExpectationSuite:
    """One ``expect_column_max_to_be_between`` per metric of the one-row metrics frame.

    The max of a one-row column is the metric itself, and this expectation reports it as the
    ``observed_value``, which the gate's error message and the Data Docs show.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=batch_suite_name(schema), meta={"table": schema.name})
    for metric, limit in limits.items():
        lo, hi = limit if isinstance(limit, tuple) else (None, limit)
        suite.add_expectation(gxe.ExpectColumnMaxToBeBetween(
            column=metric, min_value=lo, max_value=hi, meta={"level": "batch"}))
    return suite
