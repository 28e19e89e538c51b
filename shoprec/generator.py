"""Seeded synthetic shop data with a learnable signal: landing files for the whole pipeline.

Real shops do not share their logs, yet every stage (ingestion, validation, features, training,
serving) must be exercised on data with realistic structure. The generator plants structure that a
recommender can recover, and that tests can check against the planted truth:

* power-law item popularity (a few items take most of the exposure);
* latent user interests per category that drift day by day (so yesterday's model goes stale);
* a funnel impression → click → cart/fav → purchase driven by user–item affinity, popularity,
  shop quality and the user's price sensitivity (:mod:`shoprec.generator_sessions`);
* a short-term sequence effect: recently clicked categories raise the click probability of the
  next impressions (a signal a sequence model can use and a bag-of-features model cannot).

Output is byte-identical for the same config: one random stream per day, seeded from the config,
and Parquet written by pyarrow without any clock-dependent metadata. Days are generated one at a
time, so memory is bounded by the busiest day, not by the total number of events.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shoprec.contract import DEVICES, EVENT_SCHEMA, EVENT_TYPES, ITEM_SCHEMA, USER_SCHEMA
from shoprec.generator_sessions import DayEvents, simulate_day
from shoprec.generator_world import World, build_world

ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
               "timestamp": pa.timestamp("ns", tz="UTC")}
"""Arrow type of each contract dtype, as written to landing files."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Scale and behaviour of the synthetic shop; every field has a deterministic default.

    Attributes:
        n_users: Number of shoppers.
        n_items: Number of catalogue items (at least ``n_categories``).
        n_categories: Number of item categories.
        n_shops: Number of shops/brands.
        days: Number of consecutive days of events.
        sessions_per_user_day: Mean sessions per user and day (users differ in activity).
        impressions_per_session: Mean impressions per session (geometric, capped at 3x).
        seed: Seed of everything random; same config → byte-identical files.
        start_date: First day (ISO ``YYYY-MM-DD``, UTC), fixed so output does not depend on
            when it was generated.
        popularity_exponent: Power-law exponent of item popularity (``rank ** -exponent``).
        interest_concentration: Dirichlet concentration of user tastes (small = focused users).
        drift_sigma: Daily random-walk step of interest logits (0 = frozen tastes).
        personal_share: Share of impressions drawn from the session's intent category.
        new_item_share: Share of items launched during the window rather than before it.
        base_click_logit: Click logit of an average item for a neutral user.
        affinity_weight: Weight of the user's interest in the item's category.
        popularity_weight: Weight of the item's standardized log popularity.
        price_weight: Weight of price sensitivity x standardized log price (a penalty).
        sequence_boost: Click-logit boost when the item's category was clicked just before.
    """

    n_users: int = 1000
    n_items: int = 500
    n_categories: int = 10
    n_shops: int = 50
    days: int = 7
    sessions_per_user_day: float = 0.5
    impressions_per_session: float = 10.0
    seed: int = 42
    start_date: str = "2026-10-01"
    popularity_exponent: float = 1.0
    interest_concentration: float = 0.3
    drift_sigma: float = 0.5
    personal_share: float = 0.6
    new_item_share: float = 0.1
    base_click_logit: float = -4.2
    affinity_weight: float = 0.8
    popularity_weight: float = 0.4
    price_weight: float = 1.0
    sequence_boost: float = 1.0

    def __post_init__(self) -> None:
        # Values may arrive as text or the "wrong" number type (CLI overrides, JSON): coerce
        # them once here, refusing lossy conversions, so the rest never checks types again.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float"):
                number = float(value)
                if f.type == "int" and not number.is_integer():
                    raise ValueError(f"{f.name} must be an integer, got {value!r}")
                object.__setattr__(self, f.name, int(number) if f.type == "int" else number)
        for name in ("n_users", "n_items", "n_categories", "n_shops", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.n_items < self.n_categories:
            raise ValueError(f"n_items ({self.n_items}) must be >= n_categories "
                             f"({self.n_categories}): every category needs an item")
        if not 0 < self.impressions_per_session <= 1000:
            raise ValueError("impressions_per_session must be in (0, 1000], got "
                             f"{self.impressions_per_session!r}")
        if self.sessions_per_user_day < 0:
            raise ValueError(f"sessions_per_user_day must be >= 0, got "
                             f"{self.sessions_per_user_day!r}")
        for name in ("personal_share", "new_item_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        try:
            date.fromisoformat(str(self.start_date))
        except ValueError as exc:
            raise ValueError(f"start_date must be YYYY-MM-DD, got {self.start_date!r}") from exc

    @property
    def start_ms(self) -> int:
        """Midnight UTC of ``start_date`` in Unix milliseconds."""
        d = date.fromisoformat(str(self.start_date))
        return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)

    def day(self, index: int) -> date:
        """Calendar date of day ``index``."""
        return date.fromisoformat(str(self.start_date)) + timedelta(days=index)


def _ts(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64) * 1_000_000, type=ARROW_TYPES["timestamp"])


def _write(table: pa.Table, path: Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a landing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def _table(schema, columns: dict[str, Any]) -> pa.Table:
    """An Arrow table in contract column order and types; a missing column is a bug here."""
    arrays = [pa.array(columns[c.name], type=ARROW_TYPES[c.dtype])
              if not isinstance(columns[c.name], pa.Array) else columns[c.name]
              for c in schema.columns]
    fields = [pa.field(c.name, ARROW_TYPES[c.dtype], nullable=not c.required)
              for c in schema.columns]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _decode(codes: np.ndarray, labels: tuple[str, ...]) -> pa.Array:
    dictionary = pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int8()), pa.array(labels))
    return dictionary.cast(pa.string())


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded number, built in Arrow (fast for millions of ids)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, type=pa.int64()), pa.string()), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def _write_tables(world: World, landing_dir: Path) -> None:
    n_items, n_users = len(world.item_category), len(world.user_age_band)
    _write(_table(ITEM_SCHEMA, {
        "item_id": np.arange(1, n_items + 1), "category_id": world.item_category,
        "shop_id": world.item_shop, "price": world.item_price,
        "launch_ts": _ts(world.item_launch_ms), "stock": world.item_stock,
    }), landing_dir / "items.parquet")
    _write(_table(USER_SCHEMA, {
        "user_id": np.arange(1, n_users + 1), "age_band": world.user_age_band,
        "city_tier": world.user_city_tier, "signup_ts": _ts(world.user_signup_ms),
    }), landing_dir / "users.parquet")


def _day_table(cfg: GeneratorConfig, day: int, ev: DayEvents, session_offset: int) -> pa.Table:
    """Sort a day's events by time (funnel order breaks ties) and give them ids."""
    order = np.lexsort((np.arange(len(ev.ts_ms)), ev.type_code, ev.ts_ms))
    stamp = cfg.day(day).strftime("%Y%m%d")
    n = len(order)
    return _table(EVENT_SCHEMA, {
        "event_id": _ids(f"g{cfg.seed}-{stamp}-", np.arange(1, n + 1), 7),
        "user_id": ev.user[order] + 1, "item_id": ev.item[order] + 1,
        "event_type": _decode(ev.type_code[order], EVENT_TYPES),
        "event_ts": _ts(cfg.start_ms + ev.ts_ms[order]),
        "session_id": _ids(f"s{cfg.seed}-", ev.session[order] + session_offset + 1, 8),
        "device": _decode(ev.device[order], DEVICES),
        "strength": np.ones(n),
    })


