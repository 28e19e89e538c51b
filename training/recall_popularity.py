"""Popularity recall: global, per-category and trending. The cold-start fallback of the merge.

A user with no history gets nothing from the item-to-item sources; popularity always has an
answer. Three flavours:

* **global** — items by the number of distinct users who interacted with them;
* **category** — ``score(u, j) = share of u's history in category(j) * popularity(j)``: the popular
  items of the categories the user engages with, in proportion to that engagement (users without
  history, or whose categories run out, are filled with global popularity);
* **trending** — items by distinct users within the last ``window`` seconds of the training data
  (ties: all-time popularity). Needs wall-clock timestamps.

Popularity counts distinct users, not events, so one user repeating an item cannot make it
"popular". Ties are broken by the lower item index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.recall_datasets import Interactions
from training.recall_itemcf import seen_matrix, top_k_rows

MODES = ("global", "category", "trending")
DAY = 86_400


def item_popularity(data: Interactions, since: int | None = None) -> np.ndarray:
    """Distinct users per dense item (only interactions with ``ts >= since`` when given)."""
    mask = np.ones(len(data), dtype=bool) if since is None else data.ts >= since
    key = np.unique(data.user[mask] * data.n_items + data.item[mask])
    return np.bincount(key % data.n_items, minlength=data.n_items).astype(np.float64)


@dataclass
class Popularity:
    """A fitted popularity source.

    Attributes:
        name: Source name (``popularity``, ``pop_category``, ``trending``).
        mode: One of :data:`MODES`.
        scores: Ranking score per dense item (global or trending).
        fallback: Global popularity per dense item, used to fill short lists.
        category: Category per dense item (``-1`` unknown); used by mode ``category``.
        fit_seconds: Wall time of fitting.
    """

    name: str
    mode: str
    scores: np.ndarray
    fallback: np.ndarray
    category: np.ndarray
    fit_seconds: float = 0.0

    def ranking(self) -> np.ndarray:
        """Dense item indices by descending score (ties: lower index first)."""
        return np.lexsort((np.arange(len(self.scores)), -self.scores))

    def recommend(self, train: Interactions, users: np.ndarray, k: int, *,
                  exclude_history: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user, ``(items [U, k], scores [U, k])``, best first.

        Global and trending lists are the same for everybody (minus each user's history when
        ``exclude_history``); category lists follow each user's category mix.
        """
        users = np.asarray(users, dtype=np.int64)
        seen = seen_matrix(train, users) if exclude_history else None
        if self.mode == "category":
            return self._by_category(train, users, k, seen)
        return _global_top_k(self.scores, users, k, seen)

    def _by_category(self, train: Interactions, users: np.ndarray, k: int,
                     seen: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
        known = self.category >= 0
        n_cat = int(self.category.max()) + 1 if known.any() else 1
        # Category mix of each user: share of their distinct history items per category.
        hist = seen_matrix(train, users)
        to_cat = sp.csr_matrix((np.ones(known.sum()), (np.flatnonzero(known),
                                                       self.category[known])),
                               shape=(len(self.category), n_cat))
        mix = hist @ to_cat
        totals = np.asarray(mix.sum(axis=1)).ravel()
        mix = sp.diags(np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)) @ mix
        # Each category keeps only its top items that could still make a list (k + history).
        depth = k + int(np.diff(hist.indptr).max(initial=0))
        cat_items = _top_per_category(self.fallback, self.category, depth, n_cat)
        scores = (mix @ cat_items).tocsr()
        if seen is not None:
            scores = scores - scores.multiply(seen > 0)
            scores.eliminate_zeros()
        items, vals = top_k_rows(scores, k)
        fill, fill_vals = _global_top_k(self.fallback, users, k, seen)
        return _fill(items, vals, fill, fill_vals)


def _top_per_category(pop: np.ndarray, category: np.ndarray, depth: int,
                      n_cat: int) -> sp.csr_matrix:
    """Categories × items matrix of popularity, each category keeping its ``depth`` top items."""
    idx = np.flatnonzero((category >= 0) & (pop > 0))
    order = idx[np.lexsort((idx, -pop[idx], category[idx]))]
    cats = category[order]
    starts = np.r_[0, np.flatnonzero(np.diff(cats)) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = order[rank < depth]
    return sp.csr_matrix((pop[keep], (category[keep], keep)), shape=(n_cat, len(pop)))


def _global_top_k(scores: np.ndarray, users: np.ndarray, k: int,
                  seen: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((np.arange(len(scores)), -scores))
    order = order[scores[order] > 0]
    if seen is None:
        top = order[:k]
        items = np.tile(np.r_[top, np.full(k - len(top), -1)], (len(users), 1))
    else:
        depth = min(len(order), k + int(np.diff(seen.indptr).max(initial=0)))
        cand = order[:depth]
        blocked = seen[:, cand].toarray() > 0
        # Stable sort puts unblocked candidates first, keeping their popularity order.
        pick = np.argsort(blocked, axis=1, kind="stable")[:, :k]
        items = cand[pick]
        ok = ~np.take_along_axis(blocked, pick, axis=1)
        items = np.where(ok, items, -1)
        if items.shape[1] < k:
            items = np.hstack([items, np.full((len(users), k - items.shape[1]), -1)])
    vals = np.where(items >= 0, scores[np.clip(items, 0, None)], -np.inf)
    return items.astype(np.int64), vals


def _fill(items: np.ndarray, vals: np.ndarray, fill: np.ndarray,
          fill_vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Append ``fill`` items (not already listed) after each row's own items, up to its width.

    Filled scores are shifted below the row's own lowest score so the list stays sorted.
    """
    k = items.shape[1]
    out_i, out_v = items.copy(), vals.copy()
    for r in np.flatnonzero((items < 0).any(axis=1)):
        own = items[r][items[r] >= 0]
        floor = vals[r][: len(own)].min() if len(own) else 0.0
        extra = [(i, v) for i, v in zip(fill[r], fill_vals[r], strict=True)
                 if i >= 0 and i not in set(own)][: k - len(own)]
        for j, (i, v) in enumerate(extra):
            out_i[r, len(own) + j] = i
            out_v[r, len(own) + j] = min(floor, 0.0) - 1.0 + v / (1.0 + abs(v))
    return out_i, out_v


def fit_popularity(train: Interactions, mode: str = "global", *,
                   window_days: float = 7.0) -> Popularity:
    """Fit one popularity flavour on ``train``.

    Args:
        train: Training interactions.
        mode: ``global``, ``category`` or ``trending``.
        window_days: Trending window, ending at the last training timestamp.

    Raises:
        ValueError: for an unknown mode, or ``trending`` on data without wall-clock time.
    """
    if mode not in MODES:
        raise ValueError(f"unknown popularity mode {mode!r}; use one of {MODES}")
    start = time.perf_counter()
    pop = item_popularity(train)
    scores = pop
    if mode == "trending":
        if not train.has_time:
            raise ValueError(f"{train.name}: trending popularity needs timestamps; this data "
                             "only has sequence positions")
        since = int(train.ts.max() - window_days * DAY)
        recent = item_popularity(train, since=since)
        # Recent users first; all-time popularity (scaled below one recent user) breaks ties.
        scores = recent + pop / (pop.max() + 1.0)
    name = {"global": "popularity", "category": "pop_category", "trending": "trending"}[mode]
    return Popularity(name, mode, scores, pop, train.item_category,
                      time.perf_counter() - start)
