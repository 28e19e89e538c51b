"""serving.merge: fusion scores, quotas, dedup, attribution and deterministic ties, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from serving.merge import Candidate, MergePolicy, merge, merge_arrays

# Three sources; item 3 is listed by a and b, item 7 by b and c.
LISTS = {
    "a": [(1, 0.9), (2, 0.8), (3, 0.7)],
    "b": [(3, 5.0), (4, 4.0), (7, 3.0)],
    "c": [(7, 10.0), (8, 1.0)],
}


def ids(cands: list[Candidate]) -> list[int]:
    return [c.item_id for c in cands]


def test_rrf_scores_attribution_and_order_by_hand() -> None:
    """rrf_k = 0, equal weights, contributions 1/rank.

    item 1: a#1 → 1            item 3: a#3 + b#1 → 1/3 + 1 = 4/3
    item 2: a#2 → 1/2          item 4: b#2 → 1/2
    item 7: b#3 + c#1 → 1/3 + 1 = 4/3
    item 8: c#2 → 1/2
    Order: 3 and 7 tie at 4/3, both best rank 1; first source a (of 3) beats b (of 7) → 3, 7.
    Then 1 (score 1). Then 2, 4, 8 tie at 1/2, best rank 2 each; first sources a, b, c → 2, 4, 8.
    """
    out = merge(LISTS, 10, MergePolicy(rrf_k=0.0))
    assert ids(out) == [3, 7, 1, 2, 4, 8]
    by_id = {c.item_id: c for c in out}
    assert by_id[3].score == pytest.approx(4 / 3)
    assert by_id[3].sources == ("a", "b") and by_id[3].ranks == (3, 1)
    assert by_id[7].sources == ("b", "c") and by_id[7].ranks == (3, 1)
    assert by_id[8].sources == ("c",) and by_id[8].score == pytest.approx(0.5)


def test_fewer_candidates_than_k_returns_all_distinct() -> None:
    out = merge(LISTS, 100)
    assert sorted(ids(out)) == [1, 2, 3, 4, 7, 8]  # 8 entries, 6 distinct items


def test_k_truncates_to_best() -> None:
    assert ids(merge(LISTS, 2, MergePolicy(rrf_k=0.0))) == [3, 7]


def test_quota_guarantees_a_sources_items() -> None:
    """k=3, rrf_k=0. Without quotas: [3, 7, 1]; c's only item there is 7.

    quota c=2: c must have two of its items: 7 (rank 1) then 8 (rank 2) are reserved first;
    the one free slot goes to the best remaining fused score, item 3 (4/3). Sorted by score:
    3 (4/3), 7 (4/3, tie → a before b), 8 (1/2).
    """
    assert ids(merge(LISTS, 3, MergePolicy(rrf_k=0.0))) == [3, 7, 1]
    out = merge(LISTS, 3, MergePolicy(rrf_k=0.0, quotas={"c": 2}))
    assert ids(out) == [3, 7, 8]


def test_quotas_in_priority_order() -> None:
    """k=3, quotas a=2, b=1: a adds 1, 2; b (none of its items chosen yet) adds 3."""
    out = merge(LISTS, 3, MergePolicy(rrf_k=0.0, quotas={"a": 2, "b": 1}))
    assert sorted(ids(out)) == [1, 2, 3]


def test_quota_is_met_by_items_chosen_for_other_sources() -> None:
    """k=4, quotas a=3, b=1: a adds 1, 2, 3; item 3 is also b's #1, so b's quota is met.

    The free slot goes to the best remaining fused score: 7 (4/3), not b's next item 4.
    """
    out = merge(LISTS, 4, MergePolicy(rrf_k=0.0, quotas={"a": 3, "b": 1}))
    assert sorted(ids(out)) == [1, 2, 3, 7]


def test_quota_larger_than_list_takes_what_exists() -> None:
    out = merge({"c": [(7, 1.0), (8, 0.5)], "a": [(1, 1.0)]}, 3,
                MergePolicy(quotas={"c": 3}))
    assert sorted(ids(out)) == [1, 7, 8]


def test_weights_and_zero_weight_keep_attribution() -> None:
    """Weight c = 0: 7 scores b#3 = 1/3 only, 8 scores 0 but is still listed with source c."""
    out = merge(LISTS, 10, MergePolicy(rrf_k=0.0, weights={"c": 0.0}))
    by_id = {c.item_id: c for c in out}
    assert by_id[7].score == pytest.approx(1 / 3) and by_id[7].sources == ("b", "c")
    assert by_id[8].score == 0.0 and ids(out)[-1] == 8
    assert ids(out)[:2] == [3, 1]  # 4/3, 1


def test_score_fusion_min_max_normalises_each_list() -> None:
    """a: (0.9, 0.8, 0.7) → (1, 0.5, 0); b: (5, 4, 3) → (1, 0.5, 0); c: (10, 1) → (1, 0).

    3: 0 + 1 = 1; 7: 0 + 1 = 1; 1: 1; 2: 0.5; 4: 0.5; 8: 0.
    Ties at 1: best rank 1 for all three; first sources a (1), a (3), b (7) → by item id: 1, 3.
    """
    out = merge(LISTS, 10, MergePolicy(fusion="score"))
    assert ids(out) == [1, 3, 7, 2, 4, 8]
    assert [round(c.score, 6) for c in out] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.0]


