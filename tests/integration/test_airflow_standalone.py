"""`make airflow` for real: airflow standalone, a REST-triggered run with Params, clean stop."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from shoprec.airflow_local import Standalone, airflow_env, group_pids
from tests.conftest import free_port
from tests.integration.conftest import fresh_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_standalone_rest_trigger_with_params_and_clean_stop(tmp_path: Path,
                                                            tiny_landing: Path) -> None:
    home = fresh_home(tmp_path, tiny_landing)
    port = free_port()
    server = Standalone(airflow_env(home, port, parallelism=2), port,
                        log=tmp_path / "standalone.log")
    server.start()
    pgid = server.proc.pid
    try:
        headers = {"Authorization": f"Bearer {server.token()}"}
        # The DAG is visible, with its doc and the Params form the UI renders.
        run_id = server.trigger("shoprec_pipeline", conf={"epochs": 1, "batch_size": 256})
        details = httpx.get(f"{server.url}/api/v2/dags/shoprec_pipeline/details",
                            headers=headers, timeout=30).json()
        assert "ShopRec pipeline" in details["doc_md"]
        assert details["params"]["epochs"]["schema"]["maximum"] == 50
        # The UI form rejects invalid values; the API applies the same Param schema.
        bad = httpx.post(f"{server.url}/api/v2/dags/shoprec_pipeline/dagRuns",
                         json={"logical_date": None, "conf": {"epochs": 0}}, headers=headers,
                         timeout=30)
        assert bad.status_code >= 400, bad.text
        state = server.wait_for_run("shoprec_pipeline", run_id, timeout=900)
        if state != "success":
            pytest.fail(f"run {run_id} ended {state}; log tail:\n"
                        + (tmp_path / "standalone.log").read_text()[-4000:])
        conf = httpx.get(f"{server.url}/api/v2/dags/shoprec_pipeline/dagRuns/{run_id}",
                         headers=headers, timeout=30).json()["conf"]
        assert conf == {"epochs": 1, "batch_size": 256}
        metrics = json.loads(next((home / "models").glob("*/metrics.json")).read_text())
        assert metrics["train_rows"] > 0
    finally:
        killed = server.stop()
    assert killed == [], f"processes survived SIGINT and had to be killed: {killed}"
    assert group_pids(pgid) == []
