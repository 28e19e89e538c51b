"""One simulated day of shopping sessions, fully vectorised over sessions.

A session has an intent category drawn from the user's current (drifting) interests. It shows a
sequence of impressions, some from the intent category and some from the global popularity
ranking. Each impression is clicked with probability

    sigmoid(base + w_aff * affinity(user, category) + w_pop * z_pop(item) + shop_quality
            - w_price * price_sensitivity(user) * z_price(item) + sequence_boost)

where ``sequence_boost`` is added when the item's category is among the user's last clicked
categories (most recent weighs most). That term is the short-term sequence signal a model such as
DIN can exploit and a bag-of-features model cannot. Clicks then lead to cart/fav and carts to
purchases. Positions are simulated in order (a loop over the few positions of a session), while all
sessions of the day advance together, so memory is bounded by one day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoprec.contract import EVENT_TYPES
from shoprec.generator_world import MS_PER_DAY, World, drift

RECENT_WEIGHTS = np.array([1.0, 0.6, 0.35], dtype=np.float32)
"""Sequence boost per slot of the recent-click memory (most recent first), times the config's
``sequence_boost``."""
DIURNAL = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 7, 8, 7, 6, 6, 7, 8, 10, 12, 13, 12, 8, 4],
                   dtype=np.float64)
"""Relative session starts per UTC hour: a quiet night and an evening peak."""
IMPRESSION_GAP_MS = (3_000, 25_000)
CLICK_DELAY_MS = (1_000, 8_000)
FAV_DELAY_MS = (2_000, 20_000)
CART_DELAY_MS = (3_000, 30_000)
PURCHASE_DELAY_MS = (5_000, 60_000)
TAIL_MS = CLICK_DELAY_MS[1] + CART_DELAY_MS[1] + PURCHASE_DELAY_MS[1]
"""Latest follow-up after a session's last impression; sessions end before midnight."""
TYPE_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}
"""Event type code = position in :data:`shoprec.contract.EVENT_TYPES` (funnel order)."""


@dataclass
class DayEvents:
    """Events of one day as parallel arrays (positions into the world's user/item arrays)."""

    user: np.ndarray
    item: np.ndarray
    type_code: np.ndarray
    ts_ms: np.ndarray
    session: np.ndarray
    device: np.ndarray
    n_sessions: int


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _sample_from_cdf(cum: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     u: np.ndarray) -> np.ndarray:
    """Index ``i`` in ``[lo, hi)`` with probability proportional to the weight at ``i``."""
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    target = base + u * (cum[hi - 1] - base)
    return np.minimum(np.searchsorted(cum, target, side="right"), hi - 1)


