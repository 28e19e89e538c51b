"""Merge candidate lists of several recall sources into one list: quotas, fusion, attribution.

Pure (NumPy only), so serving, the offline evaluation and tests run the very same code:
the function sees only ``{source: [(item_id, score), ...]}`` lists, never a model.

How a merged list is built (:func:`merge`):

1. **Fusion score.** Every distinct item gets ``Σ_s weight_s * contribution_s(item)`` over the
   sources that list it. ``fusion="rrf"`` (reciprocal-rank fusion) uses
   ``1 / (rrf_k + rank)`` with 1-based ranks: it needs no score calibration between sources whose
   scores live on different scales (similarity sums, counts, cosines). ``fusion="score"`` uses
   the source's score min-max normalised over its list to ``[0, 1]``.
2. **Quotas.** Each source ``s`` with quota ``q_s`` is guaranteed that at least ``q_s`` items it
   produced are in the result (fewer only if it produced fewer): sources are visited in priority
   order and add their best not-yet-selected items until that holds. An item chosen for one
   source also counts for every other source that listed it.
3. **Fill.** Free slots up to ``k`` go to the remaining items by fusion score.
4. **Order.** The result is sorted by fusion score. Ties break by the best rank the item had in any
   list, then by the priority of its first source, then by item id — never by dict order.

Every candidate keeps the tuple of sources that produced it (in priority order) and its rank in
each, so ``/recommend`` can say why an item was proposed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

FUSIONS = ("rrf", "score")


@dataclass(frozen=True)
class Candidate:
    """One merged candidate.

    Attributes:
        item_id: The item.
        score: Fusion score (higher is better).
        sources: Sources that listed the item, in priority order.
        ranks: 1-based rank of the item in each of ``sources`` (aligned).
    """

    item_id: int
    score: float
    sources: tuple[str, ...]
    ranks: tuple[int, ...]


@dataclass(frozen=True)
class MergePolicy:
    """How to merge; see the module docstring.

    Attributes:
        quotas: Guaranteed minimum number of items per source (missing = 0).
        weights: Fusion weight per source (missing = 1.0; 0 = attribution only).
        fusion: ``rrf`` or ``score``.
        rrf_k: Rank offset of reciprocal-rank fusion (larger = flatter).
        priority: Source order for quotas and tie-breaks; sources not named follow by name.
    """

    quotas: Mapping[str, int] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    fusion: Literal["rrf", "score"] = "rrf"
    rrf_k: float = 60.0
    priority: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; use one of {FUSIONS}")
        if not self.rrf_k >= 0:
            raise ValueError(f"rrf_k must be >= 0, got {self.rrf_k}")
        for name, q in self.quotas.items():
            if isinstance(q, bool) or not isinstance(q, int) or q < 0:
                raise ValueError(f"quota of source {name!r} must be an integer >= 0, got {q!r}")
        for name, w in self.weights.items():
            if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
                raise ValueError(f"weight of source {name!r} must be a finite number >= 0, "
                                 f"got {w!r}")
        if len(set(self.priority)) != len(self.priority):
            raise ValueError(f"priority names a source twice: {self.priority}")

    def order(self, sources: Sequence[str]) -> list[str]:
        """``sources`` in priority order: the named ones first, then the others by name."""
        rank = {s: i for i, s in enumerate(self.priority)}
        return sorted(sources, key=lambda s: (rank.get(s, len(rank)), s))


def _clean(name: str, ranked: Sequence[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The list's ``(item ids, scores)`` as arrays; entries are checked to be numbers."""
    items: list[int] = []
    scores: list[float] = []
    try:
        for raw_item, raw_score in ranked:
            items.append(int(raw_item))
            scores.append(float(raw_score))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"source {name!r}: entries must be (item_id, score) pairs of numbers: "
                         f"{exc}") from exc
    return np.asarray(items, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def _dedupe(name: str, ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank order without padding (negative ids) and repeats (the first position is kept)."""
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if ids.shape != scores.shape or ids.ndim != 1:
        raise ValueError(f"source {name!r}: ids {ids.shape} and scores {scores.shape} must be "
                         "1-D and aligned")
    real = ids >= 0
    ids, scores = ids[real], scores[real]
    first = np.sort(np.unique(ids, return_index=True)[1])
    ids, scores = ids[first], scores[first]
    if np.isnan(scores).any():
        raise ValueError(f"source {name!r}: item {ids[np.isnan(scores)][0]} has a NaN score")
    return ids, scores


def _contributions(scores: np.ndarray, policy: MergePolicy) -> np.ndarray:
    if policy.fusion == "rrf":
        return 1.0 / (policy.rrf_k + np.arange(1, len(scores) + 1, dtype=np.float64))
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros(len(scores))
    lo, hi = scores[finite].min(), scores[finite].max()
    span = hi - lo
    if span > 0:
        return np.where(finite, (scores - lo) / span, 0.0)
    return finite.astype(np.float64)


@dataclass(frozen=True)
class Merged:
    """A merged list as arrays, best first: what serving uses (no object per candidate).

    Attributes:
        item_ids: The chosen items.
        scores: Their fusion scores.
        sources: Source names in priority order: the columns of ``ranks``.
        ranks: ``[items, sources]`` 1-based rank of each item in each source, 0 = not listed.
    """

    item_ids: np.ndarray
    scores: np.ndarray
    sources: tuple[str, ...]
    ranks: np.ndarray

    def __len__(self) -> int:
        return len(self.item_ids)

    def sources_of(self, row: int) -> tuple[str, ...]:
        """The sources that listed the item of ``row``, in priority order."""
        return tuple(s for s, r in zip(self.sources, self.ranks[row], strict=True) if r > 0)

    def candidates(self) -> list[Candidate]:
        """The same list as :class:`Candidate` objects."""
        return [Candidate(int(item), float(score), self.sources_of(i),
                          tuple(int(r) for r in self.ranks[i] if r > 0))
                for i, (item, score) in enumerate(zip(self.item_ids, self.scores, strict=True))]


def merge(lists: Mapping[str, Sequence[tuple[int, float]]], k: int,
          policy: MergePolicy | None = None) -> list[Candidate]:
    """Merge per-source ranked lists into at most ``k`` distinct candidates, best first.

    Args:
        lists: Per source, ``(item_id, score)`` best first. Negative ids are padding and are
            skipped; an item repeated within one list keeps its first (best) position.
        k: Maximum result length; fewer when the sources have fewer distinct items.
        policy: Quotas, weights and fusion; :class:`MergePolicy` defaults when ``None``.

    Returns:
        Candidates sorted by fusion score (ties as in the module docstring).

    Raises:
        ValueError: when ``k < 1``, quotas sum above ``k``, or a list entry is malformed.
    """
    policy = policy or MergePolicy()
    _check_k(k, policy)
    return merge_arrays({s: _clean(s, ranked) for s, ranked in lists.items()}, k,
                        policy).candidates()


def _check_k(k: object, policy: MergePolicy) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if sum(policy.quotas.values()) > k:
        raise ValueError(f"quotas sum to {sum(policy.quotas.values())}, more than k={k}")


def merge_arrays(lists: Mapping[str, tuple[np.ndarray, np.ndarray]], k: int,
                 policy: MergePolicy | None = None) -> Merged:
    """:func:`merge` on ``(item ids, scores)`` arrays per source, with an array result.

    The same rules (module docstring), vectorised: fusion scores are summed in priority order
    (as :func:`merge` always did, so the floating-point sums are identical), quotas and the
    fill walk the items in the same order.

    Raises:
        ValueError: as :func:`merge`, and for ids and scores of different shapes.
    """
    policy = policy or MergePolicy()
    _check_k(k, policy)
    order = policy.order(list(lists))
    cleaned = [_dedupe(s, *lists[s]) for s in order]
    ids = np.concatenate([c[0] for c in cleaned]) if cleaned else np.empty(0, np.int64)
    prio = np.repeat(np.arange(len(order)), [len(c[0]) for c in cleaned])
    rank = np.concatenate([np.arange(1, len(c[0]) + 1) for c in cleaned]) if cleaned else prio
    part = np.concatenate([float(policy.weights.get(s, 1.0)) * _contributions(c[1], policy)
                           for s, c in zip(order, cleaned, strict=True)]) if cleaned else \
        np.empty(0)
    uniq, inv = np.unique(ids, return_inverse=True)
    fused = np.bincount(inv, weights=part, minlength=len(uniq))
    best = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(best, inv, rank)
    first = np.full(len(uniq), len(order))
    np.minimum.at(first, inv, prio)
    ranks = np.zeros((len(uniq), len(order)), dtype=np.int64)
    ranks[inv, prio] = rank
    chosen = np.zeros(len(uniq), dtype=bool)
    start = 0
    for s, c in zip(order, cleaned, strict=True):
        pos = inv[start:start + len(c[0])]
        start += len(c[0])
        missing = policy.quotas.get(s, 0) - int(chosen[pos].sum())
        if missing > 0:
            chosen[pos[~chosen[pos]][:missing]] = True
    ranked = np.lexsort((uniq, first, best, -fused))
    free = k - int(chosen.sum())
    if free > 0:
        rest = ranked[~chosen[ranked]]
        chosen[rest[:free]] = True
    final = ranked[chosen[ranked]]
    return Merged(uniq[final], fused[final], tuple(order), ranks[final])
