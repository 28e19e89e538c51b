"""ShopRec end-to-end pipeline: ingest → validate → features → train → package.

Parsing this file must stay cheap (the scheduler re-parses it constantly): only
``airflow.sdk`` and the tiny ``shoprec.runrecords`` are imported at module level. Every stage
import (pandas, GX, Feast, TF, BentoML) happens inside its task, and each task reads settings
from the environment because a task is an entry point.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

from shoprec.runrecords import EVENTS_ASSET, jsonable, record_failure, safe_id

DOC_MD = """
### ShopRec pipeline

One run takes the landing files of its **data interval** all the way to a servable bento.
Scheduled and backfilled runs own one day (`[data_interval_start, data_interval_end)`); a
manual run owns the days given in the form, or every landing file when no dates are given.
Every output is keyed by the interval, so re-running an interval replaces what it wrote.

| task | what it does | look at |
|---|---|---|
| `ingest` | parse the interval's landing files, quarantine bad rows | `quarantine/<key>/` |
| `validate` | GX suite from the contract; commit (dedup by `event_id`) | `reports/ledger/` |
| `features` | snapshots up to the interval end, Feast, training sets | `datasets/report.json` |
| `train` | two-tower + DCN SavedModels, FAISS index, metrics | `models/<key>/` |
| `package` | BentoML models and the bento | `bentoml/` |

A failing validation stops the run before features, the online store or models are touched;
every failure also writes its reason to `reports/failures/<dag>/<run>/<task>.json`.
"""

FORMATS = ["events", "taobao", "movielens", "amazon-seq"]
MODELS = ["two_tower", "ranker"]

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
    "models": Param(MODELS, type="array", items={"type": "string", "enum": MODELS},
                    uniqueItems=True,
                    description="Models to train; empty ingests and builds features only."),
    "epochs": Param(2, type="integer", minimum=1, maximum=50,
                    description="Training epochs for both models."),
    "batch_size": Param(1024, type="integer", minimum=32, maximum=65536,
                        description="Training batch size."),
    "sample_size": Param(None, type=["null", "integer"], minimum=100,
                         description="Train on a deterministic sample of this many rows."),
    "force_promote": Param(False, type="boolean",
                           description="Promote even if worse than the champion (never NaN)."),
}


def _on_failure(context: dict) -> None:
    """Write the failure reason where operators and scripts look for it."""
    from shoprec.settings import Settings

    ti = context["ti"]
    record_failure(Settings.from_env(), ti.dag_id, ti.run_id, ti.task_id,
                   context.get("exception"), getattr(ti, "try_number", None))


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
                  "on_failure_callback": _on_failure},
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
        report = stage_files(files, settings, interval.key, fmt=params.get("format", "events"))
        print(report)
        run_key = interval.key if interval.bounded else safe_id(run_id or "manual")
        return {"batch_id": interval.key, "run_key": run_key, "files": len(files),
                "until": interval.end.isoformat() if interval.end else None,
                "tables": jsonable(tables), "read": report.read, "staged": report.staged,
                "quarantined": report.quarantined}

    @task(execution_timeout=timedelta(hours=1), outlets=[Asset(EVENTS_ASSET)])
    def validate(staged: dict) -> dict:
        """Gate the staged batch with GX; commit it to the event store only if it passes."""
        import pandas as pd
        from airflow.sdk.exceptions import AirflowFailException

        from shoprec.ingest import commit_batch
        from shoprec.quarantine import format_ledger, update_ledger
        from shoprec.settings import Settings
        from validation.gate import ValidationFailed, validate_batch

        settings = Settings.from_env()
        batch_id = staged["batch_id"]
        df = pd.read_parquet(settings.staging_dir / f"{batch_id}.parquet")
        try:
            result = validate_batch(df, settings, batch_id, now=pd.Timestamp.now(tz="UTC"))
        except ValidationFailed as exc:
            raise AirflowFailException(f"ValidationFailed: {exc}") from exc
        print(result)
        commit = commit_batch(settings, batch_id, result.valid)
        print(commit)
        print(format_ledger(update_ledger(settings, batch_id)))
        return {**staged, "stored": commit.stored, "duplicates": commit.duplicates}

    @task(execution_timeout=timedelta(hours=2))
    def features(committed: dict) -> dict:
        """Snapshots → feast apply → online materialization → point-in-time training sets."""
        import pandas as pd

        from feature_repo import build, store, training_set
        from shoprec.settings import Settings

        settings = Settings.from_env()
        contract = settings.load_contract()
        until = pd.Timestamp(committed["until"]) if committed.get("until") else None
        snapshots = build.build_snapshots(settings, contract, until=until)
        store.apply(settings, contract)
        fs = store.open_store(settings)
        materialized = store.materialize(settings, fs, contract)
        sets = training_set.build_training_sets(settings, contract, fs, until=until)
        return {**committed, "snapshots": jsonable(snapshots),
                "materialized": jsonable(materialized), "datasets": jsonable(sets)}

    @task(execution_timeout=timedelta(hours=6))
    def train(feature_report: dict, params: dict | None = None) -> str:
        """Train the two-tower and DCN models and build the FAISS index for this run."""
        import pandas as pd
        from airflow.sdk.exceptions import AirflowSkipException

        from feature_repo import store
        from shoprec.contract import ITEM_TOWER
        from shoprec.settings import Settings
        from training.pipeline import train as train_models

        params = params or {}
        if not params.get("models", MODELS):
            raise AirflowSkipException("no models selected: data and features only")
        settings = Settings.from_env()
        contract = settings.load_contract()
        items = pd.read_parquet(settings.tables_dir / "items.parquet", columns=["item_id"])
        item_features = store.online_features(store.open_store(settings), contract, ITEM_TOWER,
                                              items)
        run_dir = train_models(settings, contract, feature_report["run_key"], item_features,
                               epochs=int(params.get("epochs", 2)),
                               batch_size=int(params.get("batch_size", 1024)))
        print((run_dir / "metrics.json").read_text())
        return str(run_dir)

    @task(execution_timeout=timedelta(hours=1))
    def package(run_dir: str) -> str:
        """Save the run's models to the BentoML store and build the bento."""
        from pathlib import Path

        from serving.package import package as build_bento
        from shoprec.settings import Settings

        tag = build_bento(Settings.from_env(), Path(run_dir))
        print(f"built bento {tag}")
        return tag

    package(train(features(validate(ingest()))))


dag = shoprec_pipeline()
