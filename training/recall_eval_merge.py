"""Applying and tuning the serving merge (:mod:`serving.merge`) offline.

The merged list that is *reported* is always produced by :func:`serving.merge.merge`, the exact
function serving runs, user by user. Tuning its policy on the validation split, however, needs
hundreds of trial merges, so :func:`fused_top_k` reimplements the fusion score with sparse
matrices (same formula; ties broken by item index instead of best rank) for the search:

1. fusion (``rrf`` with ``rrf_k`` in :data:`RRF_KS`, or ``score``) with equal weights;
2. per-source weights by coordinate ascent over :data:`WEIGHT_GRID` (two passes);
3. per-source quotas over :data:`QUOTA_GRID`, with the real merge on a user sample.

Each step keeps a change only if it strictly improves the validation ``target`` metric (e.g.
``recall@50``, or ``accuracy@100`` for the TFRS protocol).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from serving.merge import MergePolicy, merge
from training.recall_eval import Split, accuracy_metrics
from training.recall_itemcf import top_k_rows

Lists = Mapping[str, tuple[np.ndarray, np.ndarray]]
"""Per source, ``(items [U, K], scores [U, K])`` aligned with a split's users."""

RRF_KS = (5.0, 20.0, 60.0)
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
QUOTA_GRID = (0, 5, 10, 20)
TARGETS = ("recall", "hr", "ndcg", "accuracy")


def fused_top_k(lists: Lists, policy: MergePolicy, k: int, n_items: int) -> np.ndarray:
    """Top-``k`` items per user by the policy's fusion score (quotas ignored), ``[U, k]``."""
    parts = []
    n_users = next(iter(lists.values()))[0].shape[0]
    for name, (items, scores) in lists.items():
        w = float(policy.weights.get(name, 1.0))
        valid = items >= 0
        if w == 0 or not valid.any():
            continue
        if policy.fusion == "rrf":
            contrib = np.broadcast_to(1.0 / (policy.rrf_k + np.arange(1, items.shape[1] + 1)),
                                      items.shape)
        else:
            ok = valid & np.isfinite(scores)
            lo = np.where(ok, scores, np.inf).min(axis=1, keepdims=True)
            hi = np.where(ok, scores, -np.inf).max(axis=1, keepdims=True)
            span = np.where(ok.any(axis=1, keepdims=True), hi - lo, 0.0)
            contrib = np.where(span > 0, (scores - lo) / np.where(span > 0, span, 1.0), 1.0)
        rows = np.broadcast_to(np.arange(n_users)[:, None], items.shape)
        parts.append(sp.csr_matrix((w * contrib[valid], (rows[valid], items[valid])),
                                   shape=(n_users, n_items)))
    if not parts:
        return np.full((n_users, k), -1, dtype=np.int64)
    return top_k_rows(sum(parts[1:], parts[0]), k)[0]