def _within_session_cumsum(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` restarted at every session (impressions are session-major)."""
    total = np.cumsum(values)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0)
    return total - before


def click_logit(world: World, cfg, users: np.ndarray, items: np.ndarray,
                affinity: np.ndarray) -> np.ndarray:
    """Click logit of (user, item) pairs before the sequence boost (see the module docstring).

    Public so tests can check that the data is calibrated against the planted model.
    """
    return (cfg.base_click_logit + cfg.affinity_weight * affinity
            + cfg.popularity_weight * world.item_z_pop[items] + world.item_quality[items]
            - cfg.price_weight * world.user_price_sens[users] * world.item_z_price[items])


def simulate_day(world: World, cfg, day: int, recent: np.ndarray,
                 rng: np.random.Generator) -> DayEvents:
    """Simulate every session of ``day``; updates ``recent`` (users x 3 click categories).

    Args:
        world: The latent world; today's active users' interests are drifted to ``day``.
        cfg: The :class:`shoprec.generator.GeneratorConfig`.
        day: Index of the day from ``cfg.start_date``.
        recent: ``int32`` array, the categories of each user's last clicks (-1 = none); carried
            across days so yesterday's clicks still steer today's first impressions.
        rng: This day's random generator.
    """
    n_users = world.theta.shape[0]
    # Sessions: heavy users come more often; several sessions a day are possible.
    per_user = rng.poisson(cfg.sessions_per_user_day * world.user_activity)
    s_user = np.repeat(np.arange(n_users), per_user)
    active = np.flatnonzero(per_user)
    drift(world, cfg.drift_sigma, day, active, rng)
    lse = np.zeros(n_users, dtype=np.float32)
    lse[active] = world.log_normalizer(active)
    n_sess = len(s_user)
    max_len = max(2, int(np.ceil(3 * cfg.impressions_per_session)))
    s_len = np.minimum(rng.geometric(1.0 / max(cfg.impressions_per_session, 1.0), n_sess),
                       max_len)
    interest = np.exp(world.theta[s_user] - lse[s_user, None])
    cum = np.cumsum(interest, axis=1)
    s_cat = (cum < rng.random((n_sess, 1)) * cum[:, -1:]).sum(axis=1)
    keep_pref = rng.random(n_sess) < 0.8
    s_device = np.where(keep_pref, world.user_device[s_user],
                        rng.integers(0, 3, n_sess)).astype(np.int8)
    span = s_len * IMPRESSION_GAP_MS[1] + TAIL_MS
    hour = rng.choice(24, size=n_sess, p=DIURNAL / DIURNAL.sum())
    s_start = np.minimum(hour * 3_600_000 + rng.integers(0, 3_600_000, n_sess),
                         MS_PER_DAY - 1 - span)

    # Impressions (session-major): intent-category items or globally popular ones.
    imp_sess = np.repeat(np.arange(n_sess), s_len)
    n_imp = len(imp_sess)
    imp_pos = np.arange(n_imp) - np.repeat(np.cumsum(s_len) - s_len, s_len)
    weights = world.item_pop * (world.item_launch_day <= day)
    order = np.argsort(world.item_category, kind="stable")
    cum_cat = np.cumsum(weights[order])
    cat_sorted = world.item_category[order]
    n_cat = world.theta.shape[1]
    lo = np.searchsorted(cat_sorted, np.arange(n_cat), side="left")
    hi = np.searchsorted(cat_sorted, np.arange(n_cat), side="right")
    c = s_cat[imp_sess]
    by_cat = order[_sample_from_cdf(cum_cat, lo[c], hi[c], rng.random(n_imp))]
    cum_all = np.cumsum(weights)
    zeros = np.zeros(n_imp, dtype=np.int64)
    by_pop = _sample_from_cdf(cum_all, zeros, zeros + len(weights), rng.random(n_imp))
    imp_item = np.where(rng.random(n_imp) < cfg.personal_share, by_cat, by_pop)
    gaps = rng.integers(*IMPRESSION_GAP_MS, n_imp)
    imp_ts = s_start[imp_sess] + _within_session_cumsum(gaps, s_len) - gaps

    imp_user = s_user[imp_sess]
    imp_cat = world.item_category[imp_item]
    imp_aff = world.affinity(imp_user, imp_cat, lse)
    base = click_logit(world, cfg, imp_user, imp_item, imp_aff)

    # Clicks, position by position, so a click steers the session's later impressions.
    s_recent = recent[s_user].copy()
    boost_w = np.float32(cfg.sequence_boost) * RECENT_WEIGHTS
    u_click = rng.random(n_imp)
    clicked = np.zeros(n_imp, dtype=bool)
    by_pos = np.argsort(imp_pos, kind="stable")
    pos_bounds = np.searchsorted(imp_pos[by_pos], np.arange(max_len + 1))
    for k in range(max_len):
        idx = by_pos[pos_bounds[k]:pos_bounds[k + 1]]
        if len(idx) == 0:
            break
        sess, cats = imp_sess[idx], imp_cat[idx]
        boost = ((s_recent[sess] == cats[:, None]) * boost_w).sum(axis=1)
        hit = u_click[idx] < _sigmoid(base[idx] + boost)
        clicked[idx] = hit
        hs = sess[hit]
        s_recent[hs, 1:] = s_recent[hs, :-1]
        s_recent[hs, 0] = cats[hit]
    if n_sess:
        last = np.lexsort((s_start, s_user))
        is_last = np.r_[s_user[last][1:] != s_user[last][:-1], True]
        recent[s_user[last][is_last]] = s_recent[last][is_last]

    # Funnel after the click: fav and cart depend on taste and price; purchase needs stock.
    ci = np.flatnonzero(clicked)
    c_user, c_item = imp_user[ci], imp_item[ci]
    c_aff = imp_aff[ci]
    c_price = world.user_price_sens[c_user] * world.item_z_price[c_item]
    click_ts = imp_ts[ci] + rng.integers(*CLICK_DELAY_MS, len(ci))
    fav = rng.random(len(ci)) < _sigmoid(-2.8 + 0.4 * c_aff)
    cart = rng.random(len(ci)) < _sigmoid(-2.2 + 0.5 * c_aff - 0.6 * c_price)
    cart_ts = click_ts + rng.integers(*CART_DELAY_MS, len(ci))
    buy = cart & (world.item_stock[c_item] > 0) & (
        rng.random(len(ci)) < _sigmoid(-0.9 + 0.3 * c_aff - 0.8 * c_price))
    fav_ts = click_ts + rng.integers(*FAV_DELAY_MS, len(ci))
    buy_ts = cart_ts + rng.integers(*PURCHASE_DELAY_MS, len(ci))

    parts = [(np.arange(n_imp), imp_ts, "impression"), (ci, click_ts, "click"),
             (ci[cart], cart_ts[cart], "cart"), (ci[fav], fav_ts[fav], "fav"),
             (ci[buy], buy_ts[buy], "purchase")]
    rows = np.concatenate([p[0] for p in parts])
    return DayEvents(
        user=imp_user[rows], item=imp_item[rows],
        type_code=np.concatenate([np.full(len(p[0]), TYPE_CODES[p[2]], np.int8) for p in parts]),
        ts_ms=np.concatenate([p[1] for p in parts]).astype(np.int64) + day * MS_PER_DAY,
        session=imp_sess[rows], device=s_device[imp_sess[rows]], n_sessions=n_sess,
    )
