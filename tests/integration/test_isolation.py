"""A real `dag.test()` run with SHOPREC_TASK_PYTHON: the ranker trains in another interpreter.

The other interpreter is a fresh virtualenv (its own ``sys.prefix`` and ``bin/python``) whose
site path chains to this environment's packages, the way a worker's trainer venv carries
ShopRec. To stay within budget the run is the pipeline's ``train_ranker`` task and its
upstream tasks (ingest → validate → features) on the tiny preset, with a 100-row sample.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from shoprec import isolation
from shoprec.airflow_local import airflow_env, run_dag
from shoprec.settings import Settings
from tests.integration.conftest import fresh_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONF = {"models": ["ranker"], "epochs": 1, "batch_size": 256, "sample_size": 100}


def _trainer_venv(root: Path) -> Path:
    """A separate virtualenv that sees this environment's packages (and so ShopRec)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # addsitedir (not a bare path) also runs the .pth files there, e.g. ShopRec's editable one.
    (Path(purelib) / "shoprec_parent_env.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    return python


def test_heavy_task_runs_in_the_configured_interpreter(tmp_path: Path,
                                                       tiny_landing: Path) -> None:
    python = _trainer_venv(tmp_path / "trainer")
    settings = Settings(home=fresh_home(tmp_path, tiny_landing))
    env = {**airflow_env(settings.home), isolation.TASK_PYTHON_ENV: str(python)}
    log = tmp_path / "dag_test.log"
    code = run_dag("shoprec_pipeline", env, CONF, log=log, tasks=["train_ranker"])
    text = log.read_text(errors="replace")
    assert code == 0, text[-6000:]
    run_id, dag_test_pid = re.search(r"DAG_RUN (\S+) success pid=(\d+)", text).groups()

    (run_dir,) = [p for p in (settings.reports_dir / "tasks").iterdir()]
    assert sorted(p.name for p in run_dir.iterdir()) == ["train_ranker.json"]
    record = json.loads((run_dir / "train_ranker.json").read_text())
    assert record["status"] == "success" and record["isolated"] is True
    # Another process of another interpreter, started by the process that ran dag.test()
    # (where ingest, validate and features ran in-process).
    assert record["executable"] == str(python)
    assert record["prefix"] == str(tmp_path / "trainer")
    assert record["ppid"] == int(dag_test_pid) != record["pid"]
    assert f"Executing cmd: {python} " in text
    # ... and it did the real work: a ranker SavedModel in this run's model folder.
    assert record["run_key"] == re.sub(r"[^A-Za-z0-9_-]", "_", run_id)
    ranker_dir = settings.models_dir / record["run_key"] / "ranker"
    assert (ranker_dir / "ranker" / "saved_model.pb").is_file()
    # The run's params reached the other interpreter (as the rendered JSON argument).
    manifest = json.loads((ranker_dir / "manifest.json").read_text())
    assert (manifest["epochs"], manifest["batch_size"], manifest["sample_size"]) == (1, 256, 100)
    metrics = json.loads((ranker_dir / "metrics.json").read_text())
    # the zoo trainer samples each train row with p = 100 / rows (seeded): about 100 rows
    assert manifest["model"] == "dcn" and 50 <= metrics["train_rows"] <= 150
    assert not (settings.models_dir / record["run_key"] / "retrieval").exists()  # not in subset
