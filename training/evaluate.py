"""Offline evaluation: retrieval Recall/HR@K through the real index, ranker AUC/logloss/GAUC.

Retrieval is measured the way serving retrieves (user-tower embedding → FAISS top-K over the
whole catalogue), not with in-batch metrics, so the number reflects what users would see.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from training.index import search


def heldout_queries(val_df: pd.DataFrame, user_col: str = "user_id", item_col: str = "item_id",
                    ts_col: str = "event_ts") -> tuple[pd.DataFrame, list[set[int]]]:
    """One query row per held-out user and the set of items they interacted with.

    The query row is the user's earliest validation row, i.e. the user features as they were
    when the held-out period began (what serving would have used to recommend).

    Returns:
        ``(query_rows, relevant)``: one row per user (sorted by user id) and, aligned with it,
        the set of item ids that user interacted with in the validation period.
    """
    ordered = val_df.sort_values([user_col, ts_col], kind="stable")
    queries = ordered.drop_duplicates(user_col, keep="first").reset_index(drop=True)
    items = ordered.groupby(user_col)[item_col].agg(lambda s: set(int(v) for v in s))
    relevant = [items[u] for u in queries[user_col]]
    return queries, relevant


def retrieval_metrics(query_embeddings: np.ndarray, relevant: Sequence[set[int]], index: object,
                      item_ids: np.ndarray, ks: Sequence[int] = (10, 50, 100)) -> dict[str, float]:
    """Recall@K and HitRate@K of top-K index search against held-out positives.

    ``recall@K`` = mean over users of ``|topK ∩ relevant| / |relevant|``; ``hr@K`` = share of
    users with at least one relevant item in the top K. Items seen in training are not removed
    (repeat purchases/clicks are legitimate recommendations in e-commerce).

    Args:
        query_embeddings: ``[U, D]`` user-tower embeddings, aligned with ``relevant``.
        relevant: Per user, the set of held-out item ids.
        index: FAISS index from :func:`training.index.build_index`.
        item_ids: Item id per index row.
        ks: Cut-offs.

    Returns:
        ``{"recall@10": ..., "hr@10": ..., ...}``; all 0.0 when there are no queries.
    """
    if len(relevant) != len(query_embeddings):
        raise ValueError("query_embeddings and relevant must be aligned")
    out: dict[str, float] = {}
    if len(relevant) == 0:
        return {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "hr")}
    _, top = search(index, item_ids, query_embeddings, max(ks))
    for k in ks:
        hits = np.array([len(rel.intersection(row[:k].tolist())) for rel, row in
                         zip(relevant, top, strict=True)], dtype=np.float64)
        sizes = np.array([len(rel) for rel in relevant], dtype=np.float64)
        out[f"recall@{k}"] = float(np.mean(hits / sizes))
        out[f"hr@{k}"] = float(np.mean(hits > 0))
    return out


def ranker_metrics(labels: np.ndarray, scores: np.ndarray,
                   groups: np.ndarray | None = None) -> dict[str, float]:
    """AUC, log loss and (if ``groups`` given) impression-weighted per-user GAUC.

    GAUC averages AUC within each user (weighted by their row count), skipping users whose
    rows are all one class; it measures ranking *within* a user's list, which is what the
    ranker is used for, while global AUC also rewards separating active from inactive users.

    Returns:
        ``{"auc", "logloss"[, "gauc"]}``; ``auc`` is NaN when only one class is present.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(labels).astype(np.int64)
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
    two_classes = len(np.unique(y)) == 2
    out = {"auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
           "logloss": float(log_loss(y, p, labels=[0, 1])) if len(y) else float("nan")}
    if groups is not None:
        frame = pd.DataFrame({"g": np.asarray(groups), "y": y, "p": p})
        num = den = 0.0
        for _, part in frame.groupby("g", sort=False):
            if part["y"].nunique() == 2:
                num += len(part) * roc_auc_score(part["y"], part["p"])
                den += len(part)
        out["gauc"] = float(num / den) if den else float("nan")
    return out
