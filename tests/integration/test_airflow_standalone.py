"""`make airflow` for real: airflow standalone, backfills, a REST-triggered run, clean stop.

One standalone server serves the whole scenario (it takes ~30 s to start on 2 cores):

1. `airflow backfill create` over three days (data and features only), twice; the second
   backfill re-processes the same intervals and must change nothing, although Airflow runs a
   backfill's days concurrently and in no fixed order;
2. a run triggered through the REST API the UI's Trigger button uses, with Params, including a
   rejected invalid form value;
3. SIGINT to the standalone PID stops every process it started.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shoprec.airflow_local import Standalone, airflow_env, group_pids
from tests.conftest import free_port
from tests.integration.conftest import fresh_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG = "shoprec_pipeline"
DAYS = ("2026-10-02", "2026-10-04")  # the tiny preset covers 2026-10-01 .. 2026-10-06
IDEMPOTENT = ("events", "features", "datasets", "quarantine", "staging")


def fingerprint(home: Path) -> dict[str, object]:
    """Hash of every data output a backfill writes, plus the ledgers without their clock
    fields (``*_at``: when a stage ran is an audit fact, not an output)."""
    files = [p for d in IDEMPOTENT for p in sorted((home / d).rglob("*"))
             if p.is_file() and p.name != "report.json"]  # the repair report times itself
    out: dict[str, object] = {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    for p in sorted((home / "reports" / "ledger").glob("*.json")):
        out[p.name] = {k: v for k, v in json.loads(p.read_text()).items()
                       if not k.endswith("_at")}
    return out


def newest_backfill_id(server: Standalone, headers: dict) -> int | None:
    """Id of the newest backfill of the DAG, or None when it has none."""
    found = httpx.get(f"{server.url}/api/v2/backfills", headers=headers,
                      params={"dag_id": DAG, "order_by": "-id", "limit": 1},
                      timeout=30).json()["backfills"]
    return found[0]["id"] if found else None


def backfill(server: Standalone, headers: dict, reprocess: bool) -> list[dict]:
    """Create a 3-day backfill with the CLI, wait until Airflow marks it complete, and return
    its runs (one per day, oldest first)."""
    cmd = [str(Path(sys.executable).parent / "airflow"), "backfill", "create", "--dag-id", DAG,
           "--from-date", DAYS[0], "--to-date", DAYS[1], "--dag-run-conf", '{"models": []}']
    if reprocess:
        cmd += ["--reprocess-behavior", "completed"]
    known = newest_backfill_id(server, headers)
    for _ in range(5):
        res = subprocess.run(cmd, env=server.env, capture_output=True, text=True, timeout=180)
        if res.returncode == 0:
            break
        # SQLite: the CLI may meet the scheduler's write lock *after* its backfill row was
        # committed; a retry would then be refused as "already running". A new backfill row
        # means the attempt took effect.
        if newest_backfill_id(server, headers) != known:
            break
        if "database is locked" not in res.stderr + res.stdout:
            break
        time.sleep(5)
    assert newest_backfill_id(server, headers) != known, (res.stdout + res.stderr)[-4000:]
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        newest = httpx.get(f"{server.url}/api/v2/backfills", headers=headers,
                           params={"dag_id": DAG, "order_by": "-id", "limit": 1},
                           timeout=30).json()["backfills"][0]
        if newest["completed_at"]:
            runs = httpx.get(f"{server.url}/api/v2/dags/{DAG}/dagRuns", headers=headers,
                             params={"logical_date_gte": f"{DAYS[0]}T00:00:00Z",
                                     "logical_date_lte": f"{DAYS[1]}T00:00:00Z",
                                     "order_by": "logical_date"}, timeout=30).json()
            return runs["dag_runs"]
        time.sleep(5)
    raise TimeoutError("backfill did not complete in 15 minutes")


def test_standalone_backfill_rest_trigger_and_clean_stop(tmp_path: Path,
                                                         tiny_landing: Path) -> None:
    home = fresh_home(tmp_path, tiny_landing)
    port = free_port()
    log = tmp_path / "standalone.log"
    server = Standalone(airflow_env(home, port, parallelism=2), port, log=log)
    server.start()
    pgid = server.proc.pid
    try:
        headers = {"Authorization": f"Bearer {server.token()}"}
        r = httpx.patch(f"{server.url}/api/v2/dags/{DAG}", json={"is_paused": False},
                        headers=headers, timeout=30)
        assert r.status_code == 200, r.text

        first = backfill(server, headers, reprocess=False)
        assert [r["state"] for r in first] == ["success"] * 3, log.read_text()[-4000:]
        ledgers = {p.stem: json.loads(p.read_text())
                   for p in (home / "reports" / "ledger").glob("*.json")}
        assert sorted(ledgers) == ["2026-10-02", "2026-10-03", "2026-10-04"]
        assert all(rec["balanced"] and rec["stored"] > 0 for rec in ledgers.values())
        partitions = sorted(p.name for p in (home / "events").iterdir())
        assert partitions == [f"event_date={d}" for d in sorted(ledgers)]
        before = fingerprint(home)
        second = backfill(server, headers, reprocess=True)
        assert [r["state"] for r in second] == ["success"] * 3, log.read_text()[-4000:]
        after = fingerprint(home)
        changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
        assert changed == [], f"re-running the same intervals changed {changed}"
        # Backfill runs execute concurrently, in any order: the shared feature state is at
        # the newest interval end whichever run finished last.
        horizon = json.loads((home / "features" / "horizon.json").read_text())
        assert horizon == {"until": "2026-10-05T00:00:00+00:00"}

        # The UI's Trigger button: a manual run with Params through the REST API.
        run_id = server.trigger(DAG, conf={"epochs": 1, "batch_size": 256})
        details = httpx.get(f"{server.url}/api/v2/dags/{DAG}/details", headers=headers,
                            timeout=30).json()
        assert "ShopRec pipeline" in details["doc_md"]
        assert details["params"]["epochs"]["schema"]["maximum"] == 50
        bad = httpx.post(f"{server.url}/api/v2/dags/{DAG}/dagRuns",
                         json={"logical_date": None, "conf": {"epochs": 0}}, headers=headers,
                         timeout=30)
        assert bad.status_code >= 400, bad.text
        state = server.wait_for_run(DAG, run_id, timeout=900)
        if state != "success":
            pytest.fail(f"run {run_id} ended {state}; log tail:\n" + log.read_text()[-4000:])
        conf = httpx.get(f"{server.url}/api/v2/dags/{DAG}/dagRuns/{run_id}",
                         headers=headers, timeout=30).json()["conf"]
        assert conf == {"epochs": 1, "batch_size": 256}
        metrics = json.loads(next((home / "models").glob("*/metrics.json")).read_text())
        assert metrics["train_rows"] > 0
        manual = json.loads((home / "reports" / "ledger" / "all.json").read_text())
        # Days 02-04 were committed by the backfill: the manual run stores only the rest.
        assert manual["duplicates"] == sum(rec["stored"] for rec in ledgers.values())
    finally:
        killed = server.stop()
    assert killed == [], f"processes survived SIGINT and had to be killed: {killed}"
    assert group_pids(pgid) == []
