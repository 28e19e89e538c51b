"""Feast objects (entities, sources, feature views, FeatureServices) derived from the contract.

Nothing here names a feature or a view: every object is generated from
:class:`shoprec.contract.Contract`, so a feature added to or dropped from the contract changes
the registry, the offline training sets and what serving fetches, all at once.

Two callers use this module:

* ``feature_repo.store.apply`` registers :func:`feast_objects` in-process (no 10-second CLI);
* the Feast-template files ``entities.py``/``sources.py``/``views.py``/``services.py`` expose
  :func:`repo_objects` as module attributes for ``feast plan/apply`` (``feast`` discovers
  objects by scanning module attributes, and de-duplicates them by identity, which is why
  those files share one cached :class:`FeastObjects`).

Feast is imported inside functions: this module is imported while Airflow parses DAGs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from shoprec.contract import EVENT_SCHEMA, Contract, Feature
from shoprec.settings import Settings

_FEAST_TYPES = {"int64": "Int64", "float64": "Float64", "string": "String",
                "timestamp": "UnixTimestamp"}
_VALUE_TYPES = {"int64": "INT64", "string": "STRING"}


@dataclass(frozen=True)
class FeastObjects:
    """The Feast objects of one contract, each keyed by its registry name."""

    entities: dict[str, Any]
    sources: dict[str, Any]
    views: dict[str, Any]
    services: dict[str, Any]

    def all(self) -> list[Any]:
        """Every object, in the order ``FeatureStore.apply`` needs none (it sorts by kind)."""
        return [*self.entities.values(), *self.sources.values(), *self.views.values(),
                *self.services.values()]


def source_name(view: str) -> str:
    """Registry name of the FileSource that feeds ``view``."""
    return f"{view}_source"


def _feature_tags(feat: Feature) -> dict[str, str]:
    """Contract metadata a reader of the registry/UI needs to interpret a feature."""
    tags = {"kind": feat.kind, "default": str(feat.default),
            "used_by": ",".join(sorted(feat.used_by))}
    if feat.recipe is not None:
        tags["recipe"] = repr(feat.recipe)
    if feat.vocab_size:
        tags["vocab_size"] = str(feat.vocab_size)
    return tags


def feast_objects(contract: Contract, settings: Settings) -> FeastObjects:
    """Build the Feast definitions of ``contract`` for the installation ``settings``.

    Args:
        contract: Entities, views, features and services to register.
        settings: Locates the offline snapshots (``features_dir/<view>.parquet``), which are
            referenced by absolute path so the registry works from any working directory.

    Returns:
        Fresh (uncached) objects; ``FeatureStore.apply`` may mutate what it is given.

    Raises:
        ValueError: if an entity's join key is not an int64/string column of the event
            schema (Feast needs the key's value type declared explicitly).
    """
    import feast.types
    from feast import Entity, FeatureService, FeatureView, Field, FileSource
    from feast.value_type import ValueType

    entities = {}
    for ent in contract.entities:
        dtype = EVENT_SCHEMA.column(ent.join_key).dtype
        if dtype not in _VALUE_TYPES:
            raise ValueError(f"entity {ent.name!r}: join key {ent.join_key!r} has dtype "
                             f"{dtype!r}; Feast join keys must be int64 or string")
        entities[ent.name] = Entity(
            name=ent.name, join_keys=[ent.join_key], description=ent.description,
            value_type=getattr(ValueType, _VALUE_TYPES[dtype]),
            tags={"project": contract.project})
    sources, views = {}, {}
    for spec in contract.views:
        path = settings.features_dir / f"{spec.name}.parquet"
        sources[spec.name] = FileSource(
            name=source_name(spec.name), path=str(path),
            timestamp_field=contract.timestamp_field,
            description=f"Daily snapshots of {spec.name} written by feature_repo.build.")
        views[spec.name] = FeatureView(
            name=spec.name, entities=[entities[spec.entity]],
            ttl=timedelta(days=spec.ttl_days), source=sources[spec.name], online=True,
            schema=[Field(name=f.name, dtype=getattr(feast.types, _FEAST_TYPES[f.dtype]),
                          description=f.description, tags=_feature_tags(f))
                    for f in contract.view_features(spec.name)],
            description=spec.description,
            tags={"entity": spec.entity, "ttl_days": str(spec.ttl_days),
                  "snapshot": "daily, midnight UTC; window ends before the snapshot"})
    services = {}
    for name in contract.services:
        feats = contract.service_features(name)
        by_view: dict[str, list[str]] = {}
        for f in feats:
            by_view.setdefault(f.view, []).append(f.name)
        services[name] = FeatureService(
            name=name, features=[views[v][cols] for v, cols in by_view.items()],
            description=f"Features of consumer {name!r}: training sets and online requests.",
            tags={"entities": ",".join(e.join_key for e in contract.service_entities(name))})
    return FeastObjects(entities, sources, views, services)


@lru_cache(maxsize=4)
def repo_objects(settings: Settings) -> FeastObjects:
    """The objects of the configured contract, shared by the Feast-template files.

    ``feast`` imports ``entities.py``, ``sources.py``, ``views.py`` and ``services.py`` in one
    process and keeps an object only once if the *same* object appears in several modules;
    caching makes every file expose identical objects, so nothing is registered twice.
    """
    return feast_objects(settings.load_contract(), settings)
