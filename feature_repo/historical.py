"""Point-in-time feature joins through a FeatureService, with the file offline store's traps fixed.

Measured behaviour of Feast's file (Dask) offline store that this module corrects:

* an entity row whose key has feature rows, but none within ``[ts - ttl, ts]``, is silently
  **dropped** from the result (typical: a user's first day, before any snapshot has them);
* a key absent from the source comes back with **NaN** features;
* rows with the same join keys and timestamp are collapsed into one;
* the output **order** is not the input order.

Each distinct (join keys, timestamp, request fields) is sent once with a row id, so drops are
detected exactly. A dropped row loses the features of *every* view of the service, although
only one view had no snapshot in range; it is therefore re-requested view by view (each batch
view's projection of the same FeatureService), so e.g. a new user's impression still gets its
item's features. The request-time features of a dropped row (on-demand views, which Feast
cannot serve without a batch view) are recomputed by the very function the on-demand view runs,
:func:`feature_repo.request_context.compute`. Whatever is still missing gets the contract
default (an empty history for a ``sequence``), the value serving uses on a cold start, and every
column is cast to the contract dtype (sequences padded to ``max_len``). Counts of what was
repaired go to the caller's report.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytz

from feature_repo.online import conform
from feature_repo.request_context import compute, view_spec
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
        rows: Must hold the service's join keys, ``ts_col`` (UTC timestamps) and the
            service's request fields (``contract.service_request_fields``).
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
    request = [r.name for r in contract.service_request_fields(service)]
    keys = [*(e.join_key for e in contract.service_entities(service)), *request]
    names = [f.name for f in contract.service_features(service)]
    rows = rows.reset_index(drop=True)
    missing = [c for c in [*keys, ts_col] if c not in rows]
    if missing:
        raise KeyError(f"entity rows for {service!r} need columns {missing}")
    if request:  # Feast's python-mode views get None (not pandas' NA/NaN) for a missing value
        rows = rows.astype({c: object for c in request if rows[c].dtype != "datetime64[ns, UTC]"})
        rows[request] = rows[request].where(rows[request].notna(), None)
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
            pnames = [f.name for f in proj.features]
            if contract.is_request_view(proj.name):  # same function as the on-demand view
                fields = contract.view_request_fields(proj.name)
                got = compute({r.name: lost[r.name].tolist() for r in fields},
                              view_spec(contract, proj.name))
                for n in pnames:
                    _assign(out, dropped, n, np.asarray(got[n], dtype=object))
                continue
            pkeys = [contract.entity(contract.view(proj.name).entity).join_key]
            refs = [f"{proj.name_to_use()}:{n}" for n in pnames]
            part = _feast_join(store, refs, lost, pkeys, ts_col, pnames, chunk_rows)
            for n in pnames:
                _assign(out, dropped, n, part[n].to_numpy(dtype=object))
            recovered[dropped] |= part["_returned"].to_numpy() & part[pnames].notna().all(
                axis=1).to_numpy()
    feats = conform(out[names], contract, service)[names]
    return feats, _counts(len(rows), int(dropped.sum()), int(recovered.sum()), nan_filled, t0)


def _assign(frame: pd.DataFrame, mask: np.ndarray, column: str, values: np.ndarray) -> None:
    """``frame.loc[mask, column] = values`` for any cell type (lists of a sequence included).

    Done on an object copy: pandas would try to broadcast list cells, or up-cast an int column
    when the re-requested values hold NaN; :func:`conform` casts to the contract dtype after.
    """
    col = frame[column].to_numpy(dtype=object).copy()
    col[mask] = values
    frame[column] = col


def _counts(rows: int, dropped: int, recovered: int, nan_filled: int, t0: float) -> dict:
    return {"rows": rows, "dropped_refilled": dropped, "recovered_from_views": recovered,
            "nan_filled": nan_filled, "seconds": round(time.perf_counter() - t0, 3)}
