"""The one place where ShopRec's data shapes are declared.

Every other layer derives from this module instead of typing names again:

* ingestion and the Great Expectations suites read :data:`EVENT_SCHEMA`, :data:`ITEM_SCHEMA`
  and :data:`USER_SCHEMA`;
* the Feast repo builds its entities, feature views and FeatureServices from :data:`CONTRACT`;
* training asks Feast for a FeatureService by name and builds model inputs from the columns
  that come back; serving asks the online store for the *same* FeatureService, so a feature
  added here reaches both sides or neither (no training-serving skew).

The module is pure data: importing it is cheap and has no side effects, so DAG files may
import it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shoprec.recipes import (
    Attr,
    Count,
    DaysSince,
    MeanItemAttr,
    Recipe,
    SmoothedRatio,
    TopItemAttr,
)

Dtype = Literal["int64", "float64", "string", "timestamp"]
Kind = Literal["categorical", "numeric", "count", "sequence"]

EVENT_TYPES: tuple[str, ...] = ("impression", "click", "cart", "fav", "purchase")
"""Funnel order: an impression may lead to a click, then cart/fav, then purchase."""

POSITIVE_EVENT_TYPES: tuple[str, ...] = ("click", "cart", "fav", "purchase")
"""Events that count as interest; the two-tower model learns from these."""

DEVICES: tuple[str, ...] = ("ios", "android", "web")


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


EVENT_SCHEMA = TableSchema(
    name="events",
    key="event_id",
    columns=(
        Column("event_id", "string", description="Globally unique id; re-ingestion dedups on it."),
        Column("user_id", "int64", min_value=0, description="Shop user id."),
        Column("item_id", "int64", min_value=0, description="Shop item id."),
        Column("event_type", "string", allowed=EVENT_TYPES, description="Funnel step."),
        Column("event_ts", "timestamp", description="When it happened, UTC."),
        Column("session_id", "string", required=False, description="Browsing session."),
        Column("device", "string", required=False, allowed=DEVICES, description="Client."),
        Column("strength", "float64", min_value=0, description="Signal weight (ratings)."),
    ),
)

ITEM_SCHEMA = TableSchema(
    name="items",
    key="item_id",
    columns=(
        Column("item_id", "int64", min_value=0),
        Column("category_id", "int64", min_value=0),
        Column("shop_id", "int64", min_value=0),
        Column("price", "float64", min_value=0),
        Column("launch_ts", "timestamp"),
        Column("stock", "int64", min_value=0),
    ),
)

USER_SCHEMA = TableSchema(
    name="users",
    key="user_id",
    columns=(
        Column("user_id", "int64", min_value=0),
        Column("age_band", "int64", min_value=0),
        Column("city_tier", "int64", min_value=0),
        Column("signup_ts", "timestamp"),
    ),
)

# Consumers of features. A FeatureService is generated for each.
USER_TOWER = "two_tower_user"
ITEM_TOWER = "two_tower_item"
RANKER = "ranker"
SERVICES: tuple[str, ...] = (USER_TOWER, ITEM_TOWER, RANKER)


@dataclass(frozen=True)
class Feature:
    """One model feature, materialized offline and online by Feast.

    Attributes:
        name: Feature name; unique across all views (it is also the model input name).
        view: The Feast feature view that owns it.
        dtype: ``int64``, ``float64`` or ``string``.
        kind: ``categorical`` features are looked up/hashed into embeddings inside the model;
            ``count`` features are log1p-normalized; ``numeric`` features are standardized.
        default: Value used when an entity has no feature row (cold start, TTL miss).
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
class Entity:
    """A Feast entity with its join key (a column of the event schema)."""

    name: str
    join_key: str
    description: str = ""


@dataclass(frozen=True)
class Contract:
    """Entities, feature views, features and the FeatureServices built from them."""

    project: str
    entities: tuple[Entity, ...]
    views: tuple[FeatureViewSpec, ...]
    features: tuple[Feature, ...]
    timestamp_field: str = "feature_ts"
    label: str = "label"
    services: tuple[str, ...] = field(default=SERVICES)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique across views; repeated: {dupes}")
        view_names = {v.name for v in self.views}
        for f in self.features:
            if f.view not in view_names:
                raise ValueError(f"feature {f.name!r} names unknown view {f.view!r}")
            unknown = f.used_by - set(self.services)
            if unknown:
                raise ValueError(f"feature {f.name!r} used by unknown services {sorted(unknown)}")
            if isinstance(f.recipe, SmoothedRatio):
                prior = f.recipe.alpha / (f.recipe.alpha + f.recipe.beta)
                if abs(float(f.default) - prior) > 1e-9:
                    # A missing row means "no events": it must look like zero counts smoothed.
                    raise ValueError(f"ratio feature {f.name!r} defaults to {f.default}, not its "
                                     f"prior mean {prior:g}")
                for ref in (f.recipe.numerator, f.recipe.denominator):
                    other = next((g for g in self.features if g.name == ref), None)
                    if other is None or other.view != f.view or not isinstance(other.recipe,
                                                                                Count):
                        raise ValueError(f"ratio feature {f.name!r} needs {ref!r} to be a Count "
                                         f"feature of view {f.view!r}")

    def entity(self, name: str) -> Entity:
        """Return the entity called ``name``."""
        for e in self.entities:
            if e.name == name:
                return e
        raise KeyError(f"unknown entity {name!r}")

    def view(self, name: str) -> FeatureViewSpec:
        """Return the feature view spec called ``name``."""
        for v in self.views:
            if v.name == name:
                return v
        raise KeyError(f"unknown feature view {name!r}")

    def view_features(self, view: str) -> list[Feature]:
        """Features owned by ``view``, in declaration order."""
        return [f for f in self.features if f.view == view]

    def service_features(self, service: str) -> list[Feature]:
        """Features a FeatureService serves, in declaration order."""
        if service not in self.services:
            raise KeyError(f"unknown FeatureService {service!r}; known: {list(self.services)}")
        return [f for f in self.features if service in f.used_by]

    def service_entities(self, service: str) -> list[Entity]:
        """Entities whose join keys a request to ``service`` must carry."""
        wanted = {self.view(f.view).entity for f in self.service_features(service)}
        return [e for e in self.entities if e.name in wanted]

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


