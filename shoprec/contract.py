"""The one place where ShopRec's data shapes are declared.

Every other layer derives from this module instead of typing names again:

* ingestion and the Great Expectations suites read :data:`EVENT_SCHEMA`, :data:`ITEM_SCHEMA`
  and :data:`USER_SCHEMA`;
* the Feast repo builds its entities, feature views (batch snapshots and the request-time
  on-demand view) and FeatureServices from :data:`CONTRACT`;
* training asks Feast for a FeatureService by name and builds model inputs from the columns
  that come back; serving asks the online store for the *same* FeatureService, so a feature
  added here reaches both sides or neither (no training-serving skew);
* the ranking training set carries one label column per task of ``CONTRACT.task_labels``.

The classes live in :mod:`shoprec.contract_model` and are re-exported here. The module is pure
data: importing it is cheap and has no side effects, so DAG files may import it at parse time.
"""

from __future__ import annotations

from shoprec.contract_model import (
    Column,
    Contract,
    Dtype,
    Entity,
    Feature,
    FeatureViewSpec,
    Kind,
    RequestField,
    RequestViewSpec,
    TableSchema,
)
from shoprec.recipes import (
    GAP_HOURS,
    ITEM,
    Attr,
    Band,
    Count,
    DaysSince,
    DaysSinceLast,
    History,
    MeanItemAttr,
    Recipe,
    RequestPart,
    SmoothedRatio,
    TopItemAttr,
)

__all__ = ["CONTRACT", "Column", "Contract", "Dtype", "Entity", "Feature", "FeatureViewSpec",
           "Kind", "RequestField", "RequestViewSpec", "TableSchema"]

EVENT_TYPES: tuple[str, ...] = ("impression", "click", "cart", "fav", "purchase")
"""Funnel order: an impression may lead to a click, then cart/fav, then purchase."""

POSITIVE_EVENT_TYPES: tuple[str, ...] = ("click", "cart", "fav", "purchase")
"""Events that count as interest; the two-tower model learns from these."""

DEVICES: tuple[str, ...] = ("ios", "android", "web")


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

ID_VOCAB: dict[str, int] = {"user_id": 200_000, "item_id": 100_000}
"""Hash-bucket counts for raw entity ids used as model inputs (unseen ids still hash)."""

WINDOWS: tuple[int, ...] = (30, 7, 1)
"""Lengths (days) of the count windows; each ends at the snapshot time (exclusive)."""
PLURAL: dict[str, str] = {"impression": "impressions", "click": "clicks", "cart": "carts",
                          "fav": "favs", "purchase": "purchases"}
"""Feature-name stem of each event type's counts (``u_clicks_7d``)."""
PRICE_BAND_EDGES: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0,
                                       1000.0, 2000.0, 5000.0)
"""Fixed log-spaced price bands (the 1-2-5 series, each band a factor 2-2.5 wide): band 0 is
price < 1, band k is [edge k-1, edge k), band 12 is >= 5000. Fixed rather than quantiles, so a
band means the same price range in every snapshot, run and shop."""
HISTORY_LEN = 50
"""Positive events kept in a user's behaviour sequence (newest last, left-padded)."""
SMALL_VOCAB = 1000
"""Hash buckets for small closed categorical sets (bands, hour, weekday, device): enough that
their few values rarely share a bucket, and the table stays tiny."""

_U, _I, _R = USER_TOWER, ITEM_TOWER, RANKER
_IMP, _CLICK, _BUY = ("impression",), ("click",), ("purchase",)
_USER_TOWER_COUNTS = {("click", 30), ("click", 7), ("purchase", 30)}
"""(event type, window) counts the user tower sees; the ranker sees every count."""


def _f(name: str, view: str, dtype: Dtype, kind: Kind, default: float | int | str,
       used_by: set[str], recipe: Recipe, vocab: int = 0, desc: str = "") -> Feature:
    return Feature(name, view, dtype, kind, default, frozenset(used_by), recipe, vocab, desc)


def _seq(name: str, dtype: Dtype, pad: float | int, value: str, target: str, vocab: int,
         desc: str) -> Feature:
    return Feature(name, "user_sequence", dtype, "sequence", pad, frozenset({_U, _R}),
                   History(POSITIVE_EVENT_TYPES, value, 30), vocab, desc, HISTORY_LEN, target)


def _user_counts() -> tuple[Feature, ...]:
    return tuple(
        _f(f"u_{PLURAL[ev]}_{w}d", "user_stats", "int64", "count", 0,
           {_U, _R} if (ev, w) in _USER_TOWER_COUNTS else {_R}, Count((ev,), w),
           desc=f"The user's {ev} events in the {w} days before the snapshot.")
        for ev in EVENT_TYPES for w in WINDOWS)


