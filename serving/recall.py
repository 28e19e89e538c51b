"""Two-tower recall against the FAISS index for single-vector and multi-interest user towers.

A single-vector user tower emits ``[1, D]``; a multi-interest tower (``training.multi_interest``)
emits ``[1, K, D]``, one vector per interest, and an item's score is its best interest's inner
product. :func:`search_interests` serves both: all ``K`` vectors go to FAISS in one call, the
``K`` lists are united keeping each item's best score, and the union is cut to ``n``. Whenever
each interest's own top-``n`` is exact, the result equals exact max-over-interests top-``n`` (an
item in the true top-``n`` is in the top-``n`` of the interest that scores it highest).

Kept free of the training package (the bento ships ``serving/`` and ``shoprec/`` only).
"""

from __future__ import annotations

import numpy as np


def interest_queries(embedding: np.ndarray) -> np.ndarray:
    """The ``[K, D]`` float32 query rows of one user's tower output.

    Accepts ``[D]``, ``[1, D]`` (``K = 1``, a single-vector tower) or ``[1, K, D]``.

    Raises:
        ValueError: for any other shape (e.g. several users at once).
    """
    emb = np.asarray(embedding, dtype=np.float32)
    if emb.ndim == 1:
        emb = emb[None, :]
    if emb.ndim == 3 and emb.shape[0] == 1:
        emb = emb[0]
    if emb.ndim != 2 or emb.shape[0] < 1:
        raise ValueError(f"one user's embedding must be [D], [1, D] or [1, K, D], got shape "
                         f"{np.shape(embedding)}")
    return np.ascontiguousarray(emb)


def search_interests(index: object, item_ids: np.ndarray, embedding: np.ndarray,
                     n: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` distinct ``(item ids, scores)`` for one user, best first (module docstring).

    Ties keep FAISS' order of the first interest that found the item. Padding rows (``-1``)
    and repeated catalogue ids are dropped.

    Raises:
        ValueError: for an embedding shape :func:`interest_queries` rejects, or a width that
            differs from the index's.
    """
    queries = interest_queries(embedding)
    if queries.shape[1] != index.d:  # type: ignore[attr-defined]
        raise ValueError(f"user embedding is {queries.shape[1]}-d but the index holds "
                         f"{index.d}-d vectors")  # type: ignore[attr-defined]
    n = min(int(n), index.ntotal)  # type: ignore[attr-defined]
    if n <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    sims, rows = index.search(queries, n)  # type: ignore[attr-defined]
    sims, rows = sims.reshape(-1), rows.reshape(-1)
    keep = rows >= 0  # FAISS pads with -1 when it finds fewer than n
    ids, sims = np.asarray(item_ids)[rows[keep]], sims[keep]
    order = np.argsort(-sims, kind="stable")  # best first; stable keeps FAISS order on ties
    ids, sims = ids[order], sims[order]
    _, first = np.unique(ids, return_index=True)  # best occurrence of each item
    first = np.sort(first)[:n]
    return ids[first], sims[first]
