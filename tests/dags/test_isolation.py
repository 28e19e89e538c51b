"""SHOPREC_TASK_PYTHON at DAG-parse time: which tasks leave the worker process, and how.

Each parse runs in a fresh interpreter (like the DAG processor), with and without the setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shoprec import isolation
from shoprec.settings import Settings
from tests.conftest import REPO_ROOT

HEAVY = ("tensorflow", "feast", "great_expectations", "bentoml", "faiss", "pandas")

PROBE = r"""
import json, os, sys, time, pathlib
import airflow.sdk  # the parse environment always has the SDK loaded
from airflow.providers.standard.operators.python import ExternalPythonOperator
path, key = pathlib.Path(sys.argv[1]), sys.argv[2]
out = {}
for label, value in json.loads(sys.argv[3]).items():  # unset first: each parse is a cold one
    os.environ.pop(key, None)
    if value is not None:
        os.environ[key] = value
    before = set(sys.modules)
    t = time.perf_counter()
    scope = {"__name__": path.stem, "__file__": str(path)}
    try:
        exec(compile(path.read_text(), str(path), "exec"), scope)
    except Exception as exc:
        out[label] = {"error": f"{type(exc).__name__}: {exc}"}
        continue
    seconds = time.perf_counter() - t
    tasks = {}
    for op in scope["dag"].tasks:
        external = isinstance(op, ExternalPythonOperator)
        tasks[op.task_id] = {
            "external": external, "python": getattr(op, "python", None),
            "skip_codes": list(getattr(op, "skip_on_exit_code", []) or []),
            "env": getattr(op, "env_vars", None), "timeout": op.execution_timeout.total_seconds(),
            "source": op.get_python_source() if external else None}
    heavy = sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(sys.argv[4:]))
    out[label] = {"seconds": seconds, "tasks": tasks, "heavy": heavy}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def parses(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The pipeline DAG parsed in one fresh interpreter with the setting unset, empty, set to
    an interpreter that does not exist yet (the parse must not need it), and relative."""
    python = str(tmp_path_factory.mktemp("trainer") / "bin" / "python")
    modes = {"unset": None, "empty": "", "set": python, "relative": "venv/bin/python"}
    res = subprocess.run([sys.executable, "-c", PROBE,
                          str(REPO_ROOT / "dags" / "shoprec_pipeline.py"),
                          isolation.TASK_PYTHON_ENV, json.dumps(modes), *HEAVY],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "python": python}


def test_with_task_python_exactly_the_heavy_tasks_run_in_that_interpreter(parses) -> None:
    report, python = parses["set"], parses["python"]
    assert report["seconds"] < 2.0, report["seconds"]
    assert report["heavy"] == [], f"parse imported {report['heavy']}"
    tasks = report["tasks"]
    external = sorted(t for t, info in tasks.items() if info["external"])
    assert external == sorted(isolation.HEAVY_TASKS) == \
        ["evaluate", "package", "train_ranker", "train_retrieval"]
    for task_id in isolation.HEAVY_TASKS:
        info = tasks[task_id]
        assert info["python"] == python
        assert info["skip_codes"] == [isolation.SKIP_EXIT_CODE]
        assert info["env"] == {isolation.ISOLATED_ENV: "1"}
        # What Airflow ships to the other interpreter: the bare function, no decorator, and
        # no name from the DAG module (it must compile and define the callable on its own).
        source = info["source"]
        assert source.startswith(f"def {task_id}(") and "@" not in source
        scope: dict = {}
        exec(compile(source, task_id, "exec"), scope)
        assert set(scope) - {"__builtins__"} == {task_id}
        assert f'run_stage("{task_id}"' in source
    # Timeouts are the same as in-process ones.
    assert tasks["train_ranker"]["timeout"] == tasks["train_retrieval"]["timeout"] == 6 * 3600
    assert tasks["evaluate"]["timeout"] == tasks["package"]["timeout"] == 3600


def test_without_task_python_every_task_runs_in_process(parses) -> None:
    report = parses["unset"]
    assert report["seconds"] < 2.0, report["seconds"]
    assert report["heavy"] == []
    assert len(report["tasks"]) == 9
    assert not any(info["external"] for info in report["tasks"].values())
    assert parses["empty"]["tasks"] == report["tasks"]  # empty means unset
    assert all(info["python"] is None and info["skip_codes"] == []
               for info in report["tasks"].values())


def test_a_relative_task_python_is_a_parse_error_naming_the_setting(parses) -> None:
    assert parses["relative"] == {"error": "ValueError: SHOPREC_TASK_PYTHON must be an absolute "
                                           "path to a python executable with shoprec installed, "
                                           "got 'venv/bin/python'"}


def test_run_stage_maps_a_skip_to_airflow_in_process_and_to_an_exit_code_isolated(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    monkeypatch.setenv("SHOPREC_HOME", str(settings.home))
    monkeypatch.delenv(isolation.ISOLATED_ENV, raising=False)
    upstream = {"run_key": "manual__2026-10-05T00:00:00+00:00"}
    with pytest.raises(AirflowSkipException, match="no models selected"):
        isolation.run_stage("train_ranker", upstream, '{"models": []}')
    path = isolation.process_record_path(settings, upstream["run_key"], "train_ranker")
    assert path.parent.name == "manual__2026-10-05T00_00_00_00_00"  # file-name safe
    record = json.loads(path.read_text())
    assert (record["status"], record["isolated"]) == ("skipped", False)
    assert (record["pid"], record["executable"]) == (os.getpid(), sys.executable)

    monkeypatch.setenv(isolation.ISOLATED_ENV, "1")
    with pytest.raises(SystemExit) as exit_info:
        isolation.run_stage("train_retrieval", upstream, {"models": []})
    assert exit_info.value.code == isolation.SKIP_EXIT_CODE
    record = json.loads(isolation.process_record_path(
        settings, upstream["run_key"], "train_retrieval").read_text())
    assert (record["status"], record["isolated"]) == ("skipped", True)


def test_run_stage_rejects_bad_input_with_a_clear_error(settings: Settings,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPREC_HOME", str(settings.home))
    with pytest.raises(ValueError, match="unknown stage 'train'"):
        isolation.run_stage("train", {"run_key": "k"})
    with pytest.raises(ValueError, match="run params must be a JSON object"):
        isolation.run_stage("train_ranker", {"run_key": "k"}, "{models: []")
    with pytest.raises(ValueError, match="got list"):
        isolation.run_stage("train_ranker", {"run_key": "k"}, "[1, 2]")


def test_compose_worker_has_the_interpreter_every_airflow_service_is_told_about() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    airflow = {n: s for n, s in services.items() if n.startswith("airflow-")}
    pythons = {s["environment"].get(isolation.TASK_PYTHON_ENV) for s in airflow.values()}
    assert len(pythons) == 1  # the scheduler, DAG processor and worker parse the same DAG
    (python,) = pythons
    assert python and Path(python).is_absolute()
    assert services["airflow-worker"]["build"]["target"] == "worker"
    assert {s["build"]["target"] for n, s in airflow.items() if n != "airflow-worker"} == \
        {"airflow"}
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile.airflow").read_text()
    venv = str(Path(python).parent.parent)
    worker_stage = dockerfile.split("AS worker", 1)[1]
    assert f"UV_PROJECT_ENVIRONMENT={venv} uv sync --frozen" in worker_stage
    assert f"{python} -I -c" in worker_stage  # the build fails if it cannot import shoprec
