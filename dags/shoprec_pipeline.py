"""ShopRec pipeline: ingest → validate → features → train ∥ → evaluate → gate → package → promote.

Parsing this file must stay cheap (the scheduler re-parses it constantly): only
``airflow.sdk`` and the tiny ``shoprec.runrecords`` / ``shoprec.isolation`` are imported at
module level. Every stage import (pandas, GX, Feast, TF, BentoML) happens inside its task, and
each task reads settings from the environment because a task is an entry point.

This file is also the entry point that reads ``SHOPREC_TASK_PYTHON`` (at parse time): when set,
the heavy tasks (``shoprec.isolation.HEAVY_TASKS``) run in that interpreter via
``@task.external_python``; unset, every task runs in-process.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

from shoprec.isolation import MODELS as TRAINABLE
from shoprec.isolation import stage_task, task_python
from shoprec.runrecords import EVENTS_ASSET, jsonable, on_task_failure, safe_id
from training.ranker_names import DEFAULT_RANKER, RANKERS

TASK_PYTHON = task_python(os.environ)
"""Interpreter of the heavy tasks, or None to run them in-process (the embedded default)."""
RUN_PARAMS_JSON = "{{ params | tojson }}"
"""The run's params, rendered as JSON: the heavy tasks get them as an argument, which works
the same in-process and in an external interpreter (which gets no Airflow context)."""

DOC_MD = """
### ShopRec pipeline

One run takes the landing files of its **data interval** all the way to a servable bento.
Scheduled and backfilled runs own one day (`[data_interval_start, data_interval_end)`); a
manual run owns the days given in the form, or every landing file when no dates are given.
Every output is keyed by the interval, so re-running an interval replaces what it wrote.
The feature snapshots, online store and training sets are shared: they are built up to the
newest interval end seen so far (`features/horizon.json`), so a backfill, whose runs Airflow
executes concurrently and in any order, never moves serving or training back in time.

| task | what it does | look at |
|---|---|---|
| `ingest` | parse the interval's landing files, quarantine bad rows | `quarantine/<key>/` |
| `validate` | GX suite from the contract; commit (dedup by `event_id`) | `reports/ledger/` |
| `features` | snapshots up to the horizon, Feast, training sets | `datasets/report.json` |
| `train_retrieval` ∥ `train_ranker` | two-tower + index; the `ranker` Param | `models/<key>/` |
| `evaluate` | challenger and champion on the same held-out later interval | `evaluation.json` |
| `gate` | not worse than the champion beyond tolerance, no NaN | `models/<key>/gate.json` |
| `package`, `promote` | a bento pinned to this run; atomic champion switch | `registry/` |

