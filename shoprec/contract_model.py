"""The types the feature contract is written in, and the invariants checked when it is built.

:mod:`shoprec.contract` holds the *data* (schemas, features, the default ``CONTRACT``) and
re-exports these classes, so callers keep importing everything from ``shoprec.contract``. The
split only keeps each module readable; nothing here names a feature.

Pure data and standard library only: importing it is cheap and has no side effects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from shoprec.recipes import Count, History, Recipe, RequestPart, SmoothedRatio

Dtype = Literal["int64", "float64", "string", "timestamp"]
Kind = Literal["categorical", "numeric", "count", "sequence"]
SEQUENCE_TARGETS_IDS: tuple[str, ...] = ("user_id", "item_id")
"""Raw entity-id model inputs a sequence may name as its ``target`` (besides features)."""


@dataclass(frozen=True)
class Column:
    """One column of a stored table.

    Attributes:
        name: Column name in Parquet and in every DataFrame.
        dtype: Logical type; ingestion casts to it and GX checks it.
        required: Whether a null makes the row invalid (quarantined).
        min_value: Inclusive lower bound for numeric columns, checked row by row.
        allowed: Closed set of values for categorical string columns.
        description: What the column means, shown in Data Docs and the Feast UI.
    """

    name: str
    dtype: Dtype
    required: bool = True
    min_value: float | None = None
    allowed: tuple[str, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class TableSchema:
    """An ordered set of columns with a primary key."""

    name: str
    key: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        """Column names in storage order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """Return the column called ``name``; raise ``KeyError`` naming the table if absent."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


@dataclass(frozen=True)
class Feature:
    """One model feature, materialized offline and online by Feast.

    Attributes:
        name: Feature name; unique across all views (it is also the model input name).
        view: The Feast feature view that owns it.
        dtype: ``int64``, ``float64`` or ``string``; for a ``sequence``, the element dtype.
        kind: ``categorical`` features are looked up/hashed into embeddings inside the model;
            ``count`` features are log1p-normalized; ``numeric`` features are standardized;
            ``sequence`` features are fixed-length histories (see ``max_len``).
        default: Value used when an entity has no feature row (cold start, TTL miss). For a
            ``sequence`` it is the pad element, and a missing row is the empty sequence.
        used_by: The FeatureServices (consumers) that include it.
        recipe: How the feature builder computes it (:mod:`shoprec.recipes`).
        vocab_size: For categorical ids, the hashing bucket count used inside the model.
        description: Shown in the Feast registry/UI.
        max_len: For ``sequence`` features, the fixed length models see: values are kept newest
            last and left-padded with ``default`` (the pad element) up to ``max_len``.
        target: For ``sequence`` features, the model input the sequence is attended against
            (``item_id`` for the item-id history, ``i_category_id`` for the category history),
            so DIN/DIEN can share one embedding table between the history and the candidate.
    """

    name: str
    view: str
    dtype: Dtype
    kind: Kind
    default: float | int | str
    used_by: frozenset[str]
    recipe: Recipe | None = None
    vocab_size: int = 0
    description: str = ""
    max_len: int = 0
    target: str = ""


@dataclass(frozen=True)
class FeatureViewSpec:
    """A batch feature view: daily snapshots of one entity's features.

    Attributes:
        name: Feature view name (also the Parquet file stem under the features dir).
        entity: ``user`` or ``item``.
        ttl_days: How far back a snapshot may be used for a point-in-time join.
        description: Shown in the Feast registry/UI.
    """

    name: str
    entity: Literal["user", "item"]
    ttl_days: int
    description: str = ""


@dataclass(frozen=True)
class RequestField:
    """One value a caller sends with a request, read by on-demand (request-time) features.

    Attributes:
        name: Column name in entity rows (Feast ``RequestSource`` field).
        dtype: ``timestamp`` or ``string``.
        event_column: The event-schema column that plays this role in a training row (the
            impression's ``event_ts`` is the request time, its ``device`` the device), so the
            same function sees the same kind of value offline and online.
        description: Shown in the Feast registry/UI.
    """

    name: str
    dtype: Dtype
    event_column: str
    description: str = ""


@dataclass(frozen=True)
class RequestViewSpec:
    """An on-demand feature view: features computed from request fields, never stored.

    Attributes:
        name: Feast on-demand feature view name.
        description: Shown in the Feast registry/UI.
    """

    name: str
    description: str = ""


@dataclass(frozen=True)
class Entity:
    """A Feast entity with its join key (a column of the event schema)."""

    name: str
    join_key: str
    description: str = ""


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


PART_SEP = "@"
REQUEST_PART = "request"
"""Part name of a service's request (on-demand) features."""


def service_part(service: str, entity: str) -> str:
    """Name of the part of ``service`` keyed by ``entity`` (or ``"request"``), e.g. ``ranker@user``.

    A part is not a Feast FeatureService: it is read by feature references of the service's
    own views (``feature_repo.online.feast_fetcher``), so it can never hold a feature the
    service does not.
    """
    return f"{service}{PART_SEP}{entity}"


@dataclass(frozen=True)
class Contract:
    """Entities, feature views, features and the FeatureServices built from them.

    Attributes:
        project: Feast project name.
        entities: Join keys.
        views: Batch (snapshot) feature views; each has a Parquet file and a TTL.
        features: Every feature, in model-input order.
        services: The consumers; one FeatureService each.
        timestamp_field: Snapshot timestamp column of the batch views.
        label: Click label of the ranking training set (= ``task_labels["ctr"]``).
        request_views: On-demand views (computed from request fields, nothing stored).
        request_fields: Values callers send with a request; read by request-view features.
        task_labels: Ranking task name -> label column of ``datasets/ranker.parquet`` (the
            multi-task rankers read it; ``ctr`` must be ``label``).
    """

    project: str
    entities: tuple[Entity, ...]
    views: tuple[FeatureViewSpec, ...]
    features: tuple[Feature, ...]
    timestamp_field: str = "feature_ts"
    label: str = "label"
    services: tuple[str, ...] = ()
    request_views: tuple[RequestViewSpec, ...] = ()
    request_fields: tuple[RequestField, ...] = ()
    task_labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_labels", _frozen(self.task_labels or {"ctr": self.label}))
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique across views; repeated: {dupes}")
        view_names = {v.name for v in (*self.views, *self.request_views)}
        for f in self.features:
            if f.view not in view_names:
                raise ValueError(f"feature {f.name!r} names unknown view {f.view!r}")
            unknown = f.used_by - set(self.services)
            if unknown:
                raise ValueError(f"feature {f.name!r} used by unknown services {sorted(unknown)}")
            self._check_recipe(f)
        labels = list(self.task_labels.values())
        clash = sorted(set(labels) & {*names, *(e.join_key for e in self.entities)})
        ctr = self.task_labels.get("ctr", self.label)
        if len(set(labels)) != len(labels) or clash or ctr != self.label:
            raise ValueError(f"task_labels {dict(self.task_labels)} must name distinct label "
                             f"columns (not features/keys: {clash}), with ctr -> {self.label!r}")

    def _check_recipe(self, f: Feature) -> None:
        """Per-feature invariants that would otherwise fail late (in a DAG or at serving)."""
        if isinstance(f.recipe, SmoothedRatio):
            prior = f.recipe.alpha / (f.recipe.alpha + f.recipe.beta)
            if abs(float(f.default) - prior) > 1e-9:
                # A missing row means "no events": it must look like zero counts smoothed.
                raise ValueError(f"ratio feature {f.name!r} defaults to {f.default}, not its "
                                 f"prior mean {prior:g}")
            for ref in (f.recipe.numerator, f.recipe.denominator):
                other = next((g for g in self.features if g.name == ref), None)
                if other is None or other.view != f.view or not isinstance(other.recipe, Count):
                    raise ValueError(f"ratio feature {f.name!r} needs {ref!r} to be a Count "
                                     f"feature of view {f.view!r}")
        if (f.kind == "sequence") != isinstance(f.recipe, History) or (
                (f.kind == "sequence") != (f.max_len > 0)):
            raise ValueError(f"feature {f.name!r}: a 'sequence' feature needs a History recipe "
                             f"and max_len > 0, and only it (kind {f.kind!r}, max_len "
                             f"{f.max_len}, recipe {type(f.recipe).__name__})")
        if f.kind == "sequence":
            if f.dtype not in ("int64", "float64"):
                raise ValueError(f"sequence {f.name!r} needs element dtype int64 or float64")
            targets = {*SEQUENCE_TARGETS_IDS, *(g.name for g in self.features)}
            if f.target and f.target not in targets:
                raise ValueError(f"sequence {f.name!r} targets unknown input {f.target!r}")
        on_request = self.is_request_view(f.view)
        if on_request != isinstance(f.recipe, RequestPart):
            raise ValueError(f"feature {f.name!r}: RequestPart recipes belong to request views "
                             f"and request views hold only RequestPart features")
        if on_request and f.recipe.field not in {r.name for r in self.request_fields}:
            raise ValueError(f"feature {f.name!r} reads unknown request field "
                             f"{f.recipe.field!r}")

    def entity(self, name: str) -> Entity:
        """Return the entity called ``name``."""
        for e in self.entities:
            if e.name == name:
                return e
        raise KeyError(f"unknown entity {name!r}")

    def view(self, name: str) -> FeatureViewSpec:
        """Return the batch feature view spec called ``name`` (request views are not batch)."""
        for v in self.views:
            if v.name == name:
                return v
        raise KeyError(f"unknown feature view {name!r}")

    def is_request_view(self, name: str) -> bool:
        """Whether ``name`` is an on-demand (request-time) view."""
        return any(v.name == name for v in self.request_views)

    def request_view(self, name: str) -> RequestViewSpec:
        """Return the on-demand view spec called ``name``."""
        for v in self.request_views:
            if v.name == name:
                return v
        raise KeyError(f"unknown request view {name!r}")

    def view_features(self, view: str) -> list[Feature]:
        """Features owned by ``view``, in declaration order."""
        return [f for f in self.features if f.view == view]

    def service_features(self, service: str) -> list[Feature]:
        """Features a FeatureService serves, in declaration order.

        ``service`` may also name a *part* of a service, ``"<service>@<entity>"`` (the
        features of its views keyed by that entity) or ``"<service>@request"`` (its request
        features), see :func:`service_part`. Serving reads a ranker request's user part once
        and its item part from a cache: the same features, fewer store reads.
        """
        base, _, part = service.partition(PART_SEP)
        if base not in self.services:
            raise KeyError(f"unknown FeatureService {base!r}; known: {list(self.services)}")
        feats = [f for f in self.features if base in f.used_by]
        if not part:
            return feats
        if part == REQUEST_PART:
            return [f for f in feats if self.is_request_view(f.view)]
        entity = self.entity(part).name
        return [f for f in feats
                if not self.is_request_view(f.view) and self.view(f.view).entity == entity]

    def service_entities(self, service: str) -> list[Entity]:
        """Entities whose join keys a request to ``service`` must carry."""
        wanted = {self.view(f.view).entity for f in self.service_features(service)
                  if not self.is_request_view(f.view)}
        return [e for e in self.entities if e.name in wanted]

    def request_field(self, name: str) -> RequestField:
        """Return the request field called ``name``."""
        for r in self.request_fields:
            if r.name == name:
                return r
        raise KeyError(f"unknown request field {name!r}")

    def view_request_fields(self, view: str) -> list[RequestField]:
        """Request fields the features of request view ``view`` read, in declaration order."""
        used = {f.recipe.field for f in self.view_features(view)}
        return [r for r in self.request_fields if r.name in used]

    def service_request_fields(self, service: str) -> list[RequestField]:
        """Request fields a request to ``service`` must carry (empty without request views)."""
        used = {f.recipe.field for f in self.service_features(service)
                if isinstance(f.recipe, RequestPart)}
        return [r for r in self.request_fields if r.name in used]

    def feature(self, name: str) -> Feature:
        """Return the feature called ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"unknown feature {name!r}")

    def defaults(self, names: list[str] | None = None) -> dict[str, float | int | str]:
        """Fill values for missing feature rows, by feature name."""
        feats = self.features if names is None else [self.feature(n) for n in names]
        return {f.name: f.default for f in feats}
