"""Item-CF (cosine) recall and the sparse machinery every item-to-item source shares.

An item-to-item source (item-CF, swing, graph embedding) boils down to an :class:`ItemNeighbours`
matrix: for each item, its top-N similar items with a score. Recommending for a user is then one
sparse product, ``history_weights @ neighbours`` — each candidate's score is the sum of its
similarities to the items the user recently interacted with — followed by a per-row top-k.
Keeping that in one place means every source is evaluated and served the same way.

Item-CF cosine is the classic baseline swing is measured against::

    sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| * |U_j|)

where ``U_i`` is the set of users who interacted with item ``i`` (binary, repeats collapsed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.recall_datasets import Interactions


def interaction_matrix(data: Interactions, *, max_items_per_user: int | None = None,
                       max_users_per_item: int | None = None) -> sp.csr_matrix:
    """Binary users × items CSR matrix, optionally capped, deterministically.

    Caps bound the cost of co-occurrence counting (which grows with the square of list lengths):
    each user keeps their ``max_items_per_user`` most recent distinct items, then each item keeps
    its ``max_users_per_item`` most recent users (ties by user index). The most recent behaviour is
    kept because it is what the next interactions resemble.

    Args:
        data: Interactions sorted by (user, ts).
        max_items_per_user: Cap per user (``None`` = no cap).
        max_users_per_item: Cap per item (``None`` = no cap).
    """
    user, item, ts = data.user, data.item, data.ts
    # Last occurrence of each (user, item): data is sorted by (user, ts), so keep the last.
    key = user * data.n_items + item
    _, last_rev = np.unique(key[::-1], return_index=True)
    keep = np.sort(len(key) - 1 - last_rev)
    user, item, ts = user[keep], item[keep], ts[keep]
    if max_items_per_user is not None:
        rank = _rank_from_end(user, np.lexsort((np.arange(len(user)), ts, user)))
        mask = rank < max_items_per_user
        user, item, ts = user[mask], item[mask], ts[mask]
    if max_users_per_item is not None:
        rank = _rank_from_end(item, np.lexsort((-user, ts, item)))
        mask = rank < max_users_per_item
        user, item = user[mask], item[mask]
    values = np.ones(len(user), dtype=np.float64)
    return sp.csr_matrix((values, (user, item)), shape=(data.n_users, data.n_items))


def _rank_from_end(group: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per element, how many later elements its group has under ``order`` (0 = the last)."""
    g = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    sizes = np.diff(np.r_[starts, len(g)])
    pos = np.arange(len(g)) - np.repeat(starts, sizes)
    rank = np.empty(len(g), dtype=np.int64)
    rank[order] = np.repeat(sizes, sizes) - 1 - pos
    return rank


