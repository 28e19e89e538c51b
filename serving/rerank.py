"""Business re-ranking of a scored candidate list: filters, boosts and diversity.

The ranker predicts clicks; a shop also needs rules the model cannot learn: never show what is
out of stock or what the user just bought, give new items and promoted ones a push, and do not
fill the page with one category. These rules are pure functions over aligned NumPy arrays (one
row per candidate), configured by :class:`RerankConfig` (loaded from ``serving/config/rerank.yaml``
by :mod:`serving.config`), so every rule is tested by hand without a model or a store.

Order of application (:func:`rerank`):

1. **Filters** drop candidates: the request's exclude list and category filter, out-of-stock
   items (``stock < min_stock``) and items the user already bought. An attribute that is unknown
   (NaN) never drops an item: a rule acts only on what is known.
2. **Boosts** multiply the score: freshness ``1 + boost * (1 - age / max_age_days)`` for items
   younger than ``max_age_days``, times the largest multiplier of the promotions that name the
   item or its category (promotions do not compound). Scores are ranker click probabilities or
   recall fusion scores, both >= 0, so a multiplier > 1 always moves an item up.
3. **Order** by boosted score (stable: ties keep the incoming ranker/recall order).
4. **Diversity** reorders: ``category_cap`` keeps the order but defers every item beyond the
   first ``cap`` of its category to after all the others (so a short list still fills ``k``);
   ``mmr`` is maximal marginal relevance over a similarity matrix (see :func:`mmr_order`).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

DIVERSITY = ("none", "category_cap", "mmr")


@dataclass(frozen=True)
class Promotion:
    """Boost items or whole categories by ``multiplier`` (> 0; < 1 demotes)."""

    multiplier: float
    items: frozenset[int] = frozenset()
    categories: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if not (isinstance(self.multiplier, int | float) and math.isfinite(self.multiplier)
                and self.multiplier > 0):
            raise ValueError(f"promotion multiplier must be a finite number > 0, "
                             f"got {self.multiplier!r}")
        if not self.items and not self.categories:
            raise ValueError("a promotion must name items or categories")


@dataclass(frozen=True)
class RerankConfig:
    """Re-ranking rules. The defaults are neutral (nothing filtered, boosted or reordered).

    Attributes:
        out_of_stock: Drop items whose stock is known and below ``min_stock``.
        min_stock: Smallest stock that counts as available.
        already_purchased: Drop items the user bought within ``purchase_window_days``.
        purchase_window_days: How far back a purchase hides an item.
        freshness_boost: Extra multiplier for a brand-new item (0 = off).
        freshness_max_age_days: Age at which the freshness boost reaches 0.
        promotions: Item/category multipliers.
        diversity: ``none``, ``category_cap`` or ``mmr``.
        category_cap: Items per category before the rest of that category is deferred.
        mmr_lambda: MMR trade-off: 1 = relevance only, 0 = diversity only.
    """

    out_of_stock: bool = False
    min_stock: int = 1
    already_purchased: bool = False
    purchase_window_days: int = 30
    freshness_boost: float = 0.0
    freshness_max_age_days: float = 14.0
    promotions: tuple[Promotion, ...] = ()
    diversity: str = "none"
    category_cap: int = 3
    mmr_lambda: float = 0.7

    def __post_init__(self) -> None:
        problems = []
        if self.diversity not in DIVERSITY:
            problems.append(f"diversity must be one of {DIVERSITY}, got {self.diversity!r}")
        if self.min_stock < 0 or self.purchase_window_days < 1 or self.category_cap < 1:
            problems.append("min_stock must be >= 0, purchase_window_days and category_cap >= 1")
        if not (math.isfinite(self.freshness_boost) and self.freshness_boost >= 0):
            problems.append(f"freshness_boost must be >= 0, got {self.freshness_boost}")
        if not self.freshness_max_age_days > 0:
            problems.append(f"freshness_max_age_days must be > 0, got "
                            f"{self.freshness_max_age_days}")
        if not 0.0 <= self.mmr_lambda <= 1.0:
            problems.append(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if problems:
            raise ValueError("invalid re-ranking config: " + "; ".join(problems))


@dataclass
class Slate:
    """Candidates to re-rank, as aligned arrays (NaN = attribute unknown).

    Attributes:
        item_ids: ``int64`` item ids, in ranker order (best first).
        scores: Ranker (or recall) scores, >= 0.
        category: Category id per item; ``no_category`` and NaN mean "none".
        stock: Units in stock.
        age_days: Days since launch.
        no_category: The contract default of the category feature (an item without one).
    """

    item_ids: np.ndarray
    scores: np.ndarray
    category: np.ndarray
    stock: np.ndarray
    age_days: np.ndarray
    no_category: float = -1.0
    dropped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        for name in ("scores", "category", "stock", "age_days"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,):
                raise ValueError(f"slate column {name} has shape {arr.shape}, expected ({n},)")
            setattr(self, name, arr)
        self.item_ids = np.asarray(self.item_ids, dtype=np.int64)


def keep_mask(slate: Slate, config: RerankConfig, *, purchased: Collection[int] = (),
              exclude: Collection[int] = (), categories: Collection[int] | None = None
              ) -> tuple[np.ndarray, dict[str, int]]:
    """Which candidates survive the filters, and how many each filter dropped.

    Filters apply in this order and each item is counted once, under the first filter that
    dropped it: ``exclude``, ``category``, ``out_of_stock``, ``purchased``.
    """
    ids = slate.item_ids
    keep = np.ones(len(ids), dtype=bool)
    dropped: dict[str, int] = {}

    def apply(name: str, drop: np.ndarray) -> None:
        hit = keep & drop
        if hit.any():
            dropped[name] = int(hit.sum())
        keep[hit] = False

    if exclude:
        apply("exclude", np.isin(ids, np.fromiter(exclude, dtype=np.int64)))
    if categories is not None:
        wanted = np.fromiter(categories, dtype=np.float64)
        apply("category", ~np.isin(slate.category, wanted))  # unknown category: not in it
    if config.out_of_stock:
        apply("out_of_stock", ~np.isnan(slate.stock) & (slate.stock < config.min_stock))
    if config.already_purchased and purchased:
        apply("purchased", np.isin(ids, np.fromiter(purchased, dtype=np.int64)))
    return keep, dropped


def multipliers(slate: Slate, config: RerankConfig) -> np.ndarray:
    """Freshness times promotion multiplier per candidate (1.0 where no rule applies)."""
    out = np.ones(len(slate.item_ids), dtype=np.float64)
    if config.freshness_boost > 0:
        age = slate.age_days
        fresh = ~np.isnan(age) & (age >= 0) & (age < config.freshness_max_age_days)
        out[fresh] *= 1.0 + config.freshness_boost * (
            1.0 - age[fresh] / config.freshness_max_age_days)
    if config.promotions:
        promo = np.full(len(out), np.nan)  # NaN: no promotion names the item
        for p in config.promotions:
            hit = np.zeros(len(out), dtype=bool)
            if p.items:
                hit |= np.isin(slate.item_ids, np.fromiter(p.items, dtype=np.int64))
            if p.categories:
                hit |= np.isin(slate.category, np.fromiter(p.categories, dtype=np.float64))
            promo[hit] = np.fmax(promo[hit], p.multiplier)  # the largest multiplier wins
        promo[np.isnan(promo)] = 1.0
        out *= promo
    return out


def category_cap_order(order: np.ndarray, category: np.ndarray, cap: int,
                       no_category: float = -1.0) -> np.ndarray:
    """Keep ``order`` but defer items beyond the first ``cap`` of their category to the end.

    Items without a category (NaN or ``no_category``) are never capped. Deferred items keep
    their relative order.
    """
    seen: dict[float, int] = {}
    head, tail = [], []
    for i in order:
        cat = category[i]
        if np.isnan(cat) or cat == no_category:
            head.append(i)
            continue
        seen[cat] = seen.get(cat, 0) + 1
        (head if seen[cat] <= cap else tail).append(i)
    return np.asarray(head + tail, dtype=np.int64)


def mmr_order(relevance: np.ndarray, similarity: np.ndarray, lam: float) -> np.ndarray:
    """Maximal marginal relevance order of all candidates.

    Greedy: pick ``argmax lam * rel_i - (1 - lam) * max_{j picked} sim_ij`` (the first pick is
    the most relevant). ``rel`` is ``relevance`` min-max scaled to ``[0, 1]`` so it lives on the
    same scale as a cosine or 0/1 similarity. Ties go to the earlier candidate.

    Args:
        relevance: Score per candidate, in incoming order.
        similarity: Symmetric ``[n, n]`` similarity matrix.
        lam: Relevance weight in ``[0, 1]``.
    """
    n = len(relevance)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    rel = np.asarray(relevance, dtype=np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones(n)
    max_sim = np.full(n, -np.inf)
    chosen = np.zeros(n, dtype=bool)
    out = []
    for _ in range(n):
        penalty = np.where(np.isinf(max_sim), 0.0, max_sim)
        gain = np.where(chosen, -np.inf, lam * rel - (1.0 - lam) * penalty)
        best = int(np.argmax(gain))
        out.append(best)
        chosen[best] = True
        max_sim = np.maximum(max_sim, similarity[best])
    return np.asarray(out, dtype=np.int64)


def category_similarity(category: np.ndarray, no_category: float = -1.0) -> np.ndarray:
    """1 where two items share a known category, else 0 (diagonal 1): MMR without embeddings."""
    known = ~np.isnan(category) & (category != no_category)
    same = (category[:, None] == category[None, :]) & known[:, None] & known[None, :]
    sim = same.astype(np.float64)
    np.fill_diagonal(sim, 1.0)
    return sim


def rerank(slate: Slate, config: RerankConfig, *, purchased: Collection[int] = (),
           exclude: Collection[int] = (), categories: Collection[int] | None = None,
           similarity: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply filters, boosts and diversity; return ``(row indices, boosted scores)``.

    The indices point into the slate, best first; the scores are aligned with them. Counts of
    dropped items per filter are left in ``slate.dropped``.

    Args:
        slate: Candidates in ranker order.
        config: The rules.
        purchased: Items the user bought recently.
        exclude: Items the caller does not want (already in the cart, on screen, ...).
        categories: If given, only items of these categories are kept.
        similarity: ``[n, n]`` item similarity for MMR (default: same-category similarity).
    """
    keep, slate.dropped = keep_mask(slate, config, purchased=purchased, exclude=exclude,
                                    categories=categories)
    rows = np.flatnonzero(keep)
    boosted = slate.scores[rows] * multipliers(slate, config)[rows]
    local = np.argsort(-boosted, kind="stable")
    if config.diversity == "category_cap":
        local = category_cap_order(local, slate.category[rows], config.category_cap,
                                   slate.no_category)
    elif config.diversity == "mmr" and len(local):
        sim = category_similarity(slate.category[rows], slate.no_category) \
            if similarity is None else np.asarray(similarity)[np.ix_(rows, rows)]
        sub = mmr_order(boosted[local], sim[np.ix_(local, local)], config.mmr_lambda)
        local = local[sub]
    return rows[local], boosted[local]
