"""`shoprec_monitoring` under `dag.test()` on a tiny home: drift finds the planted shift, skew
is skipped with its reason because serving logged nothing (its Feast path is tested in
tests/data/test_skew.py, which keeps this run free of the Feast import)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoprec.airflow_local import airflow_env, run_dag
from shoprec.contract import CONTRACT
from shoprec.settings import Settings
from tests.data.monitoring_fixtures import write_snapshots

pytestmark = pytest.mark.integration


def test_monitoring_dag_reports_drift_and_skips_skew_without_a_log(settings: Settings,
                                                                   tmp_path: Path) -> None:
    target = next(f for f in CONTRACT.features if f.kind == "numeric")
    last = write_snapshots(settings, CONTRACT, 4, 200, target, lambda f, v: v * 4 + 30)
    log = tmp_path / "monitoring_dag.log"
    code = run_dag("shoprec_monitoring", airflow_env(settings.home), {}, log=log)
    text = log.read_text(errors="replace")
    assert code == 0, text[-4000:]
    assert "DAG_RUN manual__" in text and " success " in text
    day = last.strftime("%Y-%m-%d")  # a manual run without dates: the newest snapshot day
    report = json.loads((settings.reports_dir / "drift" / day / "drift.json").read_text())
    assert report["alerts"] == [target.name]
    assert report["rows"] == {"current": 200 * len(CONTRACT.views),
                              "reference": 3 * 200 * len(CONTRACT.views)}
    assert (settings.reports_dir / "drift" / day / "drift.html").exists()
    assert f"drift alerts for {day}: ['{target.name}']" in text
    assert f"no served 'ranker' feature vectors are logged in {day}" in text
    assert not (settings.reports_dir / "skew").exists()
    assert not (settings.reports_dir / "failures").exists()
