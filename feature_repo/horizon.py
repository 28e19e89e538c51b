"""The feature horizon: the newest data-interval end the shared feature state was built for.

The snapshot files (``features/<view>.parquet``), the online store and the training sets
(``datasets/*.parquet``) are *shared* state, one copy per home, while Airflow runs intervals in
any order: a backfill runs up to ten of them at once (``airflow backfill create`` ignores the
DAG's ``max_active_runs``) and a re-processed old interval runs after newer ones. If each run
built the state up to its own interval end, the state would be that of whichever run finished
last; re-running an old day would silently move serving and training back in time.

So the horizon only moves forward. A run builds up to ``max(its interval end, horizon)``. The
event log is committed per interval, so the rebuild still contains the run's own (re-ingested)
events; and a daily snapshot at day ``D`` only reads events before ``D``, so the rows of the
run's own days are the same whichever horizon they were built with. Re-running any set of
intervals, in any order, therefore leaves the shared state byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from shoprec.atomic import write_text_atomic
from shoprec.settings import Settings
from shoprec.utc import as_utc

HORIZON_FILE = "horizon.json"


def horizon_path(settings: Settings) -> Path:
    """Where the horizon is recorded: beside the snapshots it describes."""
    return settings.features_dir / HORIZON_FILE


def read_horizon(settings: Settings) -> pd.Timestamp | None:
    """The recorded horizon, or None before any bounded build.

    Raises:
        ValueError: if the file exists but does not hold ``{"until": <ISO instant>}``; the
            message names the file, which can be deleted to rebuild from the next run's end.
    """
    path = horizon_path(settings)
    if not path.exists():
        return None
    try:
        return pd.Timestamp(json.loads(path.read_text())["until"]).tz_convert("UTC")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a feature horizon record ({err}); delete it and the "
                         "next run rebuilds from its own interval end") from err


def effective_until(settings: Settings, until: pd.Timestamp | None) -> pd.Timestamp | None:
    """The end to build the shared state up to for a run whose interval ends at ``until``.

    Args:
        settings: Locations.
        until: The run's data-interval end, or None for an unbounded (manual) run, which
            always builds over every committed event.

    Returns:
        ``None`` for an unbounded run, otherwise the later of ``until`` and the horizon.
    """
    if until is None:
        return None
    until = as_utc(until)
    recorded = read_horizon(settings)
    return until if recorded is None or recorded < until else recorded


def record_horizon(settings: Settings, until: pd.Timestamp | None) -> None:
    """Record ``until`` as the horizon after a successful bounded build (atomic rename)."""
    if until is None:
        return
    write_text_atomic(horizon_path(settings),
                      json.dumps({"until": pd.Timestamp(until).isoformat()}) + "\n")