def top_k_rows(matrix: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` columns per row of a sparse score matrix, best first.

    Ties are broken by the lower column index, so results never depend on storage order. Scores
    of one row are compared after rounding to 2**-30 of the row's largest magnitude: sums of the
    same terms in another order differ in the last bits, and that noise must not decide the order.
    Only stored entries are candidates; rows with fewer than ``k`` get column ``-1`` and score
    ``-inf`` in the free slots.

    Returns:
        ``(columns [R, k] int64, scores [R, k] float64)``.
    """
    m = matrix.tocsr()
    m.sum_duplicates()  # also sorts the column indices within each row
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    # One stable sort on an int64 key "row, descending rounded score" is ~10x faster than a
    # lexsort on (row, score, column), and keeps ties in column order.
    nonempty = counts > 0
    hi = np.zeros(m.shape[0])
    scale = np.ones(m.shape[0])
    starts = m.indptr[:-1][nonempty]
    hi[nonempty] = np.maximum.reduceat(m.data, starts)
    lo = np.minimum.reduceat(m.data, starts) if len(starts) else np.zeros(0)
    scale[nonempty] = np.maximum(np.maximum(np.abs(hi[nonempty]), np.abs(lo)), 1e-300)
    steps = np.rint((hi[rows] - m.data) / (2.0 * scale[rows]) * 2.0**30).astype(np.int64)
    key = rows.astype(np.int64) * (2**31 + 1) + steps
    order = np.argsort(key, kind="stable")
    rank = np.arange(len(order)) - np.repeat(m.indptr[:-1], np.diff(m.indptr))
    keep = order[rank < k]
    kept_rank = rank[rank < k]
    cols = np.full((m.shape[0], k), -1, dtype=np.int64)
    scores = np.full((m.shape[0], k), -np.inf)
    cols[rows[keep], kept_rank] = m.indices[keep]
    scores[rows[keep], kept_rank] = m.data[keep]
    return cols, scores


def prune_top_n(sim: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the ``n`` highest positive entries of each row (ties: lower column index)."""
    sim = sim.tocsr()
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    sim.data[sim.data < 0] = 0.0
    sim.eliminate_zeros()
    cols, scores = top_k_rows(sim, n)
    rows = np.repeat(np.arange(sim.shape[0]), n).reshape(sim.shape[0], n)
    ok = cols >= 0
    return sp.csr_matrix((scores[ok], (rows[ok], cols[ok])), shape=sim.shape)


def history_weights(data: Interactions, users: np.ndarray, *, max_len: int = 50,
                    decay: float = 1.0) -> sp.csr_matrix:
    """Users × items weights of each listed user's recent history (rows follow ``users``).

    The most recent distinct item weighs 1, the one before ``decay``, then ``decay**2``...; only
    the ``max_len`` most recent distinct items count. ``decay=1`` weighs the history uniformly.
    """
    users = np.asarray(users, dtype=np.int64)
    row_of = np.full(data.n_users, -1, dtype=np.int64)
    row_of[users] = np.arange(len(users))
    sel = row_of[data.user] >= 0
    user, item = data.user[sel], data.item[sel]
    # Distinct items per user, ranked by their last occurrence (data is time-sorted per user).
    key = user * data.n_items + item
    _, last_rev = np.unique(key[::-1], return_index=True)
    keep = np.sort(len(key) - 1 - last_rev)
    user, item = user[keep], item[keep]
    rank = _rank_from_end(user, np.arange(len(user)))
    mask = rank < max_len
    weights = np.power(float(decay), rank[mask].astype(np.float64))
    return sp.csr_matrix((weights, (row_of[user[mask]], item[mask])),
                         shape=(len(users), data.n_items))


def seen_matrix(data: Interactions, users: np.ndarray) -> sp.csr_matrix:
    """Users × items indicator (rows follow ``users``) of everything each user interacted with."""
    return (history_weights(data, users, max_len=np.iinfo(np.int64).max) > 0).astype(np.float64)


@dataclass
class ItemNeighbours:
    """Top-N similar items per item, and user recommendations derived from them.

    Attributes:
        name: Source name used in reports and merge attribution.
        sim: Items × items CSR; row ``i`` holds the top-N neighbours of ``i`` (no self-loops).
        history_len: Recent distinct items of a user that vote for candidates.
        decay: Per-step recency decay of those votes (1 = uniform).
        fit_seconds: Wall time of the similarity computation.
    """

    name: str
    sim: sp.csr_matrix
    history_len: int = 50
    decay: float = 1.0
    fit_seconds: float = 0.0

    def similar(self, item: int, n: int = 10) -> list[tuple[int, float]]:
        """The ``n`` most similar items to dense item ``item``: ``[(item, score)]``, best first."""
        cols, scores = top_k_rows(self.sim[item], n)
        return [(int(c), float(s)) for c, s in zip(cols[0], scores[0], strict=True) if c >= 0]

    def recommend(self, train: Interactions, users: np.ndarray, k: int, *,
                  exclude_history: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user: ``score(j) = Σ_{i in history} w_i * sim(i, j)``.

        Args:
            train: Interactions whose histories are used.
            users: Dense user indices to recommend for.
            k: List length; users with few neighbours get ``-1`` padding.
            exclude_history: Drop items the user already interacted with.

        Returns:
            ``(items [U, k], scores [U, k])``, best first (ties: lower item index).
        """
        hist = history_weights(train, users, max_len=self.history_len, decay=self.decay)
        scores = (hist @ self.sim).tocsr()
        if exclude_history:
            scores = scores - scores.multiply(seen_matrix(train, users) > 0)
            scores.eliminate_zeros()
        return top_k_rows(scores, k)


def itemcf_similarity(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Cosine similarity of the item columns of a binary users × items matrix (diagonal kept)."""
    binary = (matrix > 0).astype(np.float64)
    co = (binary.T @ binary).tocsr()
    norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return (sp.diags(inv) @ co @ sp.diags(inv)).tocsr()


def fit_itemcf(train: Interactions, *, top_n: int = 200, history_len: int = 50,
               decay: float = 1.0, max_items_per_user: int | None = 500,
               max_users_per_item: int | None = None) -> ItemNeighbours:
    """Item-CF cosine neighbours (top ``top_n`` per item) from ``train``.

    Args:
        train: Training interactions.
        top_n: Neighbours kept per item.
        history_len: See :class:`ItemNeighbours`.
        decay: See :class:`ItemNeighbours`.
        max_items_per_user: Cap of :func:`interaction_matrix` (cost grows with its square).
        max_users_per_item: Cap of :func:`interaction_matrix`.
    """
    start = time.perf_counter()
    matrix = interaction_matrix(train, max_items_per_user=max_items_per_user,
                                max_users_per_item=max_users_per_item)
    sim = prune_top_n(itemcf_similarity(matrix), top_n)
    return ItemNeighbours("itemcf", sim, history_len, decay, time.perf_counter() - start)
