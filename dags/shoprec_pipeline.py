"""ShopRec end-to-end pipeline: ingest → validate → features → train → package.

Parsing this file must stay cheap (the scheduler re-parses it constantly): only
``airflow.sdk`` is imported at module level. Every stage import (pandas, GX, Feast, TF,
BentoML) happens inside its task, and each task reads settings from the environment
because a task is an entry point.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

DOC_MD = """
### ShopRec pipeline

One run takes the event files waiting in `$SHOPREC_HOME/landing/` all the way to a
servable bento:

| task | what it does | look at |
|---|---|---|
| `ingest` | parse landing files, quarantine bad rows, stage the batch | `quarantine/` |
| `validate` | GX suite from the contract; commit the batch (dedup) | `reports/data_docs/` |
| `features` | snapshots, `feast apply`, materialize, training sets | `feast/`, `datasets/` |
| `train` | two-tower + DCN SavedModels, FAISS index, metrics | `models/<run>/` |
| `package` | BentoML models and the bento | `bentoml/` |

A failing validation stops the run before features, the online store or models are touched.
"""

RUN_PARAMS = {
    "epochs": Param(2, type="integer", minimum=1, maximum=50,
                    description="Training epochs for both models."),
    "batch_size": Param(1024, type="integer", minimum=32, maximum=65536,
                        description="Training batch size."),
}


def _safe_id(run_id: str) -> str:
    """Turn an Airflow run id into a file-name-safe batch/run id (stable for reruns)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)


@dag(
    dag_id="shoprec_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC_MD,
    params=RUN_PARAMS,
    tags=["shoprec"],
    default_args={"retries": 0},
)
def shoprec_pipeline() -> None:
    """Declare the stage chain; the tasks are thin calls into the stage packages."""

    @task
    def ingest(run_id: str | None = None) -> dict:
        """Stage every landing event file and refresh the item/user tables."""
        from shoprec.ingest import ingest_tables, stage_files
        from shoprec.settings import Settings

        settings = Settings.from_env()
        batch_id = _safe_id(run_id or "manual")
        files = sorted(p for p in (settings.landing_dir / "events").glob("*") if p.is_file())
        if not files:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"no event files in {settings.landing_dir / 'events'}")
        tables = ingest_tables(settings, settings.landing_dir)
        report = stage_files(files, settings, batch_id)
        print(report)
        return {"batch_id": batch_id, "files": len(files), "tables": _jsonable(tables),
                "read": report.read, "staged": report.staged,
                "quarantined": report.quarantined}

    @task
    def validate(staged: dict) -> dict:
        """Gate the staged batch with GX; commit it to the event store only if it passes."""
        import pandas as pd
        from airflow.sdk.exceptions import AirflowFailException

        from shoprec.ingest import commit_batch
        from shoprec.settings import Settings
        from validation.gate import ValidationFailed, validate_batch

        settings = Settings.from_env()
        batch_id = staged["batch_id"]
        df = pd.read_parquet(settings.staging_dir / f"{batch_id}.parquet")
        try:
            result = validate_batch(df, settings, batch_id, now=pd.Timestamp.now(tz="UTC"))
        except ValidationFailed as exc:
            raise AirflowFailException(str(exc)) from exc
        print(result)
        commit = commit_batch(settings, batch_id, result.valid)
        print(commit)
        from shoprec.quarantine import format_ledger, update_ledger

        print(format_ledger(update_ledger(settings, batch_id)))
        return {"batch_id": batch_id, "stored": commit.stored, "duplicates": commit.duplicates}

    @task
    def features(committed: dict) -> dict:
        """Snapshots → feast apply → online materialization → point-in-time training sets."""
        from feature_repo import build, store, training_set
        from shoprec.settings import Settings

        settings = Settings.from_env()
        contract = settings.load_contract()
        snapshots = build.build_snapshots(settings, contract)
        store.apply(settings, contract)
        fs = store.open_store(settings)
        materialized = store.materialize(settings, fs, contract)
        sets = training_set.build_training_sets(settings, contract, fs)
        return {"snapshots": {k: str(v) for k, v in snapshots.items()},
                "materialized": _jsonable(materialized), "datasets": _jsonable(sets)}

    @task
    def train(feature_report: dict, run_id: str | None = None, params: dict | None = None) -> str:
        """Train the two-tower and DCN models and build the FAISS index for this run."""
        import pandas as pd

        from feature_repo import store
        from shoprec.contract import ITEM_TOWER
        from shoprec.settings import Settings
        from training.pipeline import train as train_models

        settings = Settings.from_env()
        contract = settings.load_contract()
        params = params or {}
        items = pd.read_parquet(settings.tables_dir / "items.parquet", columns=["item_id"])
        item_features = store.online_features(store.open_store(settings), contract, ITEM_TOWER,
                                              items)
        run_dir = train_models(settings, contract, _safe_id(run_id or "manual"), item_features,
                               epochs=int(params.get("epochs", 2)),
                               batch_size=int(params.get("batch_size", 1024)))
        print((run_dir / "metrics.json").read_text())
        return str(run_dir)

    @task
    def package(run_dir: str) -> str:
        """Save the run's models to the BentoML store and build the bento."""
        from pathlib import Path

        from serving.package import package as build_bento
        from shoprec.settings import Settings

        tag = build_bento(Settings.from_env(), Path(run_dir))
        print(f"built bento {tag}")
        return tag

    package(train(features(validate(ingest()))))


def _jsonable(obj: object) -> object:
    """Make a stage report XCom-safe (paths and numpy scalars become plain values)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, int | float | str | bool) or obj is None:
        return obj
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


dag = shoprec_pipeline()