A failing validation stops the run before features, the online store or models are touched;
every failure also writes its reason to `reports/failures/<dag>/<run>/<task>.json`.
With `SHOPREC_TASK_PYTHON` set, the train, evaluate and package tasks run in that interpreter;
`reports/tasks/<key>/<task>.json` records the process and interpreter of each of them.
"""

FORMATS = ["events", "taobao", "movielens", "amazon-seq"]
MODELS = list(TRAINABLE)

RUN_PARAMS = {
    "date_from": Param(None, type=["null", "string"], format="date",
                       description="First day to ingest (manual runs). Empty: the run's data "
                                   "interval, or every landing file."),
    "date_to": Param(None, type=["null", "string"], format="date",
                     description="Last day to ingest, inclusive (default: date_from)."),
    "source": Param("", type="string",
                    description="Folder or file to ingest. Empty: $SHOPREC_HOME/landing/events."),
    "format": Param("events", type="string", enum=FORMATS,
                    description="Source format of the files."),
    "mapping": Param("", type="string",
                     description="Column-mapping file (YAML/JSON) for other shops' event logs."),
    "models": Param(MODELS, type="array", items={"type": "string", "enum": MODELS},
                    uniqueItems=True,
                    description="Models to train; empty ingests and builds features only."),
    "epochs": Param(2, type="integer", minimum=1, maximum=50,
                    description="Training epochs for both models."),
    "batch_size": Param(1024, type="integer", minimum=32, maximum=65536,
                        description="Training batch size."),
    "sample_size": Param(None, type=["null", "integer"], minimum=100,
                         description="Train on a deterministic sample of this many rows."),
    "ranker": Param(DEFAULT_RANKER, type="string", enum=list(RANKERS),
                    description="Ranker to train (the zoo in training/rankers): wide_deep, "
                                "deepfm, dcn, din, dien, dmr, pnn, nfm, deep_resnet, mmoe, esmm."),
    "warm_start": Param(True, type="boolean",
                        description="Start the ranker from the champion's checkpoint when it "
                                    "is the same model with the same inputs."),
    "two_tower": Param({}, type="object",
                       description="Two-tower options (TwoTowerOptions fields), e.g. "
                                   '{"mixed_negatives": 1024} or {"user_tower": '
                                   '"multi_interest"} (needs an item-id history feature).'),
    "force_promote": Param(False, type="boolean",
                           description="Promote even if worse than the champion (never NaN)."),
}


# The heavy tasks: self-contained callables (imports inside, everything from their arguments)
# because with SHOPREC_TASK_PYTHON set, Airflow runs their source in the other interpreter.


def train_retrieval(report: dict, run_params: str) -> str:
    """Two-tower towers + FAISS index of the catalogue (runs beside train_ranker)."""
    from shoprec.isolation import run_stage

    return run_stage("train_retrieval", report, run_params)


def train_ranker(report: dict, run_params: str) -> str:
    """The chosen zoo ranker (runs beside train_retrieval)."""
    from shoprec.isolation import run_stage

    return run_stage("train_ranker", report, run_params)


def evaluate(report: dict, retrieval_dir: str, ranker_dir: str) -> dict:
    """Challenger and current champion, scored on the same held-out later interval."""
    from shoprec.isolation import run_stage

    return run_stage("evaluate", report)


def package(evaluation: dict) -> dict:
    """Save the run's two models as one unit and build a bento pinned to them."""
    from shoprec.isolation import run_stage

    return run_stage("package", evaluation)



