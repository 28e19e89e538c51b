"""Evaluation metrics against hand-computed values; challenger vs champion on real runs."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from shoprec.contract import CONTRACT
from shoprec.settings import Settings
from training.evaluate import (
    NotComparable,
    evaluate,
    heldout_queries,
    ranker_metrics,
    retrieval_metrics,
)
from training.gate import GateTolerance, decide, gate_run
from training.index import build_index, load_index
from training.pipeline import time_cutoff, train


def test_recall_and_hit_rate_by_hand(tmp_path) -> None:
    # 3 items on the axes of R^3; a query equal to an axis ranks that item first.
    build_index(np.eye(3, dtype=np.float32), np.array([10, 20, 30]), tmp_path)
    index, ids = load_index(tmp_path)
    queries = np.array([[1, 0.5, 0], [0, 0, 1]], np.float32)  # ranks: 10,20,30 / 30,...
    relevant = [{20, 30}, {10}]
    m = retrieval_metrics(queries, relevant, index, ids, ks=(1, 2))
    assert m["recall@1"] == pytest.approx((0 / 2 + 0 / 1) / 2)
    assert m["recall@2"] == pytest.approx((1 / 2 + 0 / 1) / 2)
    assert m["hr@2"] == pytest.approx(0.5)


def test_multi_interest_queries_score_items_by_their_best_interest(tmp_path) -> None:
    build_index(np.eye(3, dtype=np.float32), np.array([10, 20, 30]), tmp_path)
    index, ids = load_index(tmp_path)
    # User 0: interests (0.9, 0, 0) and (0, 0, 1) -> 30 (1.0), 10 (0.9), 20 (0). User 1 has
    # one real interest (0, 1, 0) and a weak one (0.1, 0, 0) -> 20, 10, 30.
    queries = np.array([[[0.9, 0, 0], [0, 0, 1]], [[0, 1, 0], [0.1, 0, 0]]], np.float32)
    relevant = [{10}, {30}]
    m = retrieval_metrics(queries, relevant, index, ids, ks=(1, 2, 3))
    assert (m["recall@1"], m["recall@2"], m["recall@3"]) == (0.0, 0.5, 1.0)
    assert m["hr@2"] == pytest.approx(0.5)


def test_heldout_queries_take_first_row_per_user() -> None:
    ts = pd.to_datetime(["2026-01-02", "2026-01-01", "2026-01-03"], utc=True)
    df = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 6, 5], "event_ts": ts, "f": [2, 1, 3]})
    queries, relevant = heldout_queries(df)
    assert queries["user_id"].tolist() == [1, 2]
    assert queries["f"].tolist() == [1, 3]
    assert relevant == [{5, 6}, {5}]


def test_ranker_metrics_by_hand() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.9, 0.8, 0.3])
    m = ranker_metrics(y, p, groups=np.array([1, 1, 2, 2]))
    assert m["auc"] == pytest.approx(0.75)  # 3 of 4 pos/neg pairs ordered correctly
    assert m["logloss"] == pytest.approx(-np.mean(np.log([0.9, 0.9, 0.2, 0.3])))
    assert m["gauc"] == pytest.approx(0.5)  # user 1 perfect (1.0), user 2 inverted (0.0)
    assert math.isnan(ranker_metrics(np.array([1, 1]), np.array([0.2, 0.3]))["auc"])


def test_no_heldout_users_is_nan_not_zero(tmp_path) -> None:
    build_index(np.eye(3, dtype=np.float32), np.array([10, 20, 30]), tmp_path)
    index, ids = load_index(tmp_path)
    m = retrieval_metrics(np.zeros((0, 3), np.float32), [], index, ids, ks=(1,))
    assert math.isnan(m["recall@1"]) and math.isnan(m["hr@1"])


# --- challenger vs champion on real trained runs -------------------------------------------


@pytest.fixture(scope="module")
def runs(toy_data, tmp_path_factory):
    """A champion (full data, 2 epochs) and a deliberately worse challenger (64 rows, 1 epoch)."""
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    settings.datasets_dir.mkdir(parents=True)
    toy_data.ranker.to_parquet(settings.datasets_dir / "ranker.parquet")
    toy_data.retrieval.to_parquet(settings.datasets_dir / "retrieval.parquet")
    train(settings, CONTRACT, "champ", toy_data.item_features, epochs=2, batch_size=256)
    train(settings, CONTRACT, "worse", toy_data.item_features, epochs=1, batch_size=32,
          sample_size=64)
    return settings, evaluate(settings, CONTRACT, "worse", "champ")


def _part_metrics(settings: Settings, run_id: str) -> dict:
    root = settings.models_dir / run_id
    return {p: json.loads((root / p / "metrics.json").read_text())[p]
            for p in ("retrieval", "ranker")}


@pytest.mark.slow
def test_champion_and_challenger_are_scored_on_the_same_rows(runs, toy_data) -> None:
    settings, result = runs
    cutoff = time_cutoff([toy_data.ranker["event_ts"], toy_data.retrieval["event_ts"]])
    rk_val = toy_data.ranker[toy_data.ranker["event_ts"] >= cutoff]
    tt_val = toy_data.retrieval[toy_data.retrieval["event_ts"] >= cutoff]
    assert result["rows"] == {"retrieval_validation_rows": len(tt_val),
                              "validation_users": tt_val["user_id"].nunique(),
                              "ranker_validation_rows": len(rk_val),
                              "ranker_validation_positives": int(rk_val["label"].sum())}
    assert 0 < len(rk_val) < len(toy_data.ranker)
    assert result["champion_status"] == "compared" and result["champion_reason"] is None
    # Each run re-scored on the current data equals what it measured right after training on
    # the same held-out rows (the data did not change in between).
    assert result["champion"] == _part_metrics(settings, "champ")
    assert result["challenger"] == _part_metrics(settings, "worse")
    on_disk = json.loads((settings.models_dir / "worse" / "evaluation.json").read_text())
    assert on_disk == result


@pytest.mark.slow
def test_the_worse_challenger_is_rejected_naming_the_metric(runs) -> None:
    settings, result = runs
    champ, worse = result["champion"], result["challenger"]
    assert worse["retrieval"]["recall@100"] < champ["retrieval"]["recall@100"] - 0.1
    decision = decide(worse, champ, GateTolerance())
    assert not decision.promote
    assert any(r.startswith("not promoted: retrieval.recall@100: challenger "
                            f"{worse['retrieval']['recall@100']:.4f}") for r in decision.reasons)
    assert decision.compared["retrieval.recall@100"]["ok"] is False
    written = gate_run(settings, "worse")
    assert written.promote is False
    gate = json.loads((settings.models_dir / "worse" / "gate.json").read_text())
    assert gate["promote"] is False and gate["reasons"] == written.reasons


@pytest.mark.slow
def test_champion_equal_to_challenger_and_flat_legacy_champion(runs) -> None:
    settings, result = runs
    same = evaluate(settings, CONTRACT, "champ", "champ")
    assert same["champion"] == same["challenger"] == result["champion"]
    # A champion from before runs were split into parts (everything in one folder).
    flat = settings.models_dir / "flat"
    shutil.copytree(settings.models_dir / "champ" / "retrieval", flat)
    shutil.copytree(settings.models_dir / "champ" / "ranker" / "ranker", flat / "ranker")
    legacy = evaluate(settings, CONTRACT, "worse", "flat")
    assert legacy["champion_status"] == "compared"
    assert legacy["champion"] == result["champion"]


@pytest.mark.slow
def test_missing_or_incompatible_champion_is_not_comparable(runs) -> None:
    settings, _ = runs
    ghost = evaluate(settings, CONTRACT, "worse", "ghost")
    assert ghost["champion"] is None and ghost["champion_status"] == "not_comparable"
    assert ghost["champion_reason"].startswith("run ghost does not exist")
    assert gate_run(settings, "worse").promote  # finite metrics, nothing to compare with
    # A champion whose ranker signature no longer matches the contract (here: a real SavedModel
    # with the item tower's inputs in the ranker's place).
    old = settings.models_dir / "old"
    shutil.copytree(settings.models_dir / "champ", old)
    shutil.rmtree(old / "ranker" / "ranker")
    shutil.copytree(old / "retrieval" / "item_tower", old / "ranker" / "ranker")
    res = evaluate(settings, CONTRACT, "worse", "old")
    assert res["champion_status"] == "not_comparable" and res["champion"] is None
    assert "no longer matches the contract: lacks inputs" in res["champion_reason"]
    assert "'user_id'" in res["champion_reason"]
    shutil.rmtree(old / "retrieval" / "user_tower")  # a half-deleted champion
    res = evaluate(settings, CONTRACT, "worse", "old")
    assert res["champion_status"] == "not_comparable"
    assert res["champion_reason"].startswith("run old lacks artifacts")
    assert "user_tower" in res["champion_reason"]


def test_challenger_without_parts_cannot_be_evaluated(settings, toy_data) -> None:
    settings.datasets_dir.mkdir(parents=True)
    toy_data.ranker.to_parquet(settings.datasets_dir / "ranker.parquet")
    toy_data.retrieval.to_parquet(settings.datasets_dir / "retrieval.parquet")
    with pytest.raises(NotComparable, match="challenger nothing cannot be evaluated"):
        evaluate(settings, CONTRACT, "nothing", None)
