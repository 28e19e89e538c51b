"""The failure record every DAG's on_failure_callback writes."""

from __future__ import annotations

import json
from types import SimpleNamespace

from shoprec.runrecords import failure_path, on_task_failure
from shoprec.settings import ENV_HOME, Settings


def test_callback_records_the_reason_under_the_env_home(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_HOME, str(tmp_path))
    ti = SimpleNamespace(dag_id="shoprec_pipeline", run_id="backfill__2026-10-02T00:00:00+00:00",
                         task_id="features", try_number=3)
    on_task_failure({"ti": ti, "exception": ValueError("no events committed")})
    path = failure_path(Settings(home=tmp_path.resolve()), ti.dag_id, ti.run_id, ti.task_id)
    assert path.name == "features.json"
    assert path.parent.name == "backfill__2026-10-02T00_00_00_00_00"
    record = json.loads(path.read_text())
    assert record["reason"] == "ValueError: no events committed"
    assert record["try_number"] == 3 and "ValueError" in record["trace"]


def test_callback_without_exception_says_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_HOME, str(tmp_path))
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t")
    on_task_failure({"ti": ti})
    record = json.loads(failure_path(Settings(home=tmp_path.resolve()), "d", "r", "t")
                        .read_text())
    assert record["reason"] == "unknown failure" and record["try_number"] is None