def merged_top_k(lists: Lists, policy: MergePolicy, k: int,
                 rows: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """Run :func:`serving.merge.merge` for each user row; ``(items [U, k], source shares)``.

    ``source shares`` = share of merged slots each source contributed to (an item found by two
    sources counts for both), the attribution serving reports.
    """
    n_users = next(iter(lists.values()))[0].shape[0]
    rows = np.arange(n_users) if rows is None else rows
    out = np.full((len(rows), k), -1, dtype=np.int64)
    credit: dict[str, int] = dict.fromkeys(lists, 0)
    slots = 0
    for r_out, r in enumerate(rows):
        per_source = {name: list(zip(items[r].tolist(), scores[r].tolist(), strict=True))
                      for name, (items, scores) in lists.items()}
        cands = merge(per_source, k, policy)
        out[r_out, : len(cands)] = [c.item_id for c in cands]
        slots += len(cands)
        for c in cands:
            for s in c.sources:
                credit[s] += 1
    return out, {s: n / slots if slots else 0.0 for s, n in credit.items()}


def parse_target(target: str) -> int:
    """The cut-off of a target like ``recall@50``; raises naming the allowed metrics."""
    name, _, k = target.partition("@")
    if name not in TARGETS or not k.isdigit() or int(k) < 1:
        raise ValueError(f"target must look like '<{'|'.join(TARGETS)}>@<K>', got {target!r}")
    return int(k)


def target_score(recs: np.ndarray, relevant: list[np.ndarray], n_items: int,
                 target: str) -> float:
    """The ``target`` metric (e.g. ``recall@50``) of ranked lists against held-out items."""
    return accuracy_metrics(recs, relevant, n_items, (parse_target(target),))[target]


def _score(recs: np.ndarray, split: Split, rows: np.ndarray, target: str) -> float:
    return target_score(recs, [split.relevant[r] for r in rows], split.train.n_items, target)


def tune_policy(lists: Lists, split: Split, *, target: str = "recall@50", k: int = 100,
                max_users: int = 8000, quota_users: int = 1000,
                seed: int = 42) -> tuple[MergePolicy, list[dict[str, object]]]:
    """Search a merge policy maximising the validation ``target`` (module docstring).

    Args:
        lists: Validation lists per source, aligned with ``split.users``.
        split: The validation split.
        target: Metric optimised, ``<recall|hr|ndcg|accuracy>@<K>`` with ``K <= k``.
        k: Merged list length.
        max_users: Users sampled (seeded) for the fusion and weight search.
        quota_users: Users sampled for the quota search (the real merge is pure Python).
        seed: Sampling seed.

    Returns:
        ``(policy, trail)``: the chosen policy and every accepted step with its score.
    """
    if parse_target(target) > k:
        raise ValueError(f"target {target!r} needs lists longer than k={k}")
    rng = np.random.default_rng(seed)
    n_users = len(split.users)
    rows = np.sort(rng.permutation(n_users)[:max_users])
    sub = {s: (i[rows], v[rows]) for s, (i, v) in lists.items()}
    n_items = split.train.n_items
    names = sorted(lists)

    def fused_score(p: MergePolicy) -> float:
        return _score(fused_top_k(sub, p, k, n_items), split, rows, target)

    trail: list[dict[str, object]] = []
    candidates = [MergePolicy(fusion="rrf", rrf_k=r, priority=tuple(names)) for r in RRF_KS]
    candidates.append(MergePolicy(fusion="score", priority=tuple(names)))
    scored = [(fused_score(p), -i, p) for i, p in enumerate(candidates)]
    best_score, _, policy = max(scored, key=lambda t: (t[0], t[1]))
    trail.append({"step": f"fusion={policy.fusion} rrf_k={policy.rrf_k}", "score": best_score})
    weights = dict.fromkeys(names, 1.0)
    for _ in range(2):
        for name in names:
            for w in WEIGHT_GRID:
                if w == weights[name]:
                    continue
                trial = replace(policy, weights={**weights, name: w})
                score = fused_score(trial)
                if score > best_score:
                    best_score, weights, policy = score, dict(trial.weights), trial
                    trail.append({"step": f"weight {name}={w}", "score": score})
    q_rows = rows[np.sort(rng.permutation(len(rows))[:quota_users])]
    q_lists = {s: (i[q_rows], v[q_rows]) for s, (i, v) in lists.items()}
    base = _score(merged_top_k(q_lists, policy, k)[0], split, q_rows, target)
    trail.append({"step": "quota search baseline (real merge, sample)", "score": base})
    quotas: dict[str, int] = {}
    for name in names:
        for q in QUOTA_GRID[1:]:
            trial = replace(policy, quotas={**quotas, name: q})
            if sum(trial.quotas.values()) > k:
                continue
            score = _score(merged_top_k(q_lists, trial, k)[0], split, q_rows, target)
            if score > base:
                base, quotas, policy = score, dict(trial.quotas), trial
                trail.append({"step": f"quota {name}={q}", "score": score})
    return policy, trail
