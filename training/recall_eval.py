"""Recall evaluation: splits and metrics, shared by every source and by the merged list.

Splits (each returns a :class:`Split`: training interactions + held-out items per user):

* :func:`leave_last_out` — each user's last interaction is held out (the standard protocol of
  SASRec/S3-Rec on Amazon Beauty); applied twice it yields the validation split
  (second-to-last item), so merge weights are never tuned on the test targets;
* :func:`time_split` — everything after a global cutoff is held out (deployment-like);
* :func:`random_split` — a seeded random share of all interactions (the TFRS basic-retrieval
  protocol on MovieLens-100K: 80/20).

Metrics over ranked lists ``[U, K]`` (``-1`` = empty slot), for every cut-off K:

* ``recall@K`` = mean over users of ``|top-K ∩ held-out| / |held-out|``;
* ``hr@K`` = share of users with at least one held-out item in the top K;
* ``ndcg@K`` = binary-relevance DCG / ideal DCG (``min(|held-out|, K)`` hits at the top);
* ``accuracy@K`` = hits / held-out pairs over all users (pair-weighted recall; this is
  TFRS's "factorized top-K accuracy");
* ``coverage@K`` = share of the catalogue recommended to at least one user;
* ``novelty@K`` = mean ``-log2 p(i)`` of recommended items, ``p(i)`` = share of training users
  who interacted with ``i`` (at least one user, so unseen items score ``log2(n_users)``);
* ``ild@K`` = intra-list diversity: share of item pairs within a list whose categories differ
  (items with unknown category left out; lists with fewer than two known items skipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.recall_datasets import Interactions

KS = (10, 50, 100)


@dataclass(frozen=True)
class Split:
    """Training data and per-user held-out items.

    Attributes:
        name: Protocol name shown in reports.
        train: Interactions a source may learn from.
        users: Evaluated dense user indices (ascending).
        relevant: Held-out dense item indices per evaluated user (distinct, aligned).
        skipped_users: Users with held-out items but no training history (left out).
    """

    name: str
    train: Interactions
    users: np.ndarray
    relevant: list[np.ndarray]
    skipped_users: int = 0

    @property
    def n_pairs(self) -> int:
        """Held-out (user, item) pairs."""
        return int(sum(len(r) for r in self.relevant))


def _from_mask(name: str, data: Interactions, held: np.ndarray) -> Split:
    """Split ``data`` into ``~held`` (train) and per-user distinct held-out items."""
    train = data.subset(~held)
    has_train = np.bincount(train.user, minlength=data.n_users) > 0
    user, item = data.user[held], data.item[held]
    warm = has_train[user]
    skipped = len(np.unique(user[~warm]))
    keys = np.unique(user[warm] * data.n_items + item[warm])
    u, i = keys // data.n_items, keys % data.n_items
    users, starts = np.unique(u, return_index=True)
    relevant = np.split(i, starts[1:]) if len(users) else []
    return Split(name, train, users, relevant, skipped)


def leave_last_out(data: Interactions) -> Split:
    """Hold out each user's last interaction (users with a single interaction keep it)."""
    last = np.r_[np.flatnonzero(np.diff(data.user)), len(data.user) - 1] if len(data) else []
    held = np.zeros(len(data), dtype=bool)
    held[last] = True
    first = np.r_[0, np.flatnonzero(np.diff(data.user)) + 1] if len(data) else []
    held[first] = False  # a one-interaction user: nothing would be left to recommend from
    return _from_mask("leave-last-out", data, held)


def time_split(data: Interactions, holdout: float = 0.1) -> Split:
    """Hold out interactions in the last ``holdout`` share of the time span.

    Raises:
        ValueError: when ``holdout`` is not in (0, 1) or the data has no wall-clock time.
    """
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    if not data.has_time:
        raise ValueError(f"{data.name}: a time split needs timestamps, not sequence positions")
    lo, hi = int(data.ts.min()), int(data.ts.max())
    cutoff = lo + (hi - lo) * (1.0 - holdout)
    return _from_mask(f"time (last {holdout:.0%})", data, data.ts >= cutoff)


