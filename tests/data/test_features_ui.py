"""The Feast UI started by ``python -m feature_repo.ui`` lists every contract object."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from shoprec.contract import CONTRACT
from tests.conftest import REPO_ROOT, free_port


@pytest.mark.integration
@pytest.mark.slow
def test_ui_lists_contract_objects_and_stops_cleanly(settings):
    port = free_port()
    env = {**os.environ, **settings.env(), "FEAST_USAGE": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "feature_repo.ui", "--apply", "--port",
                             str(port)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                if httpx.get(f"{base}/projects", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Feast UI did not come up within 120 s"
            time.sleep(1)
        projects = httpx.get(f"{base}/projects").json()["projects"]
        assert CONTRACT.project in [p["spec"]["name"] for p in projects]
        q = {"project": CONTRACT.project}
        views = httpx.get(f"{base}/feature_views", params=q).json()["featureViews"]
        # the UI lists batch and on-demand (request-time) views together
        assert sorted(v["spec"]["name"] for v in views) == sorted(
            v.name for v in [*CONTRACT.views, *CONTRACT.request_views])
        services = httpx.get(f"{base}/feature_services", params=q).json()["featureServices"]
        by_name = {s["spec"]["name"]: s["spec"] for s in services}
        assert sorted(by_name) == sorted(CONTRACT.services)
        for name, spec in by_name.items():
            served = [c["name"] for fv in spec["features"] for c in fv["featureColumns"]]
            assert sorted(served) == sorted(f.name for f in CONTRACT.service_features(name))
        entities = httpx.get(f"{base}/entities", params=q).json()["entities"]
        ours = [e for e in entities if not e["spec"]["name"].startswith("__")]  # feast's dummy
        assert sorted(e["spec"]["joinKey"] for e in ours) == sorted(
            e.join_key for e in CONTRACT.entities)
    finally:
        proc.send_signal(signal.SIGTERM)  # the module exec()s feast: this PID is the server
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode is not None
    leftovers = subprocess.run(["pgrep", "-f", f"ui --host 127.0.0.1 --port {port}"],
                               capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
