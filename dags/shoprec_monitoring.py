"""Daily model monitoring: feature drift (PSI), then training-serving skew, for one interval.

Cheap to parse: only ``airflow.sdk`` and ``shoprec.runrecords`` are imported at module level;
pandas, pyarrow and Feast are imported inside the tasks, which read settings from the
environment because a task is an entry point. Both reports are keyed by the interval, so a
re-run or a backfill of an interval replaces exactly its own reports.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from shoprec.runrecords import jsonable, on_task_failure

DOC_MD = """
### ShopRec monitoring

For the run's **data interval** (scheduled: one day; manual: the days in the form, or the
newest feature-snapshot day when none are given):

| task | what it does | look at |
|---|---|---|
| `drift` | PSI per contract feature vs the training window | `reports/drift/<interval>/` |
| `skew` | logged served vectors vs the offline join | `reports/skew/<interval>/` |

`drift` compares the interval's feature snapshots with the training window (every earlier
snapshot, or the last `reference_days`) and alerts above `psi_threshold`. `skew` reads the
feature vectors serving logged (`logs/features/ranker/`), recomputes them with the offline
point-in-time join for the same keys and times, and reports the mismatch rate per feature.

Binning: quantile bins of the training window for numeric/count features and sequence lengths,
top-k categories plus `other` for categorical features and id sequences, a `missing` bin, and
`eps` for empty bins (see `validation/psi.py`). Skew tolerances: counts and ids exact, floats
relative 1e-6, sequences element-wise. `skew` runs even when `drift` failed; a task with nothing
to compare (no training window yet, nothing logged by serving) is skipped with the reason.
Failures are also written to `reports/failures/<dag>/<run>/<task>.json`.
"""

PARAMS = {
    "date_from": Param(None, type=["null", "string"], format="date",
                       description="First day to check (manual runs). Empty: the run's data "
                                   "interval, or the newest snapshot day."),
    "date_to": Param(None, type=["null", "string"], format="date",
                     description="Last day to check, inclusive (default: date_from)."),
    "psi_threshold": Param(0.2, type="number", exclusiveMinimum=0,
                           description="PSI above which a feature raises a drift alert."),
    "reference_days": Param(None, type=["null", "integer"], minimum=1,
                            description="Training window length in days before the interval; "
                                        "empty: every earlier snapshot."),
    "skew_max_rows": Param(50_000, type="integer", minimum=1,
                           description="Logged rows checked at most (seeded sample)."),
    "skew_alert_rate": Param(0.0, type="number", minimum=0, maximum=0.99,
                             description="Mismatch rate above which a feature is flagged."),
}



def _interval(settings, contract, params: dict, start, end):  # -> shoprec.intervals.Interval
    """The interval both checks cover; a bad date or missing snapshots fail without retry."""
    from airflow.sdk.exceptions import AirflowFailException

    from validation.monitoring_report import monitoring_interval

    try:
        return monitoring_interval(settings, contract, start, end, params.get("date_from"),
                                   params.get("date_to"))
    except (ValueError, FileNotFoundError) as err:
        raise AirflowFailException(str(err)) from err


@dag(
    dag_id="shoprec_monitoring",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC_MD,
    params=PARAMS,
    tags=["shoprec"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1),
                  "on_failure_callback": on_task_failure},
)
def shoprec_monitoring() -> None:
    """Two checks in a fixed order: drift, then skew."""

    @task(execution_timeout=timedelta(minutes=30))
    def drift(params: dict | None = None, data_interval_start=None,
              data_interval_end=None) -> dict:
        """PSI per contract feature; writes ``reports/drift/<interval>/`` and returns alerts."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from shoprec.settings import Settings
        from validation.drift import DriftConfig, InsufficientData, drift_report

        settings, params = Settings.from_env(), params or {}
        contract = settings.load_contract()
        interval = _interval(settings, contract, params, data_interval_start, data_interval_end)
        config = DriftConfig(threshold=float(params.get("psi_threshold", 0.2)),
                             reference_days=params.get("reference_days"))
        try:
            report = drift_report(settings, contract, interval, config)
        except InsufficientData as err:
            raise AirflowSkipException(str(err)) from err
        except (ValueError, KeyError, FileNotFoundError) as err:
            raise AirflowFailException(f"{type(err).__name__}: {err}") from err
        for m in report.metrics:
            print(f"{m['name']:<32} PSI {m['psi'] if m['psi'] is None else round(m['psi'], 4)}"
                  f"{'  ALERT' if m['alert'] else ''}")
        print(f"drift alerts for {interval.key}: {report.alerts or 'none'}; "
              f"report {report.paths['html']}")
        return jsonable({"interval": interval.key, "alerts": report.alerts,
                         "report": report.paths["json"]})

    @task(execution_timeout=timedelta(hours=1), trigger_rule="all_done")
    def skew(params: dict | None = None, data_interval_start=None,
             data_interval_end=None) -> dict:
        """Served vs offline feature vectors; writes ``reports/skew/<interval>/``."""
        from airflow.sdk.exceptions import AirflowSkipException

        from feature_repo.online import open_feature_store
        from shoprec.settings import Settings
        from validation.skew import NoServedVectors, SkewConfig, served_rows, skew_report

        settings, params = Settings.from_env(), params or {}
        contract = settings.load_contract()
        interval = _interval(settings, contract, params, data_interval_start, data_interval_end)
        config = SkewConfig(max_rows=int(params.get("skew_max_rows", 50_000)),
                            alert_rate=float(params.get("skew_alert_rate", 0.0)))
        try:
            served_rows(settings, contract, interval, config)  # before opening Feast
        except NoServedVectors as err:
            raise AirflowSkipException(str(err)) from err
        report = skew_report(settings, contract, interval, open_feature_store(settings), config)
        for f in report.features:
            print(f"{f['feature']:<32} {f['mismatched']}/{f['checked']} mismatched"
                  f"{'  FLAGGED' if f['flagged'] else ''}")
        print(f"skew flagged for {interval.key}: {report.flagged or 'none'}; "
              f"report {report.paths['html']}")
        return jsonable({"interval": interval.key, "flagged": report.flagged,
                         "rows_checked": report.rows_checked, "report": report.paths["json"]})

    drift() >> skew()


dag = shoprec_monitoring()
