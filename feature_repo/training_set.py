"""Point-in-time training sets, fetched through the FeatureServices serving uses online.

* ``datasets/ranker.parquet``: one row per impression: join keys, ``event_ts``, the label
  (1 if the same user clicked the same item in the same session at or after the impression)
  and the ``ranker`` service's features;
* ``datasets/retrieval.parquet``: one row per positive event (click/cart/fav/purchase): join
  keys, ``event_ts`` and the union of the two-tower user and item services' features;
* ``datasets/report.json``: rows, positives and, per service, how many rows the offline store
  dropped (re-added) or left with missing values (defaulted) - see :mod:`feature_repo.historical`.

Columns are derived from the contract's services only, so a feature dropped from the contract
disappears from the training sets and from what serving fetches together. Row order is the
event order (``event_ts``, then ``event_id``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.events import EVENT_TS, EVENT_TYPE, SESSION, read_events, write_atomic
from feature_repo.historical import service_features
from shoprec.contract import (
    EVENT_SCHEMA,
    ITEM_TOWER,
    POSITIVE_EVENT_TYPES,
    RANKER,
    USER_TOWER,
    Contract,
)
from shoprec.settings import Settings

IMPRESSION, CLICK = "impression", "click"
DATASETS: dict[str, tuple[str, ...]] = {"ranker": (RANKER,), "retrieval": (USER_TOWER, ITEM_TOWER)}
"""Training set name -> the FeatureServices whose features it carries."""
_NO_SESSION = "\x00no-session"


def dataset_columns(contract: Contract, name: str) -> list[str]:
    """Exact column list of a training set: join keys, ``event_ts``, [label], features."""
    services = DATASETS[name]
    wanted = {f.name for s in services for f in contract.service_features(s)}
    keys = [e.join_key for e in contract.entities]
    label = [contract.label] if name == "ranker" else []
    return [*keys, EVENT_TS, *label, *(f.name for f in contract.features if f.name in wanted)]


def ranker_rows(events: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Impressions with their click label, in event order.

    An impression is positive when a click on the same (user, item, session) happened at or
    after it. A null session is treated as one unknown session of that user and item.
    """
    keys = [e.join_key for e in contract.entities]
    ev = events.assign(**{SESSION: events[SESSION].fillna(_NO_SESSION)})
    last_click = (ev[ev[EVENT_TYPE] == CLICK].groupby([*keys, SESSION])[EVENT_TS].max()
                  .rename("_last_click").reset_index())
    imps = ev[ev[EVENT_TYPE] == IMPRESSION].merge(last_click, on=[*keys, SESSION], how="left")
    imps[contract.label] = (imps["_last_click"] >= imps[EVENT_TS]).astype(np.int64)
    imps = imps.sort_values([EVENT_TS, EVENT_SCHEMA.key], ignore_index=True)
    return imps[[*keys, EVENT_TS, contract.label]]


def retrieval_rows(events: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Positive events (click/cart/fav/purchase), in event order."""
    keys = [e.join_key for e in contract.entities]
    pos = events[events[EVENT_TYPE].isin(POSITIVE_EVENT_TYPES)]
    return pos.sort_values([EVENT_TS, EVENT_SCHEMA.key], ignore_index=True)[[*keys, EVENT_TS]]


def build_training_sets(settings: Settings, contract: Contract, store: Any,
                        chunk_rows: int = 100_000,
                        until: pd.Timestamp | None = None) -> dict[str, Any]:
    """Write the ranker and retrieval sets and the repair report; returns paths and report.

    Args:
        settings: Locations (events in, datasets out).
        contract: Services, features, defaults and dtypes.
        store: An open ``FeatureStore`` with the contract applied and snapshots built.
        chunk_rows: Distinct entity rows per offline request (bounds memory).
        until: Only events before this instant become rows (the run's data-interval end).

    Returns:
        ``{"ranker": Path, "retrieval": Path, "report": Path, "summary": dict}``.
    """
    t0 = time.perf_counter()
    keys = [e.join_key for e in contract.entities]
    columns = list(dict.fromkeys([EVENT_SCHEMA.key, *keys, EVENT_TYPE, EVENT_TS, SESSION]))
    events = read_events(settings, columns, until)
    bases = {"ranker": ranker_rows(events, contract), "retrieval": retrieval_rows(events, contract)}
    summary: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for name, base in bases.items():
        frame, services = base, {}
        for service in DATASETS[name]:
            feats, counts = service_features(store, contract, service, base, EVENT_TS,
                                             chunk_rows)
            new = [c for c in feats.columns if c not in frame.columns]
            frame = pd.concat([frame, feats[new]], axis=1)
            services[service] = counts
        frame = frame[dataset_columns(contract, name)]
        out[name] = write_atomic(frame, settings.datasets_dir / f"{name}.parquet")
        summary[name] = {"rows": len(frame), "services": services}
        if contract.label in frame:
            summary[name]["positives"] = int(frame[contract.label].sum())
        print(f"training set {name}: {len(frame)} rows; " + "; ".join(
            f"{s}: {c['dropped_refilled']} dropped+refilled, {c['nan_filled']} NaN-filled"
            for s, c in services.items()))
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    report = settings.datasets_dir / "report.json"
    _write_json(report, summary)
    out["report"] = report
    out["summary"] = summary
    return out


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    tmp.replace(path)
