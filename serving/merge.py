"""Merge candidate lists of several recall sources into one list: quotas, fusion, attribution.

Pure and dependency-free, so serving, the offline evaluation and tests run the very same code:
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


def _clean(name: str, ranked: Sequence[tuple[int, float]]) -> dict[int, float]:
    """The list as ``{item: score}`` in rank order, without padding and repeats.

    Negative ids are padding; a repeated item keeps its first (best) position.
    """
    out: dict[int, float] = {}
    try:
        for raw_item, raw_score in ranked:
            item = int(raw_item)
            if item >= 0 and item not in out:
                out[item] = float(raw_score)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"source {name!r}: entries must be (item_id, score) pairs of numbers: "
                         f"{exc}") from exc
    if any(math.isnan(v) for v in out.values()):
        bad = next(i for i, v in out.items() if math.isnan(v))
        raise ValueError(f"source {name!r}: item {bad} has a NaN score")
    return out


def _contributions(ranked: dict[int, float], policy: MergePolicy) -> list[float]:
    if policy.fusion == "rrf":
        return [1.0 / (policy.rrf_k + r) for r in range(1, len(ranked) + 1)]
    finite = [s for s in ranked.values() if math.isfinite(s)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    span = hi - lo
    return [(s - lo) / span if span > 0 and math.isfinite(s) else
            (1.0 if span == 0 and math.isfinite(s) else 0.0) for s in ranked.values()]


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
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if sum(policy.quotas.values()) > k:
        raise ValueError(f"quotas sum to {sum(policy.quotas.values())}, more than k={k}")
    order = policy.order(list(lists))
    cleaned = {s: _clean(s, lists[s]) for s in order}
    fused: dict[int, float] = {}
    found: dict[int, list[tuple[str, int]]] = {}
    best: dict[int, tuple[int, int]] = {}  # item -> (best rank, priority of its first source)
    for prio, s in enumerate(order):
        weight = float(policy.weights.get(s, 1.0))
        for rank, (item, part) in enumerate(
                zip(cleaned[s], _contributions(cleaned[s], policy), strict=True), start=1):
            if item in fused:
                fused[item] += weight * part
                found[item].append((s, rank))
                if rank < best[item][0]:
                    best[item] = (rank, best[item][1])
            else:
                fused[item] = weight * part
                found[item] = [(s, rank)]
                best[item] = (rank, prio)

    def key(item: int) -> tuple[float, int, int, int]:
        return (-fused[item], *best[item], item)

    chosen: set[int] = set()
    for s in order:
        quota = policy.quotas.get(s, 0)
        have = sum(1 for item in cleaned[s] if item in chosen)
        for item in cleaned[s]:
            if have >= quota:
                break
            if item not in chosen:
                chosen.add(item)
                have += 1
    if len(chosen) < k:
        ranked = sorted(fused, key=key)
        for item in ranked:
            if len(chosen) >= k:
                break
            chosen.add(item)
    return [Candidate(item, fused[item], tuple(s for s, _ in found[item]),
                      tuple(r for _, r in found[item])) for item in sorted(chosen, key=key)]