_U, _I, _R = USER_TOWER, ITEM_TOWER, RANKER
_IMP, _CLICK, _BUY = ("impression",), ("click",), ("purchase",)


def _f(name: str, view: str, dtype: Dtype, kind: Kind, default: float | int | str,
       used_by: set[str], recipe: Recipe, vocab: int = 0, desc: str = "") -> Feature:
    return Feature(name, view, dtype, kind, default, frozenset(used_by), recipe, vocab, desc)


CONTRACT = Contract(
    project="shoprec",
    entities=(
        Entity("user", "user_id", "A shopper."),
        Entity("item", "item_id", "A product listing."),
    ),
    views=(
        FeatureViewSpec("user_stats", "user", 2, "User behaviour aggregates over 30 days."),
        FeatureViewSpec("item_stats", "item", 2, "Item engagement aggregates over 30 days."),
        FeatureViewSpec("item_profile", "item", 2, "Item catalogue attributes as of the day."),
    ),
    features=(
        _f("u_impressions_30d", "user_stats", "int64", "count", 0, {_R}, Count(_IMP, 30)),
        _f("u_clicks_30d", "user_stats", "int64", "count", 0, {_U, _R}, Count(_CLICK, 30)),
        _f("u_purchases_30d", "user_stats", "int64", "count", 0, {_U, _R}, Count(_BUY, 30)),
        _f("u_ctr_30d", "user_stats", "float64", "numeric", 0.05, {_U, _R},
           SmoothedRatio("u_clicks_30d", "u_impressions_30d", 1.0, 19.0),
           desc="Clicks/impressions, Beta(1, 19) smoothed."),
        _f("u_avg_price_30d", "user_stats", "float64", "numeric", 0.0, {_R},
           MeanItemAttr("price", _CLICK, 30), desc="Mean price of items the user clicked."),
        _f("u_top_category", "user_stats", "int64", "categorical", -1, {_U, _R},
           TopItemAttr("category_id", POSITIVE_EVENT_TYPES, 30), 1000,
           "Category the user engaged with most."),
        _f("i_impressions_30d", "item_stats", "int64", "count", 0, {_R}, Count(_IMP, 30)),
        _f("i_clicks_30d", "item_stats", "int64", "count", 0, {_I, _R}, Count(_CLICK, 30)),
        _f("i_purchases_30d", "item_stats", "int64", "count", 0, {_R}, Count(_BUY, 30)),
        _f("i_ctr_30d", "item_stats", "float64", "numeric", 0.05, {_R},
           SmoothedRatio("i_clicks_30d", "i_impressions_30d", 1.0, 19.0),
           desc="Clicks/impressions, Beta(1, 19) smoothed."),
        _f("i_cvr_30d", "item_stats", "float64", "numeric", 0.02, {_R},
           SmoothedRatio("i_purchases_30d", "i_clicks_30d", 1.0, 49.0),
           desc="Purchases/clicks, Beta(1, 49) smoothed."),
        _f("i_category_id", "item_profile", "int64", "categorical", -1, {_I, _R},
           Attr("category_id"), 1000),
        _f("i_shop_id", "item_profile", "int64", "categorical", -1, {_I, _R}, Attr("shop_id"),
           5000),
        _f("i_price", "item_profile", "float64", "numeric", 0.0, {_I, _R}, Attr("price")),
        _f("i_stock", "item_profile", "int64", "count", 0, {_R}, Attr("stock")),
        _f("i_age_days", "item_profile", "float64", "numeric", 0.0, {_R},
           DaysSince("launch_ts"), desc="Days since launch at snapshot time."),
    ),
)
"""The default contract. Tests may build variants with :func:`dataclasses.replace`."""

ID_VOCAB: dict[str, int] = {"user_id": 200_000, "item_id": 100_000}
"""Hash-bucket counts for raw entity ids used as model inputs (unseen ids still hash)."""
