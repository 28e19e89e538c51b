"""Daily A/B report: CTR and CVR per experiment variant, with confidence intervals.

Reads the feedback the Bento's ``/feedback`` endpoint logged (each event carries the variant
the user was served) and writes ``reports/ab/ab_report.json``. Cheap to parse: only
``airflow.sdk`` and ``shoprec.runrecords`` are imported at module level.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from shoprec.runrecords import jsonable, on_task_failure

DOC_MD = """
### ShopRec A/B report

CTR (clicks / impressions) and CVR (purchases / clicks) per experiment layer and variant, with
Wilson 95% intervals, from the feedback logged under `landing/events/feedback/`.

| task | what it does | look at |
|---|---|---|
| `report` | aggregates the logged feedback of the last `days` days | `reports/ab/ab_report.json` |
"""



@dag(
    dag_id="shoprec_ab_report",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC_MD,
    params={"days": Param(14, type="integer", minimum=1, maximum=365,
                          description="How many days of feedback to include.")},
    tags=["shoprec"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1),
                  "on_failure_callback": on_task_failure},
)
def shoprec_ab_report() -> None:
    """One task: the report."""

    @task(execution_timeout=timedelta(minutes=30))
    def report(params: dict | None = None, data_interval_end=None) -> dict:
        """Compute and write the A/B report as of the run's time; print its table to the log.

        A scheduled (or backfilled) run reports the ``days`` before its data interval end, so
        re-running a past day reports that day's window; a manual run reports up to now.
        """
        from serving.ab_report import ab_report, format_table
        from shoprec.settings import Settings

        params = params or {}
        result = ab_report(Settings.from_env(), days=int(params.get("days", 14)),
                           now=data_interval_end)
        print(format_table(result))
        return jsonable(result)

    report()


dag = shoprec_ab_report()