def test_dedup_within_a_list_and_padding() -> None:
    out = merge({"a": [(5, 1.0), (-1, float("-inf")), (5, 0.5), (6, 0.2)]}, 5,
                MergePolicy(rrf_k=0.0))
    assert ids(out) == [5, 6]
    assert out[1].ranks == (2,)  # padding and the repeat do not take ranks


def test_ties_do_not_depend_on_dict_order() -> None:
    reordered = {"c": LISTS["c"], "b": LISTS["b"], "a": LISTS["a"]}
    assert merge(reordered, 10) == merge(LISTS, 10)


def test_priority_changes_tie_breaks_and_attribution_order() -> None:
    """Priority c, b, a: 3 and 7 tie at 4/3 with best rank 1; 7's first source is now c."""
    out = merge(LISTS, 10, MergePolicy(rrf_k=0.0, priority=("c", "b", "a")))
    assert ids(out)[:2] == [7, 3]
    assert {c.item_id: c.sources for c in out}[3] == ("b", "a")


def test_empty_sources() -> None:
    assert merge({}, 5) == []
    assert merge({"a": []}, 5) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"quotas": {"a": -1}}, "quota of source 'a'"),
    ({"quotas": {"a": 1.5}}, "quota of source 'a'"),
    ({"weights": {"a": float("nan")}}, "weight of source 'a'"),
    ({"fusion": "max"}, "unknown fusion"),
    ({"priority": ("a", "a")}, "priority names a source twice"),
])
def test_bad_policy_is_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MergePolicy(**kwargs)


def test_bad_calls_are_named() -> None:
    with pytest.raises(ValueError, match="k must be"):
        merge(LISTS, 0)
    with pytest.raises(ValueError, match="quotas sum to 4, more than k=3"):
        merge(LISTS, 3, MergePolicy(quotas={"a": 2, "b": 2}))
    with pytest.raises(ValueError, match="source 'a': item 1 has a NaN score"):
        merge({"a": [(1, float("nan"))]}, 3)
    with pytest.raises(ValueError, match="entries must be"):
        merge({"a": [(1, 2.0, 3)]}, 3)


def reference_merge(lists, k, policy):
    """The rules of the module docstring, written plainly with dicts (for the random check)."""
    order = policy.order(list(lists))
    clean = {}
    for s in order:
        seen = {}
        for item, score in lists[s]:
            if item >= 0 and item not in seen:
                seen[item] = score
        clean[s] = seen
    fused, found, best = {}, {}, {}
    for prio, s in enumerate(order):
        vals = list(clean[s].values())
        if policy.fusion == "rrf":
            parts = [1.0 / (policy.rrf_k + r) for r in range(1, len(vals) + 1)]
        else:
            lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)
            parts = [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in vals]
        for rank, (item, part) in enumerate(zip(clean[s], parts, strict=True), start=1):
            w = policy.weights.get(s, 1.0)
            fused[item] = fused.get(item, 0.0) + w * part
            found.setdefault(item, []).append((s, rank))
            best[item] = (min(rank, best.get(item, (rank, prio))[0]), best.get(item, (0, prio))[1])
    key = lambda i: (-fused[i], *best[i], i)  # noqa: E731
    chosen = set()
    for s in order:
        have = sum(1 for i in clean[s] if i in chosen)
        for i in clean[s]:
            if have >= policy.quotas.get(s, 0):
                break
            if i not in chosen:
                chosen.add(i)
                have += 1
    for i in sorted(fused, key=key):
        if len(chosen) >= k:
            break
        chosen.add(i)
    return [(i, fused[i], tuple(s for s, _ in found[i]), tuple(r for _, r in found[i]))
            for i in sorted(chosen, key=key)]


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_merge_equals_the_plain_rules_on_random_lists(seed):
    import random

    rng = random.Random(seed)
    names = ["a", "b", "c"][:rng.randint(1, 3)]
    lists = {s: [(rng.randint(-2, 30), float(rng.randint(0, 5))) for _ in range(rng.randint(0, 25))]
             for s in names}
    k = rng.randint(1, 40)
    quotas = {s: rng.randint(0, 4) for s in names if rng.random() < 0.6}
    while sum(quotas.values()) > k:
        quotas.popitem()
    policy = MergePolicy(quotas=quotas, weights={s: rng.choice([0.0, 0.5, 1.0, 2.0])
                                                 for s in names if rng.random() < 0.5},
                         fusion=rng.choice(["rrf", "score"]), priority=tuple(reversed(names)))
    got = [(c.item_id, c.score, c.sources, c.ranks) for c in merge(lists, k, policy)]
    assert got == reference_merge(lists, k, policy)
    arrays = {s: (np.array([i for i, _ in v], dtype=np.int64),
                  np.array([x for _, x in v], dtype=np.float64)) for s, v in lists.items()}
    fast = merge_arrays(arrays, k, policy)
    assert fast.item_ids.tolist() == [g[0] for g in got]
    assert [fast.sources_of(r) for r in range(len(fast))] == [g[2] for g in got]