def random_split(data: Interactions, test_fraction: float = 0.2, seed: int = 42) -> Split:
    """Hold out a seeded random ``test_fraction`` of interactions (exactly, rounded down)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(len(data))
    n_train = len(data) - int(len(data) * test_fraction)
    held = np.zeros(len(data), dtype=bool)
    held[perm[n_train:]] = True
    return _from_mask(f"random {1 - test_fraction:.0%}/{test_fraction:.0%} (seed {seed})",
                      data, held)


def hit_matrix(recs: np.ndarray, relevant: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """``[U, K]`` bool: whether ``recs[u, j]`` is a held-out item of user row ``u``."""
    rows = np.repeat(np.arange(len(relevant)), [len(r) for r in relevant])
    rel_keys = rows * n_items + (np.concatenate(relevant) if len(relevant) else rows)
    rec_keys = np.arange(len(recs))[:, None] * n_items + recs
    return np.isin(rec_keys, rel_keys) & (recs >= 0)


def accuracy_metrics(recs: np.ndarray, relevant: Sequence[np.ndarray], n_items: int,
                     ks: Sequence[int] = KS) -> dict[str, float]:
    """Recall, HR, NDCG and pair-weighted accuracy at each K (see the module docstring)."""
    if len(recs) != len(relevant):
        raise ValueError(f"{len(recs)} lists for {len(relevant)} users")
    hits = hit_matrix(recs, relevant, n_items)
    sizes = np.array([len(r) for r in relevant], dtype=np.float64)
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    out: dict[str, float] = {}
    for k in ks:
        h = hits[:, :k]
        n_hit = h.sum(axis=1)
        ideal = np.cumsum(discount[:k])[np.minimum(sizes, k).astype(np.int64) - 1]
        out[f"recall@{k}"] = float(np.mean(n_hit / sizes)) if len(sizes) else 0.0
        out[f"hr@{k}"] = float(np.mean(n_hit > 0)) if len(sizes) else 0.0
        out[f"ndcg@{k}"] = float(np.mean((h * discount[:k]).sum(axis=1) / ideal)) \
            if len(sizes) else 0.0
        out[f"accuracy@{k}"] = float(n_hit.sum() / sizes.sum()) if sizes.sum() else 0.0
    return out


def beyond_accuracy(recs: np.ndarray, train: Interactions, ks: Sequence[int] = KS,
                    category: np.ndarray | None = None) -> dict[str, float]:
    """Catalogue coverage, novelty and intra-list diversity at each K."""
    category = train.item_category if category is None else category
    n_train_users = max(1, len(np.unique(train.user)))
    users_per_item = np.bincount(np.unique(train.user * train.n_items + train.item)
                                 % train.n_items, minlength=train.n_items)
    info = -np.log2(np.maximum(users_per_item, 1) / n_train_users)
    out: dict[str, float] = {}
    for k in ks:
        top = recs[:, :k]
        valid = top >= 0
        out[f"coverage@{k}"] = len(np.unique(top[valid])) / train.n_items
        out[f"novelty@{k}"] = float(info[top[valid]].mean()) if valid.any() else 0.0
        out[f"ild@{k}"] = intra_list_diversity(top, category)
    return out


def intra_list_diversity(recs: np.ndarray, category: np.ndarray) -> float:
    """Mean share of item pairs with different categories per list (NaN if none qualifies)."""
    cats = np.where(recs >= 0, category[np.clip(recs, 0, None)], -1)
    known = cats >= 0
    n = known.sum(axis=1).astype(np.float64)
    rows = np.repeat(np.arange(len(cats)), cats.shape[1])[known.ravel()]
    keys = rows * (int(category.max(initial=0)) + 1) + cats.ravel()[known.ravel()]
    uniq, counts = np.unique(keys, return_counts=True)
    same = np.zeros(len(cats))
    np.add.at(same, uniq // (int(category.max(initial=0)) + 1), counts * (counts - 1) / 2.0)
    pairs = n * (n - 1) / 2.0
    ok = pairs > 0
    return float(np.mean(1.0 - same[ok] / pairs[ok])) if ok.any() else float("nan")


def evaluate_lists(recs: np.ndarray, split: Split, ks: Sequence[int] = KS) -> dict[str, float]:
    """All metrics of ranked lists ``[U, ≥max(ks)]`` aligned with ``split.users``."""
    return {**accuracy_metrics(recs, split.relevant, split.train.n_items, ks),
            **beyond_accuracy(recs, split.train, ks)}
