"""Online feature reads through the contract's FeatureServices (used by serving and training).

Serving asks the Feast online store for the *same* FeatureService names training used for its
historical sets, so both sides see the same feature list. Missing rows (cold start, TTL miss)
are filled with the contract defaults — the same values training fills — and columns are cast
to the contract dtypes the SavedModels expect. A ``sequence`` feature comes back from Feast as
its stored string per row (or None); :func:`conform` turns each into the fixed-length,
left-padded array models take (:func:`shoprec.sequences.pad_sequences`, the function training uses).

Request-time features (Feast on-demand views) need the request fields of the contract
(``request_ts``, ``request_device``) in every entity row. A caller that knows them (the
serving request's device) passes them as columns; :func:`with_request_fields` fills the
missing ones with what a live request means: the current time, and an unknown device.

Feast is imported lazily: the pure helpers here are used by tests without a store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import Contract
from shoprec.contract_model import PART_SEP
from shoprec.sequences import pad_sequences
from shoprec.settings import Settings

Fetch = Callable[[str, pd.DataFrame], pd.DataFrame]
"""``fetch(service, entity_df) -> features_df``: one row per entity row, same order."""

_NUMPY_DTYPES = {"int64": np.int64, "float64": np.float64}


def conform(df: pd.DataFrame, contract: Contract, service: str) -> pd.DataFrame:
    """Return ``df`` with every feature of ``service`` present, defaulted and typed.

    Args:
        df: Rows as returned by the online store; may lack columns or hold nulls.
        contract: Declares each feature's dtype and default.
        service: FeatureService whose features are required.

    Returns:
        A new frame (one construction, no per-column pandas assignment: serving calls this
        on every request); scalar features as contract-dtype columns, ``sequence`` features as
        object columns of ``[max_len]`` arrays (newest last, left-padded with the pad element).

    Raises:
        ValueError: if a present value cannot be cast to the contract dtype (for example a
            string in an int64 feature), naming the feature.
    """
    cols: dict[str, Any] = {c: df[c].to_numpy() for c in df.columns}
    for feat in contract.service_features(service):
        cols[feat.name] = conform_values(cols.get(feat.name), len(df), feat)
    return pd.DataFrame(cols, index=df.index)


def _array(values: Any) -> np.ndarray:
    """A list as NumPy infers it (ints -> int64), or as objects when it mixes kinds."""
    try:
        return np.asarray(values)
    except (ValueError, TypeError):  # ragged or odd cells: keep them for the checks below
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out


def conform_values(values: Any, n: int, feat: Any) -> np.ndarray:
    """One feature's ``n`` values (``None``: the column is absent) filled and cast.

    Values that already have the contract dtype and no nulls are returned as they are;
    anything else takes the pandas fill-and-cast path. A ``sequence`` comes back as an object
    array of ``[max_len]`` rows (:func:`pad_sequences`).
    """
    if feat.kind == "sequence":  # one padded [max_len] array per row; None -> all pad
        padded = pad_sequences(pd.Series(values if values is not None else [None] * n,
                                         dtype=object), feat)
        rows = np.empty(n, dtype=object)
        rows[:] = list(padded)
        return rows
    np_dtype = _NUMPY_DTYPES.get(feat.dtype)
    if values is None:
        return np.full(n, feat.default, dtype=np_dtype or object).astype(np_dtype or str)
    values = values if isinstance(values, np.ndarray) else _array(values)
    if np_dtype is not None and values.dtype == np_dtype and not (
            values.dtype.kind == "f" and np.isnan(values).any()):
        return values
    col = pd.Series(values, dtype=object if values.dtype.kind in "OUS" else values.dtype)
    col = col.where(col.notna(), feat.default) if len(col) else col
    try:
        return (col.astype(np_dtype) if np_dtype is not None else col.astype(str)).to_numpy()
    except (TypeError, ValueError) as err:
        raise ValueError(f"feature {feat.name!r} is not {feat.dtype}: {err}") from err


def with_request_fields(entity_df: pd.DataFrame, contract: Contract, service: str,
                        now: datetime | None = None) -> pd.DataFrame:
    """``entity_df`` plus every request field ``service`` needs, missing ones filled.

    A missing timestamp field is the time of the call (``now``), a missing string field None
    (the features then take their "unknown" default). Present columns are kept as they are.
    """
    fields = contract.service_request_fields(service)
    absent = [r for r in fields if r.name not in entity_df]
    if not absent:
        return entity_df
    out = entity_df.copy()
    stamp = pd.Timestamp(now or datetime.now(UTC))
    for r in absent:
        out[r.name] = stamp if r.dtype == "timestamp" else None
    return out


def feature_store_yaml(settings: Settings) -> Path:
    """Where the features stage writes the Feast config (absolute registry/online paths)."""
    return settings.feast_dir / "feature_store.yaml"


def open_feature_store(settings: Settings) -> Any:
    """Open the Feast store generated under ``settings.feast_dir``.

    Raises:
        FileNotFoundError: if the features stage has not generated ``feature_store.yaml`` yet,
            which is a clearer message than Feast's own for a missing repo.
    """
    yaml = feature_store_yaml(settings)
    if not yaml.exists():
        raise FileNotFoundError(f"{yaml} does not exist; run the features stage first")
    from feast import FeatureStore

    return FeatureStore(repo_path=str(settings.feast_dir), fs_yaml_file=yaml)


def feast_fetcher(store: Any, contract: Contract) -> Fetch:
    """Build a :data:`Fetch` over a Feast store's online features.

    Columns come back as the entity columns (with the service's request fields, filled by
    :func:`with_request_fields` when absent) followed by the service's features in contract
    order (Feast returns them in an arbitrary order).

    FeatureService objects are resolved once and cached: a registry lookup per request
    would add latency for a definition that only changes when the pipeline re-applies.
    Store calls are serialized with a lock because the sqlite online store shares one
    connection across the service's request threads; a lookup takes a few milliseconds.

    ``service`` may name a part of a service (``"ranker@user"``,
    :func:`shoprec.contract_model.service_part`); it is read by feature references instead of
    the FeatureService, with the same views, values and defaults.
    """
    services: dict[str, Any] = {}
    lock = threading.Lock()

    def resolve(service: str) -> Any:
        if PART_SEP in service:  # a part: references to the service's own views' features
            return [f"{f.view}:{f.name}" for f in contract.service_features(service)]
        return store.get_feature_service(service)

    def fetch(service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        entity_df = with_request_fields(entity_df, contract, service)
        names = list(entity_df.columns)  # rows as dicts without pandas' slow to_dict
        rows = [dict(zip(names, vals, strict=True))
                for vals in zip(*(entity_df[c].tolist() for c in names), strict=True)]
        with lock:
            if service not in services:
                services[service] = resolve(service)
            got = store.get_online_features(features=services[service],
                                            entity_rows=rows).to_dict()
        keys = entity_df.reset_index(drop=True)
        cols = {c: keys[c].to_numpy() for c in keys.columns}
        for feat in contract.service_features(service):
            values = got.get(feat.name)
            cols[feat.name] = conform_values(values, len(keys), feat)
        return pd.DataFrame(cols)

    return fetch
