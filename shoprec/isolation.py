"""Task isolation: run the heavy pipeline stages in another Python interpreter.

Training, evaluation and packaging import TensorFlow, Feast and BentoML (≈ 1.5 GB together) and
pin their versions. Run in the Airflow worker's own process, they share its memory and its
dependency set. With ``SHOPREC_TASK_PYTHON`` set to the interpreter of another virtualenv that
has ShopRec installed (``/opt/trainer/bin/python`` in the compose worker image), the DAG turns
exactly those stages into ``@task.external_python`` tasks: each runs in a fresh process of that
interpreter, which exits (and frees its memory) when the stage ends. Unset, every task runs
in-process as before, which is what the embedded mode and ``dag.test()`` use by default.

The same stage code runs either way. The DAG's task callables are three-line wrappers that
Airflow can ship to the other interpreter as source: they import :func:`run_stage` and get
everything through their arguments (upstream XCom values and the run's params as JSON),
because an external interpreter gets neither the DAG module nor the full task context.

This module sits with the DAG files on the entry-point side of the import graph: its stage
functions read :meth:`Settings.from_env` and import the stage packages inside the functions,
so importing it at DAG-parse time costs nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoprec.atomic import write_text_atomic
from shoprec.runrecords import jsonable, safe_id
from shoprec.settings import Settings

TASK_PYTHON_ENV = "SHOPREC_TASK_PYTHON"
"""Interpreter for the heavy tasks; read once by the pipeline DAG file at parse time."""
ISOLATED_ENV = "SHOPREC_ISOLATED_TASK"
"""Set to ``1`` in the environment of an isolated task's process."""
SKIP_EXIT_CODE = 99
"""Exit code by which an isolated stage tells Airflow to mark the task skipped."""
HEAVY_TASKS = ("train_retrieval", "train_ranker", "evaluate", "package")
"""The pipeline tasks that run in the other interpreter when one is configured."""
MODELS = ("two_tower", "ranker")
"""The trainable models, in the order the ``models`` run param lists them."""
_PARTS = {"train_retrieval": ("retrieval", "two_tower"), "train_ranker": ("ranker", "ranker")}


class StageSkipped(Exception):
    """The stage has nothing to do for this run; the task becomes *skipped*, not failed."""


class StageFailed(Exception):
    """The stage cannot succeed for this run, whatever the retries; the message says why."""


def task_python(env: Mapping[str, str]) -> str | None:
    """The configured interpreter for isolated tasks, or ``None`` for in-process tasks.

    Only the path's form is checked here (at parse time): the scheduler and DAG processor
    parse the DAG without needing the interpreter; the operator checks that it exists on the
    worker that runs the task.

    Raises:
        ValueError: naming ``SHOPREC_TASK_PYTHON`` when the path is not absolute.
    """
    value = env.get(TASK_PYTHON_ENV, "").strip()
    if not value:
        return None
    if not Path(value).is_absolute():
        raise ValueError(f"{TASK_PYTHON_ENV} must be an absolute path to a python executable "
                         f"with shoprec installed, got {value!r}")
    return value


def stage_task(fn: Callable[..., Any], python: str | None, **task_kwargs: Any) -> Any:
    """Make ``fn`` an in-process ``@task`` or, with ``python``, an ``@task.external_python``.

    ``fn`` must be self-contained (imports inside, everything else from its arguments), since
    in the isolated case Airflow runs its source in ``python``. The isolated task needs no
    Airflow context (``expect_airflow=False`` skips probing the other environment's Airflow),
    maps :data:`SKIP_EXIT_CODE` to *skipped*, and marks its process with :data:`ISOLATED_ENV`.

    Args:
        fn: The task callable.
        python: Absolute path of the other interpreter, or ``None`` for in-process.
        **task_kwargs: Operator arguments (``execution_timeout``, ``pool``, ...).
    """
    from airflow.sdk import task

    if python is None:
        return task(**task_kwargs)(fn)
    return task.external_python(python=python, expect_airflow=False,
                                skip_on_exit_code=SKIP_EXIT_CODE,
                                env_vars={ISOLATED_ENV: "1"}, **task_kwargs)(fn)


def process_record_path(settings: Settings, run_key: str, task_id: str) -> Path:
    """``reports/tasks/<run_key>/<task>.json``: which process and interpreter ran a stage."""
    return settings.reports_dir / "tasks" / safe_id(run_key) / f"{task_id}.json"


def _write_record(settings: Settings, run_key: str, task_id: str, record: dict) -> None:
    write_text_atomic(process_record_path(settings, run_key, task_id),
                      json.dumps(record, indent=2) + "\n")