def _top_categories() -> tuple[Feature, ...]:
    return tuple(
        _f("u_top_category" if k == 1 else f"u_top_category_{k}", "user_stats", "int64",
           "categorical", -1, {_U, _R}, TopItemAttr("category_id", POSITIVE_EVENT_TYPES, 30, k),
           1000, f"Category with the user's #{k} most positive events in 30 days.")
        for k in (1, 2, 3))


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
        FeatureViewSpec("user_sequence", "user", 2,
                        "The user's last positive events (30 days) as fixed-length histories."),
    ),
    request_views=(
        RequestViewSpec("request_context", "Hour, weekday and device of the request itself."),
    ),
    request_fields=(
        RequestField("request_ts", "timestamp", "event_ts",
                     "When the request is made (UTC); offline: the impression's time."),
        RequestField("request_device", "string", "device",
                     "Client device of the request; offline: the impression's device."),
    ),
    task_labels={"ctr": "label", "cvr": "label_purchase"},
    services=SERVICES,
    features=(
        *_user_counts(),
        _f("u_ctr_30d", "user_stats", "float64", "numeric", 0.05, {_U, _R},
           SmoothedRatio("u_clicks_30d", "u_impressions_30d", 1.0, 19.0),
           desc="Clicks/impressions, Beta(1, 19) smoothed."),
        _f("u_cvr_30d", "user_stats", "float64", "numeric", 0.02, {_U, _R},
           SmoothedRatio("u_purchases_30d", "u_clicks_30d", 1.0, 49.0),
           desc="Purchases/clicks, Beta(1, 49) smoothed."),
        _f("u_avg_price_30d", "user_stats", "float64", "numeric", 0.0, {_R},
           MeanItemAttr("price", _CLICK, 30), desc="Mean price of items the user clicked."),
        _f("u_avg_paid_30d", "user_stats", "float64", "numeric", 0.0, {_U, _R},
           MeanItemAttr("price", _BUY, 30), desc="Mean price of items the user purchased."),
        *_top_categories(),
        _f("u_days_since_last", "user_stats", "float64", "numeric", 30.0, {_U, _R},
           DaysSinceLast(EVENT_TYPES, 30),
           desc="Days since the user's last event (30 = none in the 30-day window)."),
        _f("i_impressions_30d", "item_stats", "int64", "count", 0, {_R}, Count(_IMP, 30)),
        _f("i_clicks_30d", "item_stats", "int64", "count", 0, {_I, _R}, Count(_CLICK, 30)),
        _f("i_purchases_30d", "item_stats", "int64", "count", 0, {_R}, Count(_BUY, 30)),
        *(_f(f"i_popularity_{w}d", "item_stats", "int64", "count", 0,
             {_I, _R} if w == 7 else {_R}, Count(POSITIVE_EVENT_TYPES, w),
             desc=f"Positive events (click/cart/fav/purchase) on the item in {w} days.")
          for w in WINDOWS),
        _f("i_ctr_30d", "item_stats", "float64", "numeric", 0.05, {_R},
           SmoothedRatio("i_clicks_30d", "i_impressions_30d", 1.0, 19.0),
           desc="Clicks/impressions, Beta(1, 19) smoothed."),
        _f("i_cvr_30d", "item_stats", "float64", "numeric", 0.02, {_R},
           SmoothedRatio("i_purchases_30d", "i_clicks_30d", 1.0, 49.0),
           desc="Purchases/clicks, Beta(1, 49) smoothed."),
        _f("i_category_id", "item_profile", "int64", "categorical", -1, {_I, _R},
           Attr("category_id"), 1000),
        _f("i_shop_id", "item_profile", "int64", "categorical", -1, {_I, _R}, Attr("shop_id"),
           5000, "Shop (brand) selling the item."),
        _f("i_price", "item_profile", "float64", "numeric", 0.0, {_I, _R}, Attr("price")),
        _f("i_price_band", "item_profile", "int64", "categorical", -1, {_I, _R},
           Band("price", PRICE_BAND_EDGES), SMALL_VOCAB,
           "Fixed log price band (PRICE_BAND_EDGES); -1 = unknown price."),
        _f("i_stock", "item_profile", "int64", "count", 0, {_R}, Attr("stock")),
        _f("i_age_days", "item_profile", "float64", "numeric", 0.0, {_R},
           DaysSince("launch_ts"), desc="Days since launch at snapshot time."),
        _seq("u_hist_item_ids", "int64", -1, ITEM, "item_id", ID_VOCAB["item_id"],
             "Items of the user's last 50 positive events (30 days), newest last."),
        _seq("u_hist_category_ids", "int64", -1, "category_id", "i_category_id", 1000,
             "Categories of the same events as u_hist_item_ids (-1: item not in catalogue)."),
        _seq("u_hist_gap_hours", "float64", 0.0, GAP_HOURS, "", 0,
             "Hours from each event of u_hist_item_ids to the snapshot time."),
        _f("ctx_hour", "request_context", "int64", "categorical", -1, {_R},
           RequestPart("request_ts", "hour"), SMALL_VOCAB, "Hour (UTC) of the request."),
        _f("ctx_weekday", "request_context", "int64", "categorical", -1, {_R},
           RequestPart("request_ts", "weekday"), SMALL_VOCAB,
           "Weekday (UTC, 0 = Monday) of the request."),
        _f("ctx_device", "request_context", "int64", "categorical", -1, {_R},
           RequestPart("request_device", "code", DEVICES), SMALL_VOCAB,
           "Position of the request's device in DEVICES; -1 = missing or unknown."),
    ),
)
"""The default contract. Tests may build variants with :func:`dataclasses.replace`."""
