"""One evaluation protocol end to end: fit every source, tune on validation, score the test.

For a dataset and a split function the protocol is:

1. ``test = split(data)`` and ``val = split(test.train)`` — the validation targets come strictly
   from the training side of the test split, so nothing is tuned on test targets;
2. fit every source on ``val.train``; pick each item-to-item source's history recency decay
   from :data:`DECAYS` and then the merge policy (:mod:`training.recall_eval_merge`) on ``val``;
3. refit every source on ``test.train`` with those choices, produce top-``k`` lists for the test
   users, and score each source and the merged list (the real :func:`serving.merge.merge`).

Sources are built by name (:data:`SOURCE_NAMES`); ``trending`` is skipped on data without
wall-clock time, and a source that cannot be fitted is reported with its error, not hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from training.graph_embedding import GraphEmbeddingConfig, fit_graph_embedding, fit_transitions
from training.recall_datasets import Interactions
from training.recall_eval import KS, Split, evaluate_lists
from training.recall_eval_merge import merged_top_k, parse_target, target_score, tune_policy
from training.recall_itemcf import ItemNeighbours, fit_itemcf
from training.recall_popularity import fit_popularity
from training.recall_swing import fit_swing

SOURCE_NAMES = ("popularity", "pop_category", "trending", "itemcf", "swing", "transitions",
                "eges", "two_tower", "two_tower_mixneg", "two_tower_hist", "two_tower_multi")
TWO_TOWER_VARIANTS = {
    "two_tower": {},
    "two_tower_mixneg": {"mixed_negatives": 1024},
    "two_tower_hist": {"histories": True},
    "two_tower_multi": {"histories": True, "user_tower": "multi_interest"},
}
"""Two-tower sources as changes to the default trial: ``two_tower`` is id-only with logQ and
in-batch negatives only; ``_mixneg`` adds 1024 uniform catalogue negatives per batch (the random
negatives on/off comparison); ``_hist`` gives the single-vector user tower the pooled item
history; ``_multi`` is the multi-interest (ComiRec-SA) tower on the same history."""
COMPARISONS = (
    ("random negatives on vs off", "two_tower_mixneg", "two_tower"),
    ("multi-interest vs single-vector (same history)", "two_tower_multi", "two_tower_hist"),
    ("history-pooled vs id-only", "two_tower_hist", "two_tower"),
)
"""Two-tower variant pairs whose difference every run reports (when both were evaluated)."""
DECAYS = (1.0, 0.7, 0.4)
K_MAX = max(KS)


class Recaller(Protocol):
    """What the harness needs from a fitted source."""

    name: str
    fit_seconds: float

    def recommend(self, train: Interactions, users: np.ndarray, k: int, *,
                  exclude_history: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(items, scores)`` per user, best first."""
        ...


def source_builders(eges: GraphEmbeddingConfig | None = None
                    ) -> dict[str, Callable[[Interactions], Recaller]]:
    """Fitting function per source name."""
    return {
        "popularity": lambda d: fit_popularity(d, "global"),
        "pop_category": lambda d: fit_popularity(d, "category"),
        "trending": lambda d: fit_popularity(d, "trending"),
        "itemcf": fit_itemcf,
        "swing": fit_swing,
        "transitions": fit_transitions,
        "eges": lambda d: fit_graph_embedding(d, eges),
        **{name: _two_tower_builder(name) for name in TWO_TOWER_VARIANTS},
    }


def _two_tower_builder(name: str) -> Callable[[Interactions], Recaller]:
    def fit(train: Interactions) -> Recaller:
        from dataclasses import replace

        # TF: imported only when used
        from training.recall_eval_two_tower import DEFAULT_TRIAL, fit_two_tower

        changes = dict(TWO_TOWER_VARIANTS[name])
        histories = changes.pop("histories", DEFAULT_TRIAL.histories)
        trial = replace(DEFAULT_TRIAL, histories=histories,
                        options=replace(DEFAULT_TRIAL.options, **changes))
        return fit_two_tower(train, trial=trial)

    return fit


def fit_sources(train: Interactions, names: Sequence[str],
                builders: dict[str, Callable[[Interactions], Recaller]]
                ) -> tuple[dict[str, Recaller], dict[str, str]]:
    """Fit each named source; ``(fitted, errors)`` — a failure is recorded, not raised."""
    fitted: dict[str, Recaller] = {}
    errors: dict[str, str] = {}
    for name in names:
        if name == "trending" and not train.has_time:
            errors[name] = "skipped: no wall-clock timestamps"
            continue
        start = time.perf_counter()
        try:
            src = builders[name](train)
        except (ValueError, RuntimeError, MemoryError) as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        src.name = name
        src.fit_seconds = time.perf_counter() - start
        fitted[name] = src
    return fitted, errors


def recommend_all(fitted: dict[str, Recaller], split: Split, exclude: bool, k: int = K_MAX
                  ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, float]]:
    """Top-``k`` lists of every source for the split's users, and the seconds each took."""
    lists, seconds = {}, {}
    for name, src in fitted.items():
        start = time.perf_counter()
        lists[name] = src.recommend(split.train, split.users, k, exclude_history=exclude)
        seconds[name] = time.perf_counter() - start
    return lists, seconds


