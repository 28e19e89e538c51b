"""Feature drift: PSI of every contract feature, latest interval against the training window.

The populations are the daily feature snapshots the features stage writes and Feast serves
(``features/<view>.parquet``, one row per entity and snapshot day, stamped with
``contract.timestamp_field``): the **current** sample is the snapshots stamped inside the
monitored interval, the **reference** sample is the training window, the snapshots stamped
before it (all of them, which is what the pipeline trains on, or only the last
``reference_days`` days). Every feature of the contract is checked, per view, whatever its
service; features are found by kind, never by name, so a feature added to the contract is
monitored from its first snapshot on. Request-time features (on-demand views: hour, weekday,
device of the request) have no snapshot; they are listed without a PSI - a one-day interval
holds a single weekday, so its PSI against a training window would alert every day - and the
skew check covers them, since it recomputes them from the logged request fields.

Binning and the PSI formula are documented in :mod:`validation.psi` (quantile bins from the
reference, ``eps`` for empty bins, top-k categories plus ``other``, sequences by length and by
element). A metric whose PSI exceeds ``threshold`` (default 0.2) raises an alert named after the
feature (``name`` for scalars, ``name[length]`` / ``name[elements]`` for sequences).

Output: ``reports/drift/<interval>/drift.json`` and ``drift.html``; :func:`drift_report` also
returns the alerts so the DAG can log them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import Contract, Feature
from shoprec.intervals import Interval
from shoprec.settings import Settings
from validation.monitoring_report import render_html, report_dir, write_report
from validation.psi import VALUE, bin_feature, psi

CHECK = "drift"
REQUEST_NOTE = "request-time feature: computed per request, not snapshotted (see skew)"


class InsufficientData(ValueError):
    """The reference (training) window holds no snapshot rows: there is nothing to compare to."""


@dataclass(frozen=True)
class DriftConfig:
    """How drift is measured.

    Attributes:
        threshold: PSI above which a metric raises an alert (0.2: the usual "significant shift").
        n_bins: Quantile bins for numeric, count and sequence-length distributions.
        top_k: Categories kept by name; the rest share the ``other`` bin.
        eps: Fraction used in place of an empty bin (keeps ``ln`` finite).
        reference_days: Length of the training window before the interval; ``None`` means every
            snapshot before it (what the pipeline trains on).
        sample_rows: Rows per view and side at most (seeded sample; ``None``: all). Bounds
            memory and time on large catalogues; 200k rows put a PSI's sampling noise near
            ``(n_bins - 1) / 200k``, far below any threshold.
    """

    threshold: float = 0.2
    n_bins: int = 10
    top_k: int = 20
    eps: float = 1e-4
    reference_days: int | None = None
    sample_rows: int | None = 200_000

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if self.n_bins < 2 or self.top_k < 1:
            raise ValueError(f"n_bins must be >= 2 and top_k >= 1, got {self.n_bins}, "
                             f"{self.top_k}")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")
        if self.reference_days is not None and self.reference_days < 1:
            raise ValueError(f"reference_days must be >= 1, got {self.reference_days}")
        if self.sample_rows is not None and self.sample_rows < 1:
            raise ValueError(f"sample_rows must be >= 1, got {self.sample_rows}")


@dataclass
class DriftReport:
    """The result of one drift check (also written as JSON and HTML)."""

    interval: str
    current: tuple[str, str]
    reference: tuple[str | None, str]
    threshold: float
    metrics: list[dict[str, Any]]
    alerts: list[str]
    paths: dict[str, Path] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """JSON-ready content of the report file."""
        out = asdict(self)
        out.pop("paths")
        return out


def alert_name(feature: Feature, metric: str) -> str:
    """How a metric is named in alerts: the feature, plus ``[metric]`` for sequences."""
    return feature.name if metric == VALUE else f"{feature.name}[{metric}]"


class ViewWindows:
    """One view's snapshot rows in the current interval and in the training window.

    Only the timestamp column is read up front; each feature column is then read on its own
    (:meth:`values`), so memory holds one feature of one view at a time however wide the view
    is. Each side is capped at ``sample_rows`` rows, drawn with the installation seed (the same
    rows on every re-run of the interval).

    Raises:
        FileNotFoundError: if the view's snapshot file does not exist.
        KeyError: naming contract features the snapshot file lacks (stale snapshots).
    """

    def __init__(self, settings: Settings, contract: Contract, view: str,
                 current: tuple[datetime, datetime], reference: tuple[datetime | None, datetime],
                 sample_rows: int | None) -> None:
        """Locate the rows of both windows."""
        import pyarrow.parquet as pq

        self.path = settings.features_dir / f"{view}.parquet"
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} does not exist; build the feature snapshots "
                                    "first")
        ts_col = contract.timestamp_field
        stored = set(pq.read_schema(self.path).names)
        missing = [f.name for f in contract.view_features(view) if f.name not in stored]
        missing += [] if ts_col in stored else [ts_col]
        if missing:
            raise KeyError(f"snapshot {self.path} lacks contract columns {missing}; rebuild the "
                           "snapshots after a contract change")
        ts = pq.read_table(self.path, columns=[ts_col]).column(ts_col).to_pandas()
        rng = np.random.default_rng(settings.seed)
        self.rows: dict[str, np.ndarray] = {}
        for side, (lo, hi) in (("current", current), ("reference", reference)):
            mask = (ts < pd.Timestamp(hi)).to_numpy()
            if lo is not None:
                mask &= (ts >= pd.Timestamp(lo)).to_numpy()
            rows = np.flatnonzero(mask)
            if sample_rows is not None and len(rows) > sample_rows:
                rows = np.sort(rng.choice(rows, sample_rows, replace=False))
            self.rows[side] = rows

    def values(self, name: str) -> tuple[pd.Series, pd.Series]:
        """``(reference, current)`` values of one feature column."""
        import pyarrow.parquet as pq

        col = pq.read_table(self.path, columns=[name]).column(name).to_pandas()
        return (col.iloc[self.rows["reference"]].reset_index(drop=True),
                col.iloc[self.rows["current"]].reset_index(drop=True))


def _metric_rows(feature: Feature, reference: pd.Series, current: pd.Series,
                 config: DriftConfig) -> list[dict[str, Any]]:
    rows = []
    for metric, binned in bin_feature(feature.kind, feature.dtype, reference, current,
                                      config.n_bins, config.top_k).items():
        n_ref, n_cur = int(binned.reference.sum()), int(binned.current.sum())
        value = psi(binned.reference, binned.current, config.eps) if n_ref and n_cur else None
        rows.append({
            "name": alert_name(feature, metric), "feature": feature.name, "view": feature.view,
            "kind": feature.kind, "metric": metric, "psi": value,
            "reference_n": n_ref, "current_n": n_cur,
            "alert": value is not None and value > config.threshold,
            "note": "" if value is not None else "no values on one side",
            "bins": [{"bin": b, "reference": int(r), "current": int(c)} for b, r, c in
                     zip(binned.labels, binned.reference, binned.current, strict=True)]})
    return rows


def drift_report(settings: Settings, contract: Contract, interval: Interval,
                 config: DriftConfig | None = None) -> DriftReport:
    """Compute the PSI of every contract feature and write the report (module docstring).

    Args:
        settings: Locations (snapshots in, reports out).
        contract: The features to check, their views and kinds.
        interval: The latest interval (must be bounded; see
            :func:`validation.monitoring_report.monitoring_interval`).
        config: Threshold and binning.

    Raises:
        ValueError: if the interval is unbounded or no view has a snapshot inside it (the
            features stage did not run for it: that is a pipeline failure, not a quiet day).
        InsufficientData: if no view has a snapshot before the interval (a first run).
    """
    config = config or DriftConfig()
    if not interval.bounded:
        raise ValueError("drift needs a bounded interval; resolve it with monitoring_interval")
    start, end = interval.start, interval.end
    ref_start = start - timedelta(days=config.reference_days) if config.reference_days else None
    metrics: list[dict[str, Any]] = []
    counts = {"current": 0, "reference": 0}
    for spec in contract.views:
        feats = contract.view_features(spec.name)
        if not feats:
            continue
        windows = ViewWindows(settings, contract, spec.name, (start, end), (ref_start, start),
                              config.sample_rows)
        counts["current"] += len(windows.rows["current"])
        counts["reference"] += len(windows.rows["reference"])
        for feat in feats:
            metrics.extend(_metric_rows(feat, *windows.values(feat.name), config))
    for feat in contract.features:
        if contract.is_request_view(feat.view):
            metrics.append({"name": feat.name, "feature": feat.name, "view": feat.view,
                            "kind": feat.kind, "metric": VALUE, "psi": None, "reference_n": 0,
                            "current_n": 0, "alert": False, "bins": [], "note": REQUEST_NOTE})
    if counts["current"] == 0:
        raise ValueError(f"no feature snapshot is stamped inside {interval.key} "
                         f"[{start}, {end}); did the features stage run for it?")
    if counts["reference"] == 0:
        raise InsufficientData(f"no feature snapshot is stamped in the training window "
                               f"[{ref_start or 'beginning'}, {start}); nothing to compare "
                               f"{interval.key} with")
    report = DriftReport(interval.key, (start.isoformat(), end.isoformat()),
                         (ref_start.isoformat() if ref_start else None, start.isoformat()),
                         config.threshold, metrics, [m["name"] for m in metrics if m["alert"]])
    payload = {**report.payload(), "config": asdict(config), "rows": counts}
    table = [[m["name"], m["view"], m["kind"], m["psi"], m["reference_n"], m["current_n"],
              "ALERT" if m["alert"] else (m["note"] or "ok"),
              {b["bin"]: [b["reference"], b["current"]] for b in m["bins"]}] for m in metrics]
    page = render_html(
        f"Feature drift {interval.key}",
        {"current interval": f"[{start.isoformat()}, {end.isoformat()})",
         "training window": f"[{ref_start.isoformat() if ref_start else 'beginning'}, "
                            f"{start.isoformat()})",
         "threshold (PSI)": config.threshold, "snapshot rows compared": counts,
         "alerts": ", ".join(report.alerts) or "none",
         "binning": "quantile bins of the training window (numeric, count, sequence length); "
                    f"top {config.top_k} categories + other (categorical, id elements); "
                    f"a missing bin for nulls; empty bins count as eps={config.eps}"},
        ["metric", "view", "kind", "PSI", "reference n", "current n", "status",
         "bins {bin: [reference, current]}"],
        table, [m["alert"] for m in metrics])
    report.paths = write_report(report_dir(settings, CHECK, interval), CHECK, payload, page)
    return report
