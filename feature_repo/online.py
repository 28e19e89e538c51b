"""Online feature reads through the contract's FeatureServices (used by serving and training).

Serving asks the Feast online store for the *same* FeatureService names training used for its
historical sets, so both sides see the same feature list. Missing rows (cold start, TTL miss)
are filled with the contract defaults — the same values training fills — and columns are cast
to the contract dtypes the SavedModels expect.

Feast is imported lazily: the pure helpers here are used by tests without a store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import Contract
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

    Raises:
        ValueError: if a present value cannot be cast to the contract dtype (for example a
            string in an int64 feature), naming the feature.
    """
    out = df.copy()
    for feat in contract.service_features(service):
        col = out[feat.name] if feat.name in out else pd.Series([None] * len(out), index=out.index)
        col = col.where(col.notna(), feat.default) if len(col) else col
        np_dtype = _NUMPY_DTYPES.get(feat.dtype)
        try:
            out[feat.name] = col.astype(np_dtype) if np_dtype is not None else col.astype(str)
        except (TypeError, ValueError) as err:
            raise ValueError(f"feature {feat.name!r} is not {feat.dtype}: {err}") from err
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

    Columns come back as the entity columns followed by the service's features in contract
    order (Feast returns them in an arbitrary order).

    FeatureService objects are resolved once and cached: a registry lookup per request
    would add latency for a definition that only changes when the pipeline re-applies.
    Store calls are serialized with a lock because the sqlite online store shares one
    connection across the service's request threads; a lookup takes a few milliseconds.
    """
    services: dict[str, Any] = {}
    lock = threading.Lock()

    def fetch(service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        rows = entity_df.to_dict("records")
        with lock:
            if service not in services:
                services[service] = store.get_feature_service(service)
            resp = store.get_online_features(features=services[service], entity_rows=rows)
            got = resp.to_df().reset_index(drop=True)
        keys = entity_df.reset_index(drop=True)
        names = [f.name for f in contract.service_features(service) if f.name in got.columns]
        return conform(pd.concat([keys, got[names]], axis=1), contract, service)

    return fetch
