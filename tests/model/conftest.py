"""Toy training data with a planted, learnable signal (users like one category)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from shoprec.contract import CONTRACT, ITEM_TOWER, USER_TOWER


@dataclass
class ToyData:
    ranker: pd.DataFrame
    retrieval: pd.DataFrame
    item_features: pd.DataFrame
    n_items: int


def _feature_values(rng: np.random.Generator, names: list[str], n: int) -> dict[str, np.ndarray]:
    """Noise values with contract dtypes for features the signal does not use."""
    out: dict[str, np.ndarray] = {}
    for name in names:
        f = CONTRACT.feature(name)
        if f.kind == "sequence":  # variable-length histories (0 .. max_len + 5), newest last
            lengths = rng.integers(0, f.max_len + 6, n)
            out[name] = np.array([(rng.integers(0, 50, k) if f.dtype == "int64"
                                   else rng.gamma(2.0, 10.0, k)).astype(f.dtype)
                                  for k in lengths] + [None], dtype=object)[:-1]
        elif f.kind == "count":
            out[name] = rng.poisson(20, n).astype(np.int64)
        elif f.kind == "categorical":
            out[name] = rng.integers(0, 50, n).astype(np.int64)
        else:
            out[name] = rng.gamma(2.0, 10.0, n).astype(np.float64)
    return out


def make_toy_data(n_users: int = 400, n_items: int = 300, n_cats: int = 10,
                  pos_per_user: int = 15, imp_per_user: int = 24, seed: int = 0) -> ToyData:
    """Users prefer one category; positives and clicks follow that preference.

    Retrieval: 90% of a user's positives come from their preferred category.
    Ranker: P(click) = 0.7 if the item's category equals the user's top category, else 0.1.
    The signal lives only in ``u_top_category`` × ``i_category_id``, so learning it requires a
    feature interaction (what the cross layers / tower dot product are for).
    """
    rng = np.random.default_rng(seed)
    user_ids = np.arange(n_users, dtype=np.int64) + 10_000
    pref = rng.integers(0, n_cats, n_users)
    item_ids = np.arange(n_items, dtype=np.int64) + 50_000
    item_cat = rng.integers(0, n_cats, n_items)
    def of(entity: str) -> list[str]:  # request-time features vary per row: put them on items
        return [f.name for f in CONTRACT.features if (CONTRACT.is_request_view(f.view) and
                entity == "item") or (not CONTRACT.is_request_view(f.view)
                                      and CONTRACT.view(f.view).entity == entity)]

    item_names, user_names = of("item"), of("user")
    items = pd.DataFrame({"item_id": item_ids, **_feature_values(rng, item_names, n_items)})
    items["i_category_id"] = item_cat.astype(np.int64)
    users = pd.DataFrame({"user_id": user_ids, **_feature_values(rng, user_names, n_users)})
    users["u_top_category"] = pref.astype(np.int64)
    by_cat = [np.flatnonzero(item_cat == c) for c in range(n_cats)]
    start = pd.Timestamp("2026-01-01", tz="UTC")

    def rows(per_user: int, in_pref_share: float) -> tuple[np.ndarray, np.ndarray]:
        u = np.repeat(np.arange(n_users), per_user)
        in_pref = rng.random(len(u)) < in_pref_share
        rand_items = rng.integers(0, n_items, len(u))
        pref_items = np.array([rng.choice(by_cat[pref[x]]) for x in u])
        return u, np.where(in_pref, pref_items, rand_items)

    def frame(u: np.ndarray, i: np.ndarray) -> pd.DataFrame:
        ts = start + pd.to_timedelta(rng.uniform(0, 30 * 86400, len(u)), unit="s")
        df = pd.DataFrame({"user_id": user_ids[u], "item_id": item_ids[i], "event_ts": ts})
        df = df.merge(users, on="user_id", how="left").merge(items, on="item_id", how="left")
        return df.sort_values("event_ts", kind="stable").reset_index(drop=True)

    retrieval = frame(*rows(pos_per_user, 0.9))
    ranker = frame(*rows(imp_per_user, 0.4))
    match = ranker["u_top_category"].to_numpy() == ranker["i_category_id"].to_numpy()
    ranker["label"] = (rng.random(len(ranker)) < np.where(match, 0.7, 0.1)).astype(np.int64)
    ranker["label_purchase"] = ranker["label"] * (rng.random(len(ranker)) < 0.3)
    r_cols = ["user_id", "item_id", "event_ts", "label", "label_purchase",
              *(f.name for f in CONTRACT.service_features("ranker"))]
    t_cols = ["user_id", "item_id", "event_ts",
              *dict.fromkeys(f.name for s in (USER_TOWER, ITEM_TOWER)
                             for f in CONTRACT.service_features(s))]
    i_cols = ["item_id", *(f.name for f in CONTRACT.service_features(ITEM_TOWER))]
    return ToyData(ranker[r_cols], retrieval[t_cols], items[i_cols].copy(), n_items)


@pytest.fixture(scope="session")
def toy_data() -> ToyData:
    return make_toy_data()