@dag(
    dag_id="shoprec_pipeline",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC_MD,
    params=RUN_PARAMS,
    tags=["shoprec"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30),
                  "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=10),
                  "on_failure_callback": on_task_failure},
)
def shoprec_pipeline() -> None:
    """Declare the stage chain; the tasks are thin calls into the stage packages."""

    @task(execution_timeout=timedelta(hours=2))
    def ingest(params: dict | None = None, data_interval_start=None, data_interval_end=None,
               run_id: str | None = None) -> dict:
        """Stage the landing files of this run's interval and refresh the item/user tables."""
        from pathlib import Path

        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from shoprec.ingest import ingest_tables, stage_files
        from shoprec.intervals import resolve, select_files
        from shoprec.settings import Settings

        settings, params = Settings.from_env(), params or {}
        try:
            interval = resolve(data_interval_start, data_interval_end, params.get("date_from"),
                               params.get("date_to"))
        except ValueError as err:
            raise AirflowFailException(str(err)) from err
        source = Path(params.get("source") or settings.landing_dir / "events")
        if not source.exists():
            raise AirflowFailException(f"source {source} does not exist")
        files = [source] if source.is_file() else select_files(source, interval)
        if not files:
            raise AirflowSkipException(f"no landing files for interval {interval.key} in {source}")
        tables = ingest_tables(settings, settings.landing_dir) \
            if (settings.landing_dir / "items.parquet").exists() else {}
        fmt = params.get("format", "events")
        report = stage_files(files, settings, interval.key, fmt=fmt,
                             mapping=params.get("mapping") or None)
        print(report)
        run_key = interval.key if interval.bounded else safe_id(run_id or "manual")
        return {"batch_id": interval.key, "run_key": run_key, "files": len(files), "format": fmt,
                "until": interval.end.isoformat() if interval.end else None,
                "tables": jsonable(tables), "read": report.read, "staged": report.staged,
                "quarantined": report.quarantined}

    @task(execution_timeout=timedelta(hours=1), outlets=[Asset(EVENTS_ASSET)])
    def validate(staged: dict) -> dict:
        """Gate the staged batch with GX (chunk by chunk); commit it only if it passes."""
        import pandas as pd
        from airflow.sdk.exceptions import AirflowFailException

        from shoprec.ingest import commit_batch
        from shoprec.quarantine import format_ledger, update_ledger
        from shoprec.settings import Settings
        from validation.gate import ValidationFailed, validate_staged
        from validation.run import gate_config_for

        settings = Settings.from_env()
        batch_id = staged["batch_id"]
        try:
            result = validate_staged(settings, batch_id, now=pd.Timestamp.now(tz="UTC"),
                                     config=gate_config_for(staged["format"]))
        except ValidationFailed as exc:
            raise AirflowFailException(f"ValidationFailed: {exc}") from exc
        print(result)
        commit = commit_batch(settings, batch_id, path=result.valid_path)
        print(commit)
        print(format_ledger(update_ledger(settings, batch_id)))
        return {**staged, "stored": commit.stored, "duplicates": commit.duplicates}

    @task(execution_timeout=timedelta(hours=2), pool="shoprec_features")
    def features(committed: dict) -> dict:
        """Snapshots → feast apply → online materialization → point-in-time training sets."""
        import pandas as pd

        from feature_repo import build, horizon, store, training_set
        from shoprec.settings import Settings

        settings = Settings.from_env()
        contract = settings.load_contract()
        own = pd.Timestamp(committed["until"]) if committed.get("until") else None
        until = horizon.effective_until(settings, own)
        if until != own:
            print(f"interval ends {own}; the shared feature state stays at the newer {until}")
        snapshots = build.build_snapshots(settings, contract, until=until)
        store.apply(settings, contract)
        fs = store.open_store(settings)
        materialized = store.materialize(settings, fs, contract)
        sets = training_set.build_training_sets(settings, contract, fs, until=until)
        horizon.record_horizon(settings, until)
        return {**committed, "snapshots": jsonable(snapshots),
                "built_until": until and until.isoformat(),
                "materialized": jsonable(materialized), "datasets": jsonable(sets)}

    @task(execution_timeout=timedelta(minutes=10))
    def gate(evaluation: dict, params: dict | None = None) -> dict:
        """Promote only a challenger that is not worse than the champion beyond tolerance."""
        from airflow.sdk.exceptions import AirflowSkipException

        from shoprec.settings import Settings
        from training.gate import GateTolerance, gate_run

        params = params or {}
        decision = gate_run(Settings.from_env(), evaluation["run_key"], GateTolerance(),
                            force=bool(params.get("force_promote", False)))
        for reason in decision.reasons:
            print(reason)
        if not decision.promote:
            raise AirflowSkipException("challenger not promoted; serving keeps the champion: "
                                       + " | ".join(decision.reasons))
        return evaluation

    @task(execution_timeout=timedelta(minutes=10))
    def promote(packaged: dict) -> dict:
        """Atomically point the champion at the new bento (serving picks it up on restart)."""
        from serving.registry import promote as make_champion
        from shoprec.settings import Settings

        record = make_champion(Settings.from_env(), packaged["run_key"], packaged["bento_tag"],
                               packaged["challenger"])
        print(f"champion is now {record['run_id']} ({record['bento_tag']})")
        return jsonable(record)

    hours, python = timedelta(hours=1), TASK_PYTHON
    report = features(validate(ingest()))
    retrieval = stage_task(train_retrieval, python, execution_timeout=6 * hours)(
        report, RUN_PARAMS_JSON)
    ranker = stage_task(train_ranker, python, execution_timeout=6 * hours)(
        report, RUN_PARAMS_JSON)
    scored = stage_task(evaluate, python, execution_timeout=hours)(report, retrieval, ranker)
    packaged = stage_task(package, python, execution_timeout=hours)(gate(scored))
    promote(packaged)


dag = shoprec_pipeline()
