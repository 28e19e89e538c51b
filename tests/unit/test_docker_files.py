"""The docker/ files are checked without a Docker engine (none runs here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

DOCKER = REPO_ROOT / "docker"


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    files = sorted(str(p) for p in DOCKER.glob("Dockerfile.*"))
    assert len(files) == 3
    res = subprocess.run([str(hadolint), "--failure-threshold", "info", *files],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfiles_copy_only_paths_that_exist() -> None:
    for dockerfile in DOCKER.glob("Dockerfile.*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY") and "${" not in line:
                for src in line.split()[1:-1]:
                    assert (REPO_ROOT / src).exists(), f"{dockerfile.name}: COPY {src} missing"


def test_compose_stack_is_consistent() -> None:
    spec = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = spec["services"]
    assert {"postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-worker",
            "airflow-dag-processor", "airflow-triggerer", "bento"} <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            assert vol.split(":")[0] in spec["volumes"], f"{name}: unknown volume {vol}"
        build = svc.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).exists()
    env = services["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
