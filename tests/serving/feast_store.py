"""A minimal but real Feast repo for serving tests: sqlite online store, file offline store.

Built from the contract (entities, views, FeatureServices), like the features stage does, and
filled with the hand-computable tables of :mod:`tests.serving.models` through
``write_to_online_store``. Used until/unless ``feature_repo.store`` provides the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from shoprec.contract import Contract
from shoprec.sequences import encode_lists
from shoprec.settings import Settings
from tests.serving.models import item_table, user_table

_FEAST_TYPES = {"int64": "Int64", "float64": "Float64", "string": "String"}


def write_yaml(settings: Settings, project: str) -> None:
    d = settings.feast_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "feature_store.yaml").write_text(
        f"project: {project}\n"
        f"registry: {d / 'registry.db'}\n"
        "provider: local\n"
        "online_store:\n  type: sqlite\n"
        f"  path: {d / 'online.db'}\n"
        "offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )


def sequence_table(contract: Contract) -> pd.DataFrame:
    """Behaviour histories of users 7 and 8 (the test models ignore them; serving pads them)."""
    seqs = [f for f in contract.features if f.kind == "sequence"]
    rows = [{"user_id": uid, **{f.name: encode_lists([[1003.0, 1006.0] if f.dtype == "float64"
                                                     else [1003, 1006]])[0] for f in seqs}}
            for uid in (7, 8)]
    return pd.DataFrame(rows, columns=["user_id", *(f.name for f in seqs)])


def _dtype(feast_types, feat):
    """Stored sequences are encoded strings (shoprec.sequences)."""
    return feast_types.String if feat.kind == "sequence" else getattr(feast_types,
                                                                      _FEAST_TYPES[feat.dtype])


def build_store(settings: Settings, contract: Contract):
    """Apply contract-derived definitions and write the test tables to the online store.

    Request-time (on-demand) features are left out of the FeatureServices: serving computes
    them from the request.
    """
    import feast.types
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource
    from feast.value_type import ValueType

    write_yaml(settings, contract.project)
    now = datetime.now(UTC)
    tables = {"user": user_table(contract), "item": item_table(contract)}
    entities = {e.name: Entity(name=e.name, join_keys=[e.join_key], value_type=ValueType.INT64)
                for e in contract.entities}
    views, frames = {}, {}
    settings.features_dir.mkdir(parents=True, exist_ok=True)
    for spec in contract.views:
        key = contract.entity(spec.entity).join_key
        feats = contract.view_features(spec.name)
        cols = [f.name for f in feats]
        table = sequence_table(contract) if all(f.kind == "sequence" for f in feats) \
            else tables[spec.entity]
        df = table[[key, *cols]].copy()
        df[contract.timestamp_field] = pd.Timestamp(now)
        path = settings.features_dir / f"{spec.name}.parquet"
        df.to_parquet(path)
        frames[spec.name] = df
        views[spec.name] = FeatureView(
            name=spec.name, entities=[entities[spec.entity]], ttl=timedelta(days=spec.ttl_days),
            schema=[Field(name=f.name, dtype=_dtype(feast.types, f))
                    for f in contract.view_features(spec.name)],
            source=FileSource(name=f"{spec.name}_source", path=str(path),
                              timestamp_field=contract.timestamp_field),
            online=True,
        )
    services = []
    for name in contract.services:
        feats = [f for f in contract.service_features(name) if f.view in views]
        refs = [views[v][[f.name for f in feats if f.view == v]]
                for v in dict.fromkeys(f.view for f in feats)]
        services.append(FeatureService(name=name, features=refs))
    store = FeatureStore(repo_path=str(settings.feast_dir),
                         fs_yaml_file=settings.feast_dir / "feature_store.yaml")
    store.apply([*entities.values(), *views.values(), *services])
    for name, df in frames.items():
        store.write_to_online_store(name, df)
    return store
