"""The latent world behind the synthetic data: catalogue, shoppers and their hidden tastes.

Everything a model should be able to learn is planted here, as plain numpy arrays, so tests can
compare what the generator *meant* (e.g. a user's true interest in a category) with what ended up
in the event files. Only :mod:`shoprec.generator` writes files; this module is pure computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MS_PER_DAY = 86_400_000
AGE_BAND_P = (0.10, 0.25, 0.25, 0.20, 0.12, 0.08)
"""Share of users per age band 0..5."""
CITY_TIER_P = (0.35, 0.40, 0.25)
"""Share of users in city tiers 1, 2, 3 (tier 3 shoppers are the most price sensitive)."""
DEVICE_P = (0.35, 0.45, 0.20)
"""Preferred-device shares, aligned with :data:`shoprec.contract.DEVICES`."""
LOG_INTEREST_FLOOR = float(np.log(1e-3))
"""Dirichlet draws can be ~1e-30; flooring keeps a drifting user able to discover a category."""


@dataclass
class World:
    """Items, users and the users' (mutable, drifting) interest logits.

    Item and user arrays are indexed by position; ids are ``position + 1``.

    Attributes:
        item_category: Category of each item.
        item_shop: Shop of each item.
        item_price: Price, rounded to cents.
        item_launch_ms: Launch time (Unix ms); items launched during the window appear then.
        item_launch_day: Index of the first generated day the item may be shown (<= 0: from start).
        item_stock: Units in stock; out-of-stock items can be clicked but never purchased.
        item_pop: Power-law popularity weight (exposure and a small click bonus).
        item_z_pop: Standardized log popularity.
        item_z_price: Standardized log price (what price sensitivity multiplies).
        item_quality: Shop/brand quality added to the click logit.
        user_age_band: Age band 0..5.
        user_city_tier: City tier 1..3.
        user_signup_ms: Sign-up time (Unix ms), always before the first generated day.
        user_activity: Relative session rate (mean 1, heavy tail).
        user_price_sens: Price sensitivity (>= 0); grows with city tier.
        user_device: Preferred device code (index into DEVICES).
        theta: ``(n_users, n_categories)`` float32 interest logits; drift mutates them.
        drift_day: Per user, the day their ``theta`` was last drifted to (see :func:`drift`).
    """

    item_category: np.ndarray
    item_shop: np.ndarray
    item_price: np.ndarray
    item_launch_ms: np.ndarray
    item_launch_day: np.ndarray
    item_stock: np.ndarray
    item_pop: np.ndarray
    item_z_pop: np.ndarray
    item_z_price: np.ndarray
    item_quality: np.ndarray
    user_age_band: np.ndarray
    user_city_tier: np.ndarray
    user_signup_ms: np.ndarray
    user_activity: np.ndarray
    user_price_sens: np.ndarray
    user_device: np.ndarray
    theta: np.ndarray
    drift_day: np.ndarray

    def log_normalizer(self, users: np.ndarray | None = None) -> np.ndarray:
        """``logsumexp(theta)`` of ``users`` (default all): ``theta - it`` is the log interest."""
        theta = self.theta if users is None else self.theta[users]
        m = theta.max(axis=1)
        return m + np.log(np.exp(theta - m[:, None]).sum(axis=1))

    def log_interest(self) -> np.ndarray:
        """Row-normalized log interest ``log softmax(theta)`` (float32, users x categories)."""
        return (self.theta - self.log_normalizer()[:, None]).astype(np.float32)

    def affinity(self, users: np.ndarray, categories: np.ndarray,
                 log_normalizer: np.ndarray | None = None) -> np.ndarray:
        """Interest relative to a uniform taste, ``log(n_categories * p)`` clipped to [-3, 3].

        Zero means "as interested as a random shopper"; this is the term the click model uses.
        Computed only for the requested (user, category) pairs, never for the whole matrix.
        """
        lse = self.log_normalizer() if log_normalizer is None else log_normalizer
        li = self.theta[users, categories] - lse[users]
        return np.clip(li + np.float32(np.log(self.theta.shape[1])), -3.0, 3.0)


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return ((x - x.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)


def _power_law_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Weights ``rank ** -exponent`` assigned to a random permutation of ``n`` slots."""
    ranks = rng.permutation(n) + 1
    return ranks.astype(np.float64) ** -exponent


