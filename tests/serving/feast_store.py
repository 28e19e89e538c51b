"""A minimal but real Feast repo for serving tests: sqlite online store, file offline store.

Built from the contract (entities, views, FeatureServices), like the features stage does, and
filled with the hand-computable tables of :mod:`tests.serving.models` through
``write_to_online_store``. Used until/unless ``feature_repo.store`` provides the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from shoprec.contract import Contract
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


def build_store(settings: Settings, contract: Contract):
    """Apply contract-derived definitions and write the test tables to the online store."""
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
        cols = [f.name for f in contract.view_features(spec.name)]
        df = tables[spec.entity][[key, *cols]].copy()
        df[contract.timestamp_field] = pd.Timestamp(now)
        path = settings.features_dir / f"{spec.name}.parquet"
        df.to_parquet(path)
        frames[spec.name] = df
        views[spec.name] = FeatureView(
            name=spec.name, entities=[entities[spec.entity]], ttl=timedelta(days=spec.ttl_days),
            schema=[Field(name=f.name, dtype=getattr(feast.types, _FEAST_TYPES[f.dtype]))
                    for f in contract.view_features(spec.name)],
            source=FileSource(name=f"{spec.name}_source", path=str(path),
                              timestamp_field=contract.timestamp_field),
            online=True,
        )
    services = []
    for name in contract.services:
        feats = contract.service_features(name)
        refs = [views[v][[f.name for f in feats if f.view == v]]
                for v in dict.fromkeys(f.view for f in feats)]
        services.append(FeatureService(name=name, features=refs))
    store = FeatureStore(repo_path=str(settings.feast_dir),
                         fs_yaml_file=settings.feast_dir / "feature_store.yaml")
    store.apply([*entities.values(), *views.values(), *services])
    for name, df in frames.items():
        store.write_to_online_store(name, df)
    return store
