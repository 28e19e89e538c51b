"""The evaluation protocol end to end on tiny generated data, merge tuning and the reports."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from serving.merge import MergePolicy
from shoprec.generator import GeneratorConfig
from training.recall_datasets import generate_interactions
from training.recall_eval import Split, evaluate_lists, leave_last_out, time_split
from training.recall_eval_merge import fused_top_k, merged_top_k, parse_target, tune_policy
from training.recall_eval_report import bar_chart, format_table, write_html, write_json
from training.recall_eval_run import run_protocol
from training.recall_swing import fit_swing

SMALL = GeneratorConfig(n_users=300, n_items=60, n_categories=4, n_shops=6, days=4,
                        sessions_per_user_day=1.5, base_click_logit=-2.0, seed=11)
"""About 2,400 positive interactions: enough for item-to-item sources to find neighbours."""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    return generate_interactions(SMALL, tmp_path_factory.mktemp("gen"))


def test_fused_top_k_matches_the_serving_merge_by_hand() -> None:
    """rrf_k = 0, weights a = 1, b = 2. User 0: a = [3, 1], b = [1, 4].

    3: 1; 1: 1/2 + 2 = 2.5; 4: 2 * 1/2 = 1 → order 1, 3, 4 (3 and 4 tie at 1: merge breaks by
    best rank 1 (item 3) vs 2 (item 4); the sparse version by item index — same answer here).
    """
    lists = {"a": (np.array([[3, 1]]), np.array([[2.0, 1.0]])),
             "b": (np.array([[1, 4]]), np.array([[9.0, 8.0]]))}
    policy = MergePolicy(rrf_k=0.0, weights={"a": 1.0, "b": 2.0})
    assert fused_top_k(lists, policy, 3, 5).tolist() == [[1, 3, 4]]
    merged, shares = merged_top_k(lists, policy, 3)
    assert merged.tolist() == [[1, 3, 4]]
    assert shares == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3)}


def test_tuning_silences_a_useless_source(data) -> None:
    """A source that never lists a held-out item must end with less weight than swing."""
    split = leave_last_out(data)
    swing = fit_swing(split.train)
    rng = np.random.default_rng(0)
    noise = np.stack([rng.permutation(np.setdiff1d(np.arange(data.n_items), rel))[:50]
                      for rel in split.relevant])
    lists = {"swing": swing.recommend(split.train, split.users, 50),
             "noise": (noise, np.ones(noise.shape))}
    policy, trail = tune_policy(lists, split, target="recall@10", k=50, quota_users=100)
    assert policy.weights.get("noise", 1.0) < policy.weights.get("swing", 1.0)
    assert trail[0]["step"].startswith("fusion=")
    scores = [t["score"] for t in trail if "quota" not in t["step"]]
    assert scores == sorted(scores)  # every accepted step improved


def test_run_protocol_records_every_source_and_the_merge(data, tmp_path: Path) -> None:
    """Every non-TF source (EGES and two-tower have their own tests; TF would triple the time)."""
    sources = ("popularity", "pop_category", "trending", "itemcf", "swing", "transitions")
    logs: list[str] = []
    rec = run_protocol(data, functools.partial(time_split, holdout=0.3), sources=sources,
                       excludes=(True, False), target="accuracy@100", quota_users=60,
                       log=logs.append)
    assert set(rec["modes"]) == {"exclude_history", "include_history"}
    mode = rec["modes"]["exclude_history"]
    assert set(mode["sources"]) == set(sources)
    assert rec["errors"] == {}
    for metrics in [*mode["sources"].values(), mode["merged"]]:
        assert 0 <= metrics["recall@10"] <= metrics["recall@50"] <= metrics["recall@100"] <= 1
        assert 0 <= metrics["coverage@100"] <= 1 and metrics["novelty@100"] > 0
    # The recorded popularity figure is exactly what the split and the source give.
    split: Split = time_split(data, holdout=0.3)
    from training.recall_popularity import fit_popularity

    items, _ = fit_popularity(split.train).recommend(split.train, split.users, 100)
    assert mode["sources"]["popularity"] == evaluate_lists(items, split)
    assert rec["test_users"] == len(split.users)
    assert abs(sum(mode["merge_source_shares"].values())) >= 1.0  # multi-source credit
    assert any("best single" in line for line in logs)
    best = mode["best_single"]
    assert best["metric"] == "accuracy@100"
    assert best["value"] == max(m["accuracy@100"] for m in mode["sources"].values())
    assert mode["merged_vs_best"] == pytest.approx(mode["merged"]["accuracy@100"] / best["value"])

    payload = {"created_at": "now", "results": [rec], "missing": {"beauty": "not found"}}
    table = format_table([rec])
    assert "MERGED" in table and "transitions" in table
    loaded = json.loads(write_json(tmp_path / "r.json", payload).read_text())
    assert loaded["results"][0]["modes"]["exclude_history"]["merged"]["recall@50"] == \
        pytest.approx(mode["merged"]["recall@50"])
    page = write_html(tmp_path / "r.html", payload).read_text()
    assert page.count("<svg") == 8 and "beauty not evaluated" in page


@pytest.mark.parametrize("target", ["recall", "mrr@10", "recall@0", "recall@x"])
def test_bad_targets_are_named(target: str) -> None:
    with pytest.raises(ValueError, match="target must look like"):
        parse_target(target)


def test_bar_chart_scales_to_the_largest_value() -> None:
    svg = bar_chart("t<&>", ["g1", "g2"], {"s": [0.5, 1.0], "u": [float("nan"), 0.25]})
    ElementTree.fromstring(svg)  # well-formed XML, escaped title
    assert svg.startswith("<svg") and svg.count("<rect") == 4 + 2  # bars + legend swatches
    assert 'height="196.0"' in svg  # 1.0 fills the plot height: 260 - 28 (top) - 36 (bottom)


def test_variant_comparisons_are_differences_of_the_recorded_figures() -> None:
    from training.recall_eval_report import comparison_lines
    from training.recall_eval_run import compare_variants

    def m(r50: float, r100: float) -> dict[str, float]:
        return {"recall@50": r50, "recall@100": r100}

    sources = {"two_tower": m(0.25, 0.5), "two_tower_mixneg": m(0.3, 0.45),
               "two_tower_hist": m(0.2, 0.4)}  # no multi-interest: that pair is left out
    rows = compare_variants(sources, "recall@50")
    assert [(r["a"], r["b"]) for r in rows] == [("two_tower_mixneg", "two_tower"),
                                                ("two_tower_hist", "two_tower")]
    assert rows[0]["recall@50"] == {"a": 0.3, "b": 0.25, "diff": pytest.approx(0.05)}
    assert rows[0]["recall@100"]["diff"] == pytest.approx(-0.05)
    assert set(rows[1]) == {"comparison", "a", "b", "recall@50", "recall@100"}
    line = comparison_lines({"comparisons": rows})[0]
    assert "recall@50 0.3000 - 0.2500 = +0.0500" in line
