"""Keep the online store fresh between daily pipeline runs: snapshots, then materialize.

Runs hourly, and also as soon as the pipeline commits a batch to the event store (the
``EVENTS_ASSET`` asset), so newly landed events reach the online store without waiting for the
next training run. Materialization is incremental and resumable: each run loads only snapshot
days after the last materialized end recorded in ``feast/materialized.json``, and a run killed
half-way simply loads the same range again next time.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from shoprec.runrecords import EVENTS_ASSET, jsonable, on_task_failure

DOC_MD = """
### ShopRec features

Refreshes the offline snapshots from every committed event and materializes the new days
into the online store. Triggered hourly and whenever `shoprec_pipeline` commits events.

| task | what it does | look at |
|---|---|---|
| `snapshots` | daily point-in-time snapshots of every contract view | `features/*.parquet` |
| `materialize` | Feast apply, incremental materialization | `feast/materialized.json` |

Both tasks share the `shoprec_features` pool with the pipeline's `features` task, so the
snapshot files are never rebuilt by two runs at once.
"""

FEATURE_POOL = "shoprec_features"



@dag(
    dag_id="shoprec_features",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"),
                                 assets=Asset(EVENTS_ASSET)),
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC_MD,
    tags=["shoprec"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30),
                  "retry_exponential_backoff": True, "on_failure_callback": on_task_failure,
                  "pool": FEATURE_POOL},
)
def shoprec_features() -> None:
    """Snapshots, then incremental materialization."""

    @task(execution_timeout=timedelta(hours=1))
    def snapshots() -> dict:
        """Rebuild the daily snapshots from the event store (nothing committed: skip)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from feature_repo import build
        from shoprec.settings import Settings

        settings = Settings.from_env()
        if not any(settings.events_dir.glob("event_date=*/*.parquet")):
            raise AirflowSkipException(f"no committed events under {settings.events_dir} yet")
        return jsonable(build.build_snapshots(settings, settings.load_contract()))

    @task(execution_timeout=timedelta(hours=1))
    def materialize(paths: dict) -> dict:
        """Apply the contract's definitions, then load the snapshot days not yet online."""
        from feature_repo import store
        from shoprec.settings import Settings

        settings = Settings.from_env()
        contract = settings.load_contract()
        store.apply(settings, contract)
        loaded = store.materialize(settings, store.open_store(settings), contract)
        print(loaded)
        return jsonable(loaded)

    materialize(snapshots())


dag = shoprec_features()
