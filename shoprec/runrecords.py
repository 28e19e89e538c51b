"""Small, cheap helpers the DAG files share: XCom-safe values, failure records, asset names.

Kept in the core package (no Airflow, pandas or TF imports) so DAG files can import it at
parse time without slowing the scheduler down.
"""

from __future__ import annotations

import json
import re
import traceback
from datetime import UTC, datetime
from pathlib import Path

from shoprec.atomic import write_text_atomic
from shoprec.settings import Settings

EVENTS_ASSET = "file:///shoprec/events"
"""URI of the Airflow asset updated whenever a batch is committed to the event store."""


def safe_id(text: str) -> str:
    """File-name-safe form of an Airflow run id (stable, so reruns reuse the same names)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def jsonable(obj: object) -> object:
    """Make a stage report XCom-safe: paths become strings, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, int | float | str | bool) or obj is None:
        return obj
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def failure_path(settings: Settings, dag_id: str, run_id: str, task_id: str) -> Path:
    """``reports/failures/<dag>/<run>/<task>.json``."""
    return settings.reports_dir / "failures" / dag_id / safe_id(run_id) / f"{task_id}.json"


def record_failure(settings: Settings, dag_id: str, run_id: str, task_id: str,
                   error: BaseException | str | None, try_number: int | None = None) -> Path:
    """Write why a task failed, in one place an operator (or a script) can read.

    The Airflow UI shows the same text in the task log; this record survives log rotation and
    is what ``make`` targets and tests inspect.
    """
    path = failure_path(settings, dag_id, run_id, task_id)
    if isinstance(error, BaseException):
        reason = f"{type(error).__name__}: {error}"
        trace = "".join(traceback.format_exception(error))[-8000:]
    else:
        reason, trace = str(error or "unknown failure"), ""
    record = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "reason": reason,
              "try_number": try_number, "at": datetime.now(UTC).isoformat(), "trace": trace}
    return write_text_atomic(path, json.dumps(record, indent=2))


def on_task_failure(context: dict) -> None:
    """Airflow ``on_failure_callback`` of every ShopRec DAG: :func:`record_failure`.

    A callback is an entry point, so it reads the settings from the environment here.
    """
    ti = context["ti"]
    record_failure(Settings.from_env(), ti.dag_id, ti.run_id, ti.task_id,
                   context.get("exception"), getattr(ti, "try_number", None))
