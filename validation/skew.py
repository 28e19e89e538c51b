"""Training-serving skew: served feature vectors against an offline recomputation.

Serving logs every feature vector it fed the ranker (:mod:`serving.feature_log`: request id,
read time ``ts``, join keys, features). For the logged rows of an interval this check asks the
**offline** path for the same ``(join keys, ts)`` - the point-in-time join training sets are
built with (:func:`feature_repo.historical.service_features`, which also repairs the file
offline store's dropped rows and fills the contract defaults, like training) - and compares the
two feature by feature with the per-kind rules of :mod:`validation.skew_compare`.

A mismatch means a model saw, in production, a value it would not have seen for the same
request in training: a stale online store (materialization lagging the snapshot), a store
outage answered with defaults (the log's ``defaulted`` rows), a feature computed differently
online, or a changed contract. The report gives, per feature of the logged service, the rows
``checked``, ``mismatched``, the ``rate`` and one ``example`` (keys, ts, both values); a
feature whose rate exceeds ``alert_rate`` is ``flagged``.

Large logs are sampled down to ``max_rows`` rows with the installation seed, so re-running an
interval checks the same rows (idempotent). Output: ``reports/skew/<interval>/skew.json`` and
``skew.html``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from serving.feature_log import (
    DEFAULTED_COL,
    REQUEST_ID,
    TS,
    join_keys,
    read_feature_log,
    request_fields,
)
from shoprec.contract import RANKER, Contract
from shoprec.intervals import Interval
from shoprec.settings import Settings
from validation.monitoring_report import render_html, report_dir, write_report
from validation.skew_compare import is_null, mismatches, plain

CHECK = "skew"


class NoServedVectors(ValueError):
    """The feature log holds no row inside the interval (serving logged nothing to compare)."""


@dataclass(frozen=True)
class SkewConfig:
    """How skew is checked.

    Attributes:
        rel_tol: Relative tolerance for float features (counts and ids are compared exactly).
        max_rows: Logged rows checked at most (a seeded sample); ``None`` checks every row.
        alert_rate: A feature is flagged when its mismatch rate exceeds this.
        service: The logged FeatureService.
    """

    rel_tol: float = 1e-6
    max_rows: int | None = 50_000
    alert_rate: float = 0.0
    service: str = RANKER

    def __post_init__(self) -> None:
        if not 0 <= self.rel_tol < 1:
            raise ValueError(f"rel_tol must be in [0, 1), got {self.rel_tol}")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {self.max_rows}")
        if not 0 <= self.alert_rate < 1:
            raise ValueError(f"alert_rate must be in [0, 1), got {self.alert_rate}")


@dataclass
class SkewReport:
    """The result of one skew check (also written as JSON and HTML)."""

    interval: str
    service: str
    rows_logged: int
    rows_checked: int
    defaulted_rows: int
    features: list[dict[str, Any]]
    flagged: list[str]
    offline: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """JSON-ready content of the report file."""
        out = asdict(self)
        out.pop("paths")
        return out


def served_rows(settings: Settings, contract: Contract, interval: Interval,
                config: SkewConfig) -> tuple[pd.DataFrame, int]:
    """The logged rows to check (seeded sample if needed) and how many the interval holds.

    Raises:
        ValueError: if the interval is unbounded.
        NoServedVectors: if nothing was logged inside the interval.
    """
    if not interval.bounded:
        raise ValueError("skew needs a bounded interval; resolve it with monitoring_interval")
    log = read_feature_log(settings, contract, interval.start, interval.end, config.service)
    if log.empty:
        raise NoServedVectors(f"no served {config.service!r} feature vectors are logged in "
                              f"{interval.key}; is serving.feature_log hooked into serving?")
    total = len(log)
    if config.max_rows is not None and total > config.max_rows:
        log = log.sample(n=config.max_rows, random_state=settings.seed).sort_index()
    return log.reset_index(drop=True), total


def _example(log: pd.DataFrame, keys: list[str], name: str, row: int,
             offline: pd.Series) -> dict[str, Any]:
    return {REQUEST_ID: log[REQUEST_ID].iat[row], TS: plain(log[TS].iat[row]),
            **{k: plain(log[k].iat[row]) for k in keys},
            "served": plain(log[name].iat[row]), "offline": plain(offline.iat[row])}


def compare(contract: Contract, log: pd.DataFrame, offline: pd.DataFrame, service: str,
            rel_tol: float, alert_rate: float) -> list[dict[str, Any]]:
    """Per-feature comparison rows of aligned served (``log``) and ``offline`` frames.

    A scalar feature that is null in the log was not logged (the part predates the feature)
    and is not checked on that row; the logger fills every served scalar with its default.
    """
    keys = join_keys(contract, service)
    rows = []
    for feat in contract.service_features(service):
        served = log[feat.name]
        logged = pd.Series([True] * len(log)) if feat.kind == "sequence" else \
            ~pd.Series([is_null(v) for v in served])
        idx = logged.to_numpy().nonzero()[0]
        bad = mismatches(feat, served.iloc[idx], offline[feat.name].iloc[idx], rel_tol)
        checked, mismatched = len(idx), int(bad.sum())
        rate = mismatched / checked if checked else None
        rows.append({
            "feature": feat.name, "kind": feat.kind, "dtype": feat.dtype, "checked": checked,
            "mismatched": mismatched, "rate": rate,
            "flagged": rate is not None and rate > alert_rate,
            "example": _example(log, keys, feat.name, int(idx[bad.nonzero()[0][0]]),
                                offline[feat.name]) if mismatched else None})
    return rows


def skew_report(settings: Settings, contract: Contract, interval: Interval, store: Any,
                config: SkewConfig | None = None) -> SkewReport:
    """Compare the interval's served vectors with the offline path and write the report.

    Args:
        settings: Locations (feature log in, reports out).
        contract: The logged service's features, kinds and dtypes.
        interval: A bounded interval (see ``monitoring_report.monitoring_interval``).
        store: An open Feast ``FeatureStore`` with the contract applied.
        config: Tolerance, sample size, alert rate and service.

    Raises:
        NoServedVectors: if the log holds nothing in the interval.
    """
    from feature_repo.historical import service_features

    config = config or SkewConfig()
    log, total = served_rows(settings, contract, interval, config)
    keys = join_keys(contract, config.service)
    entity = log[[*keys, TS, *request_fields(contract, config.service)]].copy()
    entity[TS] = entity[TS].astype("datetime64[ns, UTC]")
    offline, repairs = service_features(store, contract, config.service, entity, TS)
    features = compare(contract, log, offline, config.service, config.rel_tol,
                       config.alert_rate)
    report = SkewReport(interval.key, config.service, total, len(log),
                        int(log[DEFAULTED_COL].fillna(False).sum()), features,
                        [f["feature"] for f in features if f["flagged"]], repairs)
    payload = {**report.payload(), "config": asdict(config),
               "window": [interval.start.isoformat(), interval.end.isoformat()]}
    page = render_html(
        f"Training-serving skew {interval.key} ({config.service})",
        {"interval": f"[{interval.start.isoformat()}, {interval.end.isoformat()})",
         "rows logged / checked": f"{total} / {len(log)}",
         "rows served from defaults (store down)": report.defaulted_rows,
         "offline join repairs": repairs, "flagged": ", ".join(report.flagged) or "none",
         "rules": f"count/int/string exact; float relative {config.rel_tol:g}; sequences "
                  "element-wise with the element rule"},
        ["feature", "kind", "checked", "mismatched", "rate", "example"],
        [[f["feature"], f["kind"], f["checked"], f["mismatched"], f["rate"], f["example"]]
         for f in features], [f["flagged"] for f in features])
    report.paths = write_report(report_dir(settings, CHECK, interval), CHECK, payload, page)
    return report
