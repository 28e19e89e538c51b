"""Drift report over real snapshot files: a planted shift raises exactly its alert."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from shoprec.contract import CONTRACT, Feature
from shoprec.intervals import resolve
from shoprec.settings import Settings
from tests.data.monitoring_fixtures import DAY0, write_snapshots
from validation.drift import REQUEST_NOTE, DriftConfig, InsufficientData, drift_report
from validation.monitoring_report import latest_snapshot_day, monitoring_interval

ROWS, DAYS = 400, 8


def _first(kind: str) -> Feature:
    return next(f for f in CONTRACT.features
                if f.kind == kind and not CONTRACT.is_request_view(f.view))


def _day(ts: pd.Timestamp):
    return resolve(ts.to_pydatetime(), (ts + pd.Timedelta(days=1)).to_pydatetime())


def test_a_planted_numeric_shift_raises_exactly_that_alert(settings: Settings) -> None:
    target = _first("numeric")
    last = write_snapshots(settings, CONTRACT, DAYS, ROWS, target, lambda f, v: v * 3 + 20)
    report = drift_report(settings, CONTRACT, _day(last))
    assert report.alerts == [target.name]
    by_name = {m["name"]: m for m in report.metrics}
    assert by_name[target.name]["psi"] > 1.0
    scalar = [f for f in CONTRACT.features
              if f.kind != "sequence" and not CONTRACT.is_request_view(f.view)]
    for feat in scalar:  # every snapshot feature is checked on both sides, by its own kind
        row = by_name[feat.name]
        assert (row["reference_n"], row["current_n"]) == ((DAYS - 1) * ROWS, ROWS), feat.name
        assert row["kind"] == feat.kind
        if feat.name != target.name:
            assert row["psi"] < 0.1, (feat.name, row["psi"])
    for feat in CONTRACT.features:
        if CONTRACT.is_request_view(feat.view):
            assert by_name[feat.name]["psi"] is None and by_name[feat.name]["note"] == REQUEST_NOTE
        elif feat.kind == "sequence":
            assert {f"{feat.name}[length]", f"{feat.name}[elements]"} <= set(by_name)
    # the files say the same; the HTML highlights the alert row
    folder = settings.reports_dir / "drift" / last.strftime("%Y-%m-%d")
    saved = json.loads((folder / "drift.json").read_text())
    assert saved["alerts"] == [target.name] and saved["config"]["threshold"] == 0.2
    assert saved["rows"]["current"] == ROWS * len(CONTRACT.views)
    page = (folder / "drift.html").read_text()
    assert page.count('<tr class="alert">') == 1 and target.name in page


@pytest.mark.skipif(not any(f.kind == "sequence" for f in CONTRACT.features),
                    reason="the contract declares no sequence feature")
def test_a_sequence_that_grows_longer_alerts_on_its_length_only(settings: Settings) -> None:
    target = _first("sequence")
    last = write_snapshots(settings, CONTRACT, DAYS, ROWS, target,
                           lambda f, v: [list(s) * 3 for s in v])  # same elements, 3x as long
    report = drift_report(settings, CONTRACT, _day(last), DriftConfig(threshold=0.2))
    assert report.alerts == [f"{target.name}[length]"]


def test_threshold_and_reference_window_are_configurable(settings: Settings) -> None:
    target = _first("count")
    last = write_snapshots(settings, CONTRACT, DAYS, ROWS, target, lambda f, v: v + 1)
    report = drift_report(settings, CONTRACT, _day(last), DriftConfig(reference_days=2))
    assert report.reference == ((last - pd.Timedelta(days=2)).isoformat(), last.isoformat())
    row = next(m for m in report.metrics if m["name"] == target.name)
    assert row["reference_n"] == 2 * ROWS
    assert target.name in report.alerts
    quiet = drift_report(settings, CONTRACT, _day(last), DriftConfig(threshold=row["psi"] + 1))
    assert target.name not in quiet.alerts
    sampled = drift_report(settings, CONTRACT, _day(last), DriftConfig(sample_rows=150))
    again = drift_report(settings, CONTRACT, _day(last), DriftConfig(sample_rows=150))
    row = next(m for m in sampled.metrics if m["name"] == target.name)
    assert (row["reference_n"], row["current_n"]) == (150, 150)
    assert sampled.metrics == again.metrics  # seeded: a re-run reports the same


def test_unbounded_runs_check_the_newest_snapshot_day(settings: Settings) -> None:
    last = write_snapshots(settings, CONTRACT, 3, 50)
    interval = monitoring_interval(settings, CONTRACT)
    assert interval == latest_snapshot_day(settings, CONTRACT)
    assert (interval.start, interval.key) == (last.to_pydatetime(), last.strftime("%Y-%m-%d"))


def test_missing_data_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(FileNotFoundError, match="run the features stage"):
        monitoring_interval(settings, CONTRACT)
    write_snapshots(settings, CONTRACT, 1, 50)
    with pytest.raises(InsufficientData, match="training window"):
        drift_report(settings, CONTRACT, _day(DAY0))
    with pytest.raises(ValueError, match="no feature snapshot is stamped inside 2025-05-01"):
        drift_report(settings, CONTRACT, _day(pd.Timestamp("2025-05-01", tz="UTC")))
    spec = CONTRACT.views[0]
    path = settings.features_dir / f"{spec.name}.parquet"
    dropped = CONTRACT.view_features(spec.name)[0].name
    pd.read_parquet(path).drop(columns=[dropped]).to_parquet(path)
    with pytest.raises(KeyError, match=f"lacks contract columns \\['{dropped}'\\]"):
        drift_report(settings, CONTRACT, _day(DAY0 + pd.Timedelta(days=1)))


def test_config_rejects_nonsense() -> None:
    for bad in ({"threshold": 0}, {"n_bins": 1}, {"eps": 0}, {"reference_days": 0},
                {"sample_rows": 0}):
        with pytest.raises(ValueError):
            DriftConfig(**bad)
