"""Homes for the monitoring tests: random snapshots with planted shifts, and served vectors.

* :func:`write_snapshots` writes ``features/<view>.parquet`` files for every batch view of a
  contract, values drawn per feature *kind* from fixed distributions (so every feature of the
  contract, sequences included, is exercised without naming one), optionally with one feature
  shifted in the last day.
* :func:`served_home` builds the hand-checkable tiny event store of
  :mod:`tests.data.feature_fixtures` into snapshots, ``feast apply``, an explicit-range
  materialization, then reads the ranker FeatureService through
  ``feature_repo.online.feast_fetcher`` (the fetcher the Bento service uses) and logs it with
  :class:`serving.feature_log.FeatureLog`, as serving does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import CONTRACT, RANKER, Contract, Feature
from shoprec.recipes import Attr, Count, DaysSince, MeanItemAttr, SmoothedRatio, TopItemAttr
from shoprec.settings import Settings
from tests.data.feature_fixtures import tiny_items, tiny_users, write_tiny

SERVED_AT = pd.Timestamp("2025-04-11 12:00", tz="UTC")
"""Half a day after the newest snapshot (04-11 00:00), within every view's 2-day TTL, so the
point-in-time join must see the same rows the online store holds."""
UNKNOWN = 404
"""An id absent from every table: a cold start, contract defaults on both sides."""


def snapshot_contract(base: Contract = CONTRACT) -> Contract:
    """``base`` restricted to scalar snapshot features of the long-standing recipe kinds.

    Sequence and request-time features need offline support that is still being added to the
    features stage; the skew rules for them are tested without a store (``test_skew``).
    """
    classic = (Count, SmoothedRatio, MeanItemAttr, Attr, DaysSince)
    feats = tuple(f for f in base.features
                  if f.kind != "sequence" and not base.is_request_view(f.view)
                  and (isinstance(f.recipe, classic)
                       or isinstance(f.recipe, TopItemAttr) and f.recipe.rank == 1))
    views = tuple(v for v in base.views if any(f.view == v.name for f in feats))
    return dataclasses.replace(base, features=feats, views=views, request_views=(),
                               request_fields=())


SNAPSHOT_CONTRACT = snapshot_contract()
"""Importable as ``tests.data.skew_fixtures:SNAPSHOT_CONTRACT`` (``SHOPREC_CONTRACT``)."""


def served_home(settings: Settings, contract: Contract) -> tuple[Any, int]:
    """Build the store, serve one ranker request per user and log it; return (store, rows)."""
    from feature_repo import store as fstore
    from feature_repo.build import build_snapshots
    from feature_repo.online import feast_fetcher
    from serving.feature_log import FeatureLog

    write_tiny(settings)
    build_snapshots(settings, contract)
    fstore.apply(settings, contract)
    store = fstore.open_store(settings)
    fstore.materialize(settings, store, contract)
    fetch = feast_fetcher(store, contract)
    log = FeatureLog(settings, contract)
    users = [*tiny_users()["user_id"].tolist(), UNKNOWN]
    items = [*tiny_items()["item_id"].tolist(), UNKNOWN]
    rows = 0
    for n, user in enumerate(users):
        entity = pd.DataFrame({"user_id": [user] * len(items), "item_id": items})
        log.append(fetch(RANKER, entity), (SERVED_AT + pd.Timedelta(minutes=n)).to_pydatetime(),
                   request_id=f"req-{n}")
        rows += len(items)
    log.close()
    return store, rows


DAY0 = pd.Timestamp("2025-06-01", tz="UTC")
Shift = Callable[[Feature, Any], Any]
"""``shift(feature, values) -> values`` applied to one feature's values of the last day."""


def random_values(feat: Feature, n: int, rng: np.random.Generator) -> Any:
    """``n`` values of ``feat`` from a fixed distribution of its kind (and element dtype)."""
    if feat.kind == "count":
        return rng.poisson(3.0, n).astype(np.int64)
    if feat.kind == "numeric":
        return rng.gamma(2.0, 10.0, n)
    if feat.kind == "categorical":
        return rng.integers(0, 8, n).astype(np.int64)
    lengths = rng.integers(0, feat.max_len + 1, n)
    if feat.dtype == "float64":
        return [rng.gamma(2.0, 5.0, k).tolist() for k in lengths]
    return [rng.integers(0, 30, k).tolist() for k in lengths]


def write_snapshots(settings: Settings, contract: Contract, days: int = 8, rows: int = 400,
                    shifted: Feature | None = None, shift: Shift | None = None,
                    seed: int = 3) -> pd.Timestamp:
    """Daily snapshots ``DAY0 .. DAY0 + days - 1`` of every batch view; returns the last day.

    Every day draws ``rows`` rows per view from the same distributions, except ``shifted``,
    whose values of the last day go through ``shift``.
    """
    rng = np.random.default_rng(seed)
    settings.features_dir.mkdir(parents=True, exist_ok=True)
    last = DAY0 + pd.Timedelta(days=days - 1)
    for spec in contract.views:
        key = contract.entity(spec.entity).join_key
        parts = []
        for d in range(days):
            day = DAY0 + pd.Timedelta(days=d)
            part = pd.DataFrame({key: np.arange(rows, dtype=np.int64)})
            for feat in contract.view_features(spec.name):
                values = random_values(feat, rows, rng)
                if shifted is not None and feat.name == shifted.name and day == last:
                    values = shift(feat, values)
                part[feat.name] = values
            part[contract.timestamp_field] = day
            parts.append(part)
        pd.concat(parts, ignore_index=True).to_parquet(
            settings.features_dir / f"{spec.name}.parquet", index=False)
    return last