def _parse_params(run_params: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if run_params is None:
        return {}
    if isinstance(run_params, Mapping):
        return dict(run_params)
    try:
        params = json.loads(run_params)
    except json.JSONDecodeError as err:
        raise ValueError(f"run params must be a JSON object, got {run_params[:200]!r}: "
                         f"{err}") from err
    if not isinstance(params, dict):
        raise ValueError(f"run params must be a JSON object, got {type(params).__name__}")
    return params


def run_stage(task_id: str, upstream: Mapping[str, Any],
              run_params: str | Mapping[str, Any] | None = None) -> Any:
    """Run one heavy stage, in whichever process this is, and record that process.

    Called by the DAG's task callables in both modes. Stage outcomes become Airflow's task
    states: :class:`StageSkipped` → skipped (in an isolated process, exit code
    :data:`SKIP_EXIT_CODE`), :class:`StageFailed` → failed without retries in-process (an
    isolated process can only fail, so Airflow's retries apply there).

    Args:
        task_id: One of :data:`HEAVY_TASKS`.
        upstream: The upstream task's XCom (carries ``run_key``).
        run_params: The run's params, as a JSON object string (rendered ``{{ params | tojson }}``)
            or a mapping.

    Returns:
        The stage's XCom value (plain JSON types).
    """
    if task_id not in _STAGES:
        raise ValueError(f"unknown stage {task_id!r}; expected one of {list(_STAGES)}")
    settings, params = Settings.from_env(), _parse_params(run_params)
    isolated = os.environ.get(ISOLATED_ENV) == "1"
    run_key = str(upstream["run_key"])
    record = {"task_id": task_id, "run_key": run_key, "pid": os.getpid(), "ppid": os.getppid(),
              "executable": sys.executable, "prefix": sys.prefix, "isolated": isolated,
              "started_at": datetime.now(UTC).isoformat(), "status": "failed"}
    started = time.monotonic()
    try:
        result = jsonable(_STAGES[task_id](settings, upstream, params))
        record["status"] = "success"
        return result
    except StageSkipped as exc:
        record["status"], record["reason"] = "skipped", str(exc)
        if isolated:
            print(f"stage skipped: {exc}", flush=True)
            raise SystemExit(SKIP_EXIT_CODE) from exc
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(str(exc)) from exc
    except StageFailed as exc:
        record["reason"] = str(exc)
        if isolated:
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
    except Exception as exc:
        record["reason"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record["seconds"] = round(time.monotonic() - started, 3)
        _write_record(settings, run_key, task_id, record)


def _train(task_id: str, settings: Settings, report: Mapping[str, Any],
           params: Mapping[str, Any]) -> str:
    """Train one part of the run, or adopt the champion's when its model is not selected."""
    part, model = _PARTS[task_id]
    chosen = params.get("models", list(MODELS))
    if not chosen:
        raise StageSkipped("no models selected: data and features only")
    from serving.registry import champion
    from training import pipeline, runs

    run_id = str(report["run_key"])
    if model not in chosen:
        current = champion(settings)
        if current is None:
            raise StageFailed(f"{model} not selected and no champion to reuse it from")
        return str(runs.adopt_part(settings, run_id, part, current["run_id"]))
    contract = settings.load_contract()
    budget = {"epochs": int(params.get("epochs", 2)),
              "batch_size": int(params.get("batch_size", 1024)),
              "sample_size": params.get("sample_size")}
    if part == runs.RANKER_PART:
        from training.ranker_names import DEFAULT_RANKER

        name = str(params.get("ranker") or DEFAULT_RANKER)
        current = champion(settings) if params.get("warm_start", True) else None
        return str(pipeline.train_ranker(settings, contract, run_id, **budget, model=name,
                                         warm_start_run=current and current["run_id"]))
    import pandas as pd

    from feature_repo import store
    from shoprec.contract import ITEM_TOWER

    items = pd.read_parquet(settings.tables_dir / "items.parquet", columns=["item_id"])
    item_features = store.online_features(store.open_store(settings), contract, ITEM_TOWER, items)
    return str(pipeline.train_retrieval(settings, contract, run_id, item_features, **budget,
                                        options=two_tower_options(params)))


def two_tower_options(params: Mapping[str, Any]) -> Any:
    """The run's ``two_tower`` param as :class:`training.two_tower_options.TwoTowerOptions`.

    Raises:
        ValueError: naming unknown option names or a bad value (before any training).
    """
    from dataclasses import fields

    from training.two_tower_options import TwoTowerOptions

    given = params.get("two_tower") or {}
    if not isinstance(given, Mapping):
        raise ValueError(f"param two_tower must be an object, got {type(given).__name__}")
    unknown = sorted(set(given) - {f.name for f in fields(TwoTowerOptions)})
    if unknown:
        raise ValueError(f"param two_tower has unknown options {unknown}")
    return TwoTowerOptions(**given)


def _evaluate(settings: Settings, report: Mapping[str, Any], _params: Mapping[str, Any]) -> dict:
    """Challenger and current champion, scored on the same held-out later interval."""
    from serving.registry import champion
    from training.evaluate import evaluate

    current = champion(settings)
    result = evaluate(settings, settings.load_contract(), report["run_key"],
                      current["run_id"] if current else None)
    print(result)
    return {"run_key": report["run_key"], "challenger": result["challenger"]}


def _package(settings: Settings, evaluation: Mapping[str, Any],
             _params: Mapping[str, Any]) -> dict:
    """Save the run's two models as one unit and build a bento pinned to them."""
    from serving.package import package_run

    tag = package_run(settings, evaluation["run_key"])
    print(f"built bento {tag}")
    return {**evaluation, "bento_tag": tag}


_STAGES: dict[str, Callable[[Settings, Mapping[str, Any], Mapping[str, Any]], Any]] = {
    "train_retrieval": lambda s, r, p: _train("train_retrieval", s, r, p),
    "train_ranker": lambda s, r, p: _train("train_ranker", s, r, p),
    "evaluate": _evaluate,
    "package": _package,
}
