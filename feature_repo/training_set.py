"""Point-in-time training sets, fetched through the FeatureServices serving uses online.

* ``datasets/ranker.parquet``: one row per impression: join keys, ``event_ts``, one label
  column per task of ``contract.task_labels`` and the ``ranker`` service's features:

  - ``ctr`` (``label``): 1 if the same user clicked the same item in the same session at or
    after the impression (a null session counts as one unknown session of that user and item);
  - ``cvr`` (``label_purchase``): 1 if the same user purchased the same item at or after the
    impression within the same session, or, for an impression without a session, on the same
    UTC day among events without a session. A purchase is a conversion of *that* exposure
    only if it happens in the visit the impression belonged to, which a session id (else the
    calendar day) approximates;

  the request-time features see the impression's ``event_ts`` and ``device`` as the request's
  (``contract.request_fields``), exactly what serving sends for a live request;
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

from feature_repo.events import (
    EVENT_TS,
    EVENT_TYPE,
    SESSION,
    day_numbers,
    read_events,
    write_atomic,
)
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

IMPRESSION, CLICK, PURCHASE = "impression", "click", "purchase"
DATASETS: dict[str, tuple[str, ...]] = {"ranker": (RANKER,), "retrieval": (USER_TOWER, ITEM_TOWER)}
"""Training set name -> the FeatureServices whose features it carries."""
_NO_SESSION = "\x00no-session"


def dataset_columns(contract: Contract, name: str) -> list[str]:
    """Exact column list of a training set: join keys, ``event_ts``, [label], features."""
    services = DATASETS[name]
    wanted = {f.name for s in services for f in contract.service_features(s)}
    keys = [e.join_key for e in contract.entities]
    labels = label_columns(contract) if name == "ranker" else []
    return [*keys, EVENT_TS, *labels, *(f.name for f in contract.features if f.name in wanted)]


def label_columns(contract: Contract) -> list[str]:
    """The ranking set's label columns: ``contract.label`` first, then the other tasks'."""
    return list(dict.fromkeys([contract.label, *contract.task_labels.values()]))


def _request_columns(rows: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Each request field as a column copied from its event column (the row is the request)."""
    return rows.assign(**{r.name: rows[r.event_column] for r in contract.request_fields})


def _done_after(ev: pd.DataFrame, imps: pd.DataFrame, kind: str, group: list[str]) -> np.ndarray:
    """1 where an event of ``kind`` of the impression's ``group`` happened at/after it."""
    last = (ev[ev[EVENT_TYPE] == kind].groupby(group)[EVENT_TS].max().rename("_last")
            .reset_index())
    got = imps[group + [EVENT_TS]].merge(last, on=group, how="left")
    return (got["_last"] >= got[EVENT_TS]).to_numpy().astype(np.int64)


def ranker_rows(events: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Impressions with one label per task and their request fields, in event order.

    Labels (module docstring): ``ctr`` - a click on the same (user, item, session) at or after
    the impression, a null session being one unknown session of that user and item; ``cvr`` -
    a purchase on the same (user, item, session) at or after it, where a null session means
    "the same UTC day, among events without a session".
    """
    keys = [e.join_key for e in contract.entities]
    # A visit is (session, -1), or ("", UTC day) without a session. Two columns rather than
    # one made-up string: pandas hashes object strings as C strings, so e.g. "\x00day-1" and
    # "\x00day-2" would fall into one group, and any prefix could collide with a real id.
    known = {"ctr": (CLICK, [SESSION]), "cvr": (PURCHASE, ["_visit", "_visit_day"])}
    unknown = sorted(set(contract.task_labels) - set(known))
    if unknown:
        raise ValueError(f"no label rule for ranking task(s) {unknown}; known: {sorted(known)}")
    no_session = events[SESSION].isna().to_numpy()
    ev = events.assign(**{SESSION: events[SESSION].fillna(_NO_SESSION),
                          "_visit": events[SESSION].fillna(""),
                          "_visit_day": np.where(no_session, day_numbers(events[EVENT_TS]), -1)})
    imps = ev[ev[EVENT_TYPE] == IMPRESSION].sort_values([EVENT_TS, EVENT_SCHEMA.key],
                                                        ignore_index=True)
    for task, column in contract.task_labels.items():
        kind, group = known[task]
        imps[column] = _done_after(ev, imps, kind, [*keys, *group])
    imps = _request_columns(imps, contract)
    return imps[[*keys, EVENT_TS, *label_columns(contract),
                 *(r.name for r in contract.request_fields)]]


def retrieval_rows(events: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Positive events (click/cart/fav/purchase) with their request fields, in event order."""
    keys = [e.join_key for e in contract.entities]
    pos = events[events[EVENT_TYPE].isin(POSITIVE_EVENT_TYPES)]
    pos = _request_columns(pos.sort_values([EVENT_TS, EVENT_SCHEMA.key], ignore_index=True),
                           contract)
    return pos[[*keys, EVENT_TS, *(r.name for r in contract.request_fields)]]


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
    columns = list(dict.fromkeys([EVENT_SCHEMA.key, *keys, EVENT_TYPE, EVENT_TS, SESSION,
                                  *(r.event_column for r in contract.request_fields)]))
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
            summary[name]["positives_by_task"] = {
                task: int(frame[col].sum()) for task, col in contract.task_labels.items()}
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