def generate(config: GeneratorConfig, landing_dir: Path) -> dict[str, Any]:
    """Write ``events/events_YYYY-MM-DD.parquet`` per day, ``items.parquet`` and ``users.parquet``.

    Existing event files of the same days are replaced; files of other days are left alone.

    Args:
        config: Scale, seed and behaviour.
        landing_dir: The landing folder (usually ``settings.landing_dir``).

    Returns:
        A JSON-able summary: events per type, total, sessions, users, items, files, date range.
    """
    landing_dir = Path(landing_dir)
    world = build_world(config)
    _write_tables(world, landing_dir)
    recent = np.full((config.n_users, 3), -1, dtype=np.int64)
    per_type = dict.fromkeys(EVENT_TYPES, 0)
    files: list[str] = []
    sessions = 0
    for day in range(config.days):
        rng = np.random.default_rng([config.seed, 1, day])
        events = simulate_day(world, config, day, recent, rng)
        table = _day_table(config, day, events, sessions)
        sessions += events.n_sessions
        path = landing_dir / "events" / f"events_{config.day(day).isoformat()}.parquet"
        _write(table, path)
        files.append(str(path.relative_to(landing_dir)))
        counts = np.bincount(events.type_code, minlength=len(EVENT_TYPES))
        for name, count in zip(EVENT_TYPES, counts, strict=True):
            per_type[name] += int(count)
    return {
        "events": per_type, "total_events": sum(per_type.values()), "sessions": sessions,
        "users": config.n_users, "items": config.n_items, "files": files,
        "date_range": [config.day(0).isoformat(), config.day(config.days - 1).isoformat()],
    }
