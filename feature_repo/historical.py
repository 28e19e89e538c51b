"""Point-in-time feature joins through a FeatureService, with the file offline store's traps fixed.

Measured behaviour of Feast's file (Dask) offline store that this module corrects:

* an entity row whose key has feature rows, but none within ``[ts - ttl, ts]``, is silently
  **dropped** from the result (typical: a user's first day, before any snapshot has them);
* a key absent from the source comes back with **NaN** features;
* rows with the same join keys and timestamp are collapsed into one;
* the output **order** is not the input order.

Each distinct (join keys, timestamp) is sent once with a row id, so drops are detected exactly.
A dropped row loses the features of *every* view of the service, although only one view had
no snapshot in range; it is therefore re-requested view by view (each view's projection of the
same FeatureService), so e.g. a new user's impression still gets its item's features. Whatever
is still missing gets the contract default, the value serving uses on a cold start, and every
column is cast to the contract dtype. Counts of what was repaired go to the caller's report.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytz

from feature_repo.online import conform
from shoprec.contract import Contract

ROW_ID = "__row_id"
FEAST_TS = "event_timestamp"  # the entity-df timestamp column name Feast looks for first


def _feast_join(store: Any, features: Any, entity: pd.DataFrame, keys: list[str], ts_col: str,
                names: list[str], chunk_rows: int) -> pd.DataFrame:
    """``entity`` rows (same order) with ``names`` columns (NaN if missing) and ``_returned``."""
    uniq = entity[[*keys, ts_col]].drop_duplicates(ignore_index=True)
    uniq[ROW_ID] = np.arange(len(uniq), dtype=np.int64)
    request = uniq.rename(columns={ts_col: FEAST_TS})
    # Feast re-localizes every timestamp row by row unless the dtype's tz *is* pytz.UTC.
    request[FEAST_TS] = request[FEAST_TS].dt.tz_convert(pytz.UTC)
    parts = []
    for start in range(0, len(request), chunk_rows):
        chunk = request.iloc[start:start + chunk_rows]
        got = store.get_historical_features(entity_df=chunk, features=features).to_df()
        parts.append(got[[ROW_ID, *names]])
    got = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[ROW_ID, *names])
    if got[ROW_ID].duplicated().any():
        raise RuntimeError("Feast returned an entity row twice; cannot align features")
    got["_returned"] = True
    merged = uniq.merge(got, on=ROW_ID, how="left").drop(columns=ROW_ID)
    merged["_returned"] = merged["_returned"].eq(True)
    return entity[[*keys, ts_col]].merge(merged, on=[*keys, ts_col], how="left")


def service_features(store: Any, contract: Contract, service: str, rows: pd.DataFrame,
                     ts_col: str, chunk_rows: int = 100_000) -> tuple[pd.DataFrame, dict]:
    """Point-in-time features of ``service`` for ``rows``, repaired, defaulted and typed.

    Args:
        store: An open ``FeatureStore`` with the contract applied.
        contract: Declares the service's features, defaults and dtypes.
        service: FeatureService name (the one serving fetches online).
        rows: Must hold the service's join keys and ``ts_col`` (UTC timestamps).
        ts_col: Timestamp of each row; features are as of that instant.
        chunk_rows: Distinct rows per Feast request (the Dask join holds each key's whole
            snapshot history in memory per row, so this bounds peak memory).

    Returns:
        A frame aligned with ``rows`` (same length and order, fresh index) holding exactly the
        service's features in contract order, and the repair counts: ``rows``,
        ``dropped_refilled`` (rows Feast dropped and this function re-added),
        ``recovered_from_views`` (of those, rows that got real values for at least one view),
        ``nan_filled`` (returned rows with a missing feature, defaulted) and ``seconds``.
    """
    t0 = time.perf_counter()
    keys = [e.join_key for e in contract.service_entities(service)]
    names = [f.name for f in contract.service_features(service)]
    rows = rows.reset_index(drop=True)
    missing = [c for c in [*keys, ts_col] if c not in rows]
    if missing:
        raise KeyError(f"entity rows for {service!r} need columns {missing}")
    if rows.empty:
        empty = conform(pd.DataFrame(index=rows.index), contract, service)
        return empty[names], _counts(0, 0, 0, 0, t0)
    fs = store.get_feature_service(service)
    out = _feast_join(store, fs, rows, keys, ts_col, names, chunk_rows)
    dropped = ~out["_returned"].to_numpy()
    nan_filled = int((out["_returned"] & out[names].isna().any(axis=1)).sum())
    recovered = np.zeros(len(out), dtype=bool)
    if dropped.any():
        lost = rows.loc[dropped]
        for proj in fs.feature_view_projections:
            pkeys = [contract.entity(contract.view(proj.name).entity).join_key]
            pnames = [f.name for f in proj.features]
            refs = [f"{proj.name_to_use()}:{n}" for n in pnames]
            part = _feast_join(store, refs, lost, pkeys, ts_col, pnames, chunk_rows)
            out.loc[dropped, pnames] = part[pnames].to_numpy()
            recovered[dropped] |= part["_returned"].to_numpy() & part[pnames].notna().all(
                axis=1).to_numpy()
    feats = conform(out[names], contract, service)[names]
    return feats, _counts(len(rows), int(dropped.sum()), int(recovered.sum()), nan_filled, t0)


def _counts(rows: int, dropped: int, recovered: int, nan_filled: int, t0: float) -> dict:
    return {"rows": rows, "dropped_refilled": dropped, "recovered_from_views": recovered,
            "nan_filled": nan_filled, "seconds": round(time.perf_counter() - t0, 3)}