def tune_decays(fitted: dict[str, Recaller], val: Split, exclude: bool,
                target: str = "recall@50") -> dict[str, float]:
    """Best history decay per item-to-item source on the validation split (ties: first)."""
    chosen: dict[str, float] = {}
    k = parse_target(target)
    for name, src in fitted.items():
        if not isinstance(src, ItemNeighbours):
            continue
        best = (-1.0, DECAYS[0])
        for decay in DECAYS:
            src.decay = decay
            items, _ = src.recommend(val.train, val.users, k, exclude_history=exclude)
            score = target_score(items, val.relevant, val.train.n_items, target)
            best = max(best, (score, decay), key=lambda t: t[0])
        src.decay = chosen[name] = best[1]
    return chosen


def run_protocol(data: Interactions, split_fn: Callable[[Interactions], Split], *,
                 sources: Sequence[str] = SOURCE_NAMES, excludes: Sequence[bool] = (True,),
                 eges: GraphEmbeddingConfig | None = None, target: str = "recall@50",
                 quota_users: int = 1000, log: Callable[[str], None] = print
                 ) -> dict[str, Any]:
    """Evaluate ``sources`` and their merge on ``data`` under ``split_fn`` (module docstring).

    Args:
        data: All interactions of the dataset.
        split_fn: Makes a :class:`Split` from interactions (applied twice for validation).
        sources: Source names from :data:`SOURCE_NAMES`.
        excludes: Evaluate with history excluded (``True``) and/or included (``False``).
        eges: Graph-embedding hyper-parameters.
        target: Metric the decays and the merge policy are tuned for, and the merge is judged
            by against the best single source (``recall@50``; ``accuracy@100`` for TFRS).
        quota_users: Validation users the quota search merges (pure Python, the slow part).
        log: Progress printer.

    Returns:
        A JSON-able record: split sizes, per-mode metrics of every source and of the merge, the
        tuned policy with its search trail, fit/recommend timings and any source errors.
    """
    builders = source_builders(eges)
    test = split_fn(data)
    val = split_fn(test.train)
    log(f"  {data.name}: {test.name}: {len(test.users)} test users, {test.n_pairs} held-out "
        f"pairs; validation {len(val.users)} users")
    record: dict[str, Any] = {
        "dataset": data.name, "split": test.name,
        "interactions": len(data), "users": data.n_users, "items": data.n_items,
        "test_users": len(test.users), "test_pairs": test.n_pairs,
        "skipped_cold_test_users": test.skipped_users, "validation_users": len(val.users),
        "modes": {}, "errors": {}, "fit_seconds": {}}
    val_fit, errors = fit_sources(val.train, sources, builders)
    record["errors"].update(errors)
    tuned: dict[bool, tuple[dict[str, float], Any, list]] = {}
    for exclude in excludes:
        decays = tune_decays(val_fit, val, exclude, target)
        lists, _ = recommend_all(val_fit, val, exclude)
        policy, trail = tune_policy(lists, val, target=target, quota_users=quota_users)
        tuned[exclude] = (decays, policy, trail)
        log(f"  tuned (exclude_history={exclude}): decays {decays}; {trail[-1]}")
    test_fit, errors = fit_sources(test.train, list(val_fit), builders)
    record["errors"].update(errors)
    record["fit_seconds"] = {n: round(s.fit_seconds, 3) for n, s in test_fit.items()}
    for exclude in excludes:
        decays, policy, trail = tuned[exclude]
        for name, decay in decays.items():
            if name in test_fit:
                test_fit[name].decay = decay  # type: ignore[attr-defined]
        lists, rec_seconds = recommend_all(test_fit, test, exclude)
        mode: dict[str, Any] = {"sources": {}, "recommend_seconds": rec_seconds,
                                "decays": decays}
        for name, (items, _) in lists.items():
            mode["sources"][name] = evaluate_lists(items, test)
        start = time.perf_counter()
        merged, shares = merged_top_k(lists, policy, K_MAX)
        mode["merge_seconds"] = time.perf_counter() - start
        mode["merged"] = evaluate_lists(merged, test)
        mode["merge_source_shares"] = shares
        mode["policy"] = {"fusion": policy.fusion, "rrf_k": policy.rrf_k,
                          "weights": dict(policy.weights), "quotas": dict(policy.quotas),
                          "priority": list(policy.priority)}
        mode["tuning_trail"] = trail
        best = max(mode["sources"], key=lambda n: mode["sources"][n][target])
        best_val = mode["sources"][best][target]
        mode["best_single"] = {"source": best, "metric": target, "value": best_val}
        mode["merged_vs_best"] = (mode["merged"][target] / best_val
                                  if best_val else float("nan"))
        mode["comparisons"] = compare_variants(mode["sources"], target)
        record["modes"]["exclude_history" if exclude else "include_history"] = mode
        log(f"  exclude_history={exclude}: best single {best} {target}="
            f"{best_val:.4f}, merged {mode['merged'][target]:.4f} "
            f"(x{mode['merged_vs_best']:.3f})")
    return record


def compare_variants(sources: dict[str, dict[str, float]], target: str) -> list[dict[str, Any]]:
    """Measured difference of each :data:`COMPARISONS` pair present in ``sources``.

    Reports ``target``, recall@50 and recall@100 of both sides and ``a - b`` for each.
    """
    out = []
    for label, a, b in COMPARISONS:
        if a not in sources or b not in sources:
            continue
        row: dict[str, Any] = {"comparison": label, "a": a, "b": b}
        for metric in dict.fromkeys((target, "recall@50", "recall@100")):
            va, vb = sources[a][metric], sources[b][metric]
            row[metric] = {"a": va, "b": vb, "diff": va - vb}
        out.append(row)
    return out