def build_world(config) -> World:  # config: shoprec.generator.GeneratorConfig
    """Draw the catalogue, the users and their initial interests from ``config.seed``.

    The world depends only on the config, so tests can rebuild it to read the planted truth.
    """
    rng = np.random.default_rng([config.seed, 0])
    n_items, n_users, n_cat = config.n_items, config.n_users, config.n_categories
    start_ms = config.start_ms

    # Categories: a few big ones, a long tail; every category gets at least one item.
    cat_w = _power_law_weights(n_cat, 0.7, rng)
    category = rng.choice(n_cat, size=n_items, p=cat_w / cat_w.sum())
    anchors = rng.permutation(n_items)[:n_cat]
    category[anchors] = np.arange(n_cat)

    shop_w = _power_law_weights(config.n_shops, 0.8, rng)
    shop = rng.choice(config.n_shops, size=n_items, p=shop_w / shop_w.sum())
    shop_quality = rng.normal(0.0, 0.3, size=config.n_shops).astype(np.float32)

    cat_log_price = rng.normal(np.log(30.0), 0.8, size=n_cat)
    log_price = cat_log_price[category] + rng.normal(0.0, 0.5, size=n_items)
    price = np.maximum(np.round(np.exp(log_price), 2), 0.5)

    pop = _power_law_weights(n_items, config.popularity_exponent, rng)

    stock = np.floor(rng.lognormal(3.0, 1.2, size=n_items)).astype(np.int64)
    stock[rng.random(n_items) < 0.04] = 0

    # Launches: most items predate the window; a share launches during it (at midnight).
    launch_ms = start_ms - rng.integers(MS_PER_DAY, 730 * MS_PER_DAY, size=n_items)
    launch_day = np.full(n_items, -1, dtype=np.int64)
    if config.days > 1:
        new = rng.random(n_items) < config.new_item_share
        new[anchors] = False  # each category keeps a showable item from day 0
        launch_day[new] = rng.integers(1, config.days, size=int(new.sum()))
        launch_ms[new] = start_ms + launch_day[new] * MS_PER_DAY

    age = rng.choice(len(AGE_BAND_P), size=n_users, p=AGE_BAND_P)
    tier = rng.choice(len(CITY_TIER_P), size=n_users, p=CITY_TIER_P) + 1
    signup = start_ms - rng.integers(MS_PER_DAY, 1095 * MS_PER_DAY, size=n_users)
    activity = rng.lognormal(0.0, 0.8, size=n_users)
    activity /= activity.mean()
    sens = np.clip(0.3 + 0.25 * (tier - 1) + rng.normal(0.0, 0.15, size=n_users), 0.0, None)
    device = rng.choice(len(DEVICE_P), size=n_users, p=DEVICE_P)

    # Dirichlet tastes via normalized Gamma draws (same distribution, float32, much faster).
    taste = rng.standard_gamma(config.interest_concentration, size=(n_users, n_cat),
                               dtype=np.float32)
    np.maximum(taste, np.finfo(np.float32).tiny, out=taste)
    theta = np.log(taste)
    theta -= np.log(taste.sum(axis=1, keepdims=True))
    np.maximum(theta, np.float32(LOG_INTEREST_FLOOR), out=theta)

    return World(
        item_category=category.astype(np.int64), item_shop=shop.astype(np.int64),
        item_price=price, item_launch_ms=launch_ms.astype(np.int64), item_launch_day=launch_day,
        item_stock=stock, item_pop=pop, item_z_pop=_zscore(np.log(pop)),
        item_z_price=_zscore(np.log(price)), item_quality=shop_quality[shop],
        user_age_band=age.astype(np.int64), user_city_tier=tier.astype(np.int64),
        user_signup_ms=signup.astype(np.int64), user_activity=activity,
        user_price_sens=sens.astype(np.float32), user_device=device.astype(np.int8),
        theta=theta, drift_day=np.zeros(n_users, dtype=np.int64),
    )


def drift(world: World, sigma: float, day: int, users: np.ndarray,
          rng: np.random.Generator) -> None:
    """Bring the tastes of ``users`` (unique, active today) up to ``day``: a lazy random walk.

    Each interest logit follows a Gaussian random walk with step ``sigma`` per day, so after
    ``d`` days it has moved by ``sigma * sqrt(d)``: a model trained on old data slowly goes stale,
    as in a real shop. Users are only moved when they show up, by the accumulated
    ``sigma * sqrt(days since last move)`` (the same distribution as daily steps), which keeps the
    cost proportional to the active users rather than to all users x categories every day.
    """
    steps = day - world.drift_day[users]
    world.drift_day[users] = day
    if sigma <= 0 or not steps.any():
        return
    scale = (np.float32(sigma) * np.sqrt(steps, dtype=np.float32))[:, None]
    rows = world.theta[users] + scale * rng.standard_normal((len(users), world.theta.shape[1]),
                                                            dtype=np.float32)
    rows -= rows.max(axis=1, keepdims=True)  # softmax-invariant; keeps values bounded
    np.maximum(rows, np.float32(LOG_INTEREST_FLOOR * 3), out=rows)
    world.theta[users] = rows
