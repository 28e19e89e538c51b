"""Feast objects (entities, sources, feature views, FeatureServices) derived from the contract.

Batch views read the daily snapshot Parquet (``sequence`` features as ``String`` fields holding
the encoding of :mod:`shoprec.sequences`; their element dtype and length are tags); each
request view of the contract becomes a ``RequestSource`` plus a python-mode
``OnDemandFeatureView`` whose function is :func:`feature_repo.request_context.compute`, so
training (``get_historical_features``) and serving (``get_online_features``) compute the
request-time features with the same code.

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

import json
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

from feature_repo.push_sources import push_source
from shoprec.contract import EVENT_SCHEMA, Contract, Feature
from shoprec.settings import Settings

_FEAST_TYPES = {"int64": "Int64", "float64": "Float64", "string": "String",
                "timestamp": "UnixTimestamp"}
_VALUE_TYPES = {"int64": "INT64", "string": "STRING"}


def feast_type(feat: Feature | Any) -> Any:
    """The Feast type of a contract feature or request field.

    A ``sequence`` is a ``String`` (see :mod:`shoprec.sequences` for why it is not an
    ``Array``); its ``dtype`` is the element dtype, recorded in the field's tags.
    """
    import feast.types

    if getattr(feat, "kind", "") == "sequence":
        return feast.types.String
    return getattr(feast.types, _FEAST_TYPES[feat.dtype])


@dataclass(frozen=True)
class FeastObjects:
    """The Feast objects of one contract, keyed by contract view / entity / service name.

    ``sources`` holds each batch view's FileSource and each request view's RequestSource (so a
    caller listing "our sources" sees both); ``views`` only the batch FeatureViews and
    ``on_demand_views`` the OnDemandFeatureViews.
    """

    entities: dict[str, Any]
    sources: dict[str, Any]
    views: dict[str, Any]
    services: dict[str, Any]
    on_demand_views: dict[str, Any] = field(default_factory=dict)
    push_sources: dict[str, Any] = field(default_factory=dict)

    def all(self) -> list[Any]:
        """Every object, in the order ``FeatureStore.apply`` needs none (it sorts by kind)."""
        return [*self.entities.values(), *self.sources.values(), *self.push_sources.values(),
                *self.views.values(), *self.on_demand_views.values(), *self.services.values()]


def source_name(view: str) -> str:
    """Registry name of the FileSource that feeds ``view``."""
    return f"{view}_source"


def request_source_name(view: str) -> str:
    """Registry name of the RequestSource that feeds request view ``view``."""
    return f"{view}_request"


def _feature_tags(feat: Feature) -> dict[str, str]:
    """Contract metadata a reader of the registry/UI needs to interpret a feature."""
    tags = {"kind": feat.kind, "default": str(feat.default),
            "used_by": ",".join(sorted(feat.used_by))}
    if feat.recipe is not None:
        tags["recipe"] = repr(feat.recipe)
    if feat.vocab_size:
        tags["vocab_size"] = str(feat.vocab_size)
    if feat.max_len:
        tags["max_len"] = str(feat.max_len)
    if feat.target:
        tags["target"] = feat.target
    return tags


def request_objects(contract: Contract) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(RequestSources, OnDemandFeatureViews)`` of the contract's request views, by view."""
    from feast import Field, RequestSource
    from feast.on_demand_feature_view import OnDemandFeatureView

    from feature_repo.request_context import make_udf

    sources, views = {}, {}
    for spec in contract.request_views:
        fields = contract.view_request_fields(spec.name)
        sources[spec.name] = RequestSource(
            name=request_source_name(spec.name),
            schema=[Field(name=r.name, dtype=feast_type(r), description=r.description)
                    for r in fields],
            description=f"Request fields read by {spec.name}; offline: "
                        + ", ".join(f"{r.name} = event {r.event_column}" for r in fields))
        udf, source = make_udf(contract, spec.name)
        views[spec.name] = OnDemandFeatureView(
            name=spec.name, sources=[sources[spec.name]], mode="python", udf=udf,
            udf_string=source, description=spec.description,
            # Feast checks declared fields against the ones it infers by running the function,
            # and Field equality includes description and tags: so those go on the view.
            schema=[Field(name=f.name, dtype=feast_type(f))
                    for f in contract.view_features(spec.name)],
            tags={"computed": "per request by feature_repo.request_context.compute",
                  **{f.name: f"{f.description} | " + json.dumps(_feature_tags(f))
                     for f in contract.view_features(spec.name)}})
    return sources, views


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
    sources, views, pushes = {}, {}, {}
    for spec in contract.views:
        path = settings.features_dir / f"{spec.name}.parquet"
        sources[spec.name] = FileSource(
            name=source_name(spec.name), path=str(path),
            timestamp_field=contract.timestamp_field,
            description=f"Daily snapshots of {spec.name} written by feature_repo.build.")
        pushed = push_source(contract, spec.name, sources[spec.name])
        if pushed is not None:  # materialization and training still read the FileSource
            pushes[spec.name] = pushed
        views[spec.name] = FeatureView(
            name=spec.name, entities=[entities[spec.entity]],
            ttl=timedelta(days=spec.ttl_days), source=pushed or sources[spec.name], online=True,
            schema=[Field(name=f.name, dtype=feast_type(f), description=f.description,
                          tags=_feature_tags(f))
                    for f in contract.view_features(spec.name)],
            description=spec.description,
            tags={"entity": spec.entity, "ttl_days": str(spec.ttl_days),
                  "snapshot": "daily, midnight UTC; window ends before the snapshot"})
    request_sources, on_demand = request_objects(contract)
    every_view = {**views, **on_demand}
    services = {}
    for name in contract.services:
        feats = contract.service_features(name)
        by_view: dict[str, list[str]] = {}
        for f in feats:
            by_view.setdefault(f.view, []).append(f.name)
        services[name] = FeatureService(
            name=name, features=[every_view[v][cols] for v, cols in by_view.items()],
            description=f"Features of consumer {name!r}: training sets and online requests.",
            tags={"entities": ",".join(e.join_key for e in contract.service_entities(name)),
                  "request_fields": ",".join(
                      r.name for r in contract.service_request_fields(name))})
    return FeastObjects(entities, {**sources, **request_sources}, views, services, on_demand,
                        pushes)


@lru_cache(maxsize=4)
def repo_objects(settings: Settings) -> FeastObjects:
    """The objects of the configured contract, shared by the Feast-template files.

    ``feast`` imports ``entities.py``, ``sources.py``, ``views.py`` and ``services.py`` in one
    process and keeps an object only once if the *same* object appears in several modules;
    caching makes every file expose identical objects, so nothing is registered twice.
    """
    return feast_objects(settings.load_contract(), settings)
