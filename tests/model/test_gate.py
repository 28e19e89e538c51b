"""The promotion gate on hand-made metric dicts (pure: no models, no files but gate.json)."""

from __future__ import annotations

import json

import pytest

from training.gate import GateTolerance, decide, flatten, gate_run


def metrics(recall: float | None = 0.40, gauc: float | None = 0.70, auc: float | None = 0.75,
            logloss: float | None = 0.50) -> dict:
    return {"retrieval": {"recall@10": 0.1, "recall@100": recall, "hr@100": 0.6},
            "ranker": {"auc": auc, "gauc": gauc, "logloss": logloss}}


def test_worse_beyond_tolerance_is_rejected_with_a_sentence() -> None:
    d = decide(metrics(gauc=0.60), metrics(gauc=0.70), GateTolerance(absolute=0.01))
    assert not d.promote
    assert d.reasons[0] == ("not promoted: ranker.gauc: challenger 0.6000 is 0.1000 lower than "
                            "champion 0.7000, beyond the allowed drop of 0.0100 (absolute 0.01, "
                            "relative 0.0%)")
    assert d.compared["ranker.gauc"] == pytest.approx(
        {"challenger": 0.60, "champion": 0.70, "delta": -0.10, "allowed_drop": 0.01, "ok": False})
    assert d.compared["ranker.auc"]["ok"] and d.compared["retrieval.recall@100"]["ok"]


def test_within_tolerance_and_better_are_promoted() -> None:
    d = decide(metrics(recall=0.395, gauc=0.80), metrics(recall=0.40, gauc=0.70))
    assert d.promote
    assert d.reasons[0].startswith("promoted: no gated metric is worse")
    assert any(r.startswith("retrieval.recall@100: challenger 0.3950 vs champion 0.4000 is "
                            "within the allowed drop of 0.0100") for r in d.reasons)
    assert set(d.compared) == {"retrieval.recall@100", "ranker.gauc", "ranker.auc"}


def test_relative_tolerance_applies_when_more_lenient() -> None:
    tol = GateTolerance(absolute=0.01, relative=0.10)  # champion 0.40 -> allowed drop 0.04
    assert tol.allowed_drop(0.40) == pytest.approx(0.04)
    assert decide(metrics(recall=0.365), metrics(recall=0.40), tol).promote
    rejected = decide(metrics(recall=0.355), metrics(recall=0.40), tol)
    assert not rejected.promote
    assert "retrieval.recall@100: challenger 0.3550 is 0.0450 lower" in rejected.reasons[0]
    assert "allowed drop of 0.0400 (absolute 0.01, relative 10.0%)" in rejected.reasons[0]


@pytest.mark.parametrize("bad,shown", [(float("nan"), "nan"), (None, "missing (null)"),
                                       (float("inf"), "inf")])
def test_nan_or_null_blocks_even_forced_promotion(bad, shown: str) -> None:
    challenger = metrics()
    challenger["retrieval"]["hr@100"] = bad  # not even a gated metric
    for force in (False, True):
        d = decide(challenger, metrics(), force=force)
        assert not d.promote
        assert d.reasons[0] == (f"not promoted: retrieval.hr@100 of the challenger is {shown}, "
                                "not a finite number; a model with NaN or missing metrics is "
                                "never promoted, not even by force")
    assert not decide(challenger, None).promote  # first run too


def test_missing_gated_metric_blocks() -> None:
    challenger = metrics()
    del challenger["ranker"]["gauc"]
    d = decide(challenger, metrics(), force=True)
    assert not d.promote
    assert d.reasons == [
        "not promoted: ranker.gauc is missing from the challenger's metrics, so it cannot be "
        "gated"] + d.reasons[1:]


def test_force_overrides_a_worse_metric_and_says_so() -> None:
    d = decide(metrics(auc=0.50), metrics(auc=0.75), force=True)
    assert d.promote and d.compared["ranker.auc"]["ok"] is False
    assert d.reasons[0].startswith("force-promoted by the operator although ranker.auc: "
                                   "challenger 0.5000 is 0.2500 lower than champion 0.7500")


def test_first_run_promotes_when_finite() -> None:
    d = decide(metrics(), None)
    assert d.promote and d.compared == {}
    assert d.reasons == ["promoted: there is no comparable champion and every challenger "
                         "metric is finite"]


def test_champion_nan_metric_is_skipped_not_blocking() -> None:
    d = decide(metrics(gauc=0.5), metrics(gauc=float("nan")))
    assert d.promote and "ranker.gauc" not in d.compared
    assert "ranker.gauc: the champion has no finite value (nan), so the challenger's 0.5000 " \
           "is not compared" in d.reasons


def test_lower_is_better_metric_can_be_gated() -> None:
    tol = GateTolerance(metrics=("ranker.logloss",), absolute=0.02)
    assert decide(metrics(logloss=0.51), metrics(logloss=0.50), tol).promote
    d = decide(metrics(logloss=0.60), metrics(logloss=0.50), tol)
    assert not d.promote
    assert "ranker.logloss: challenger 0.6000 is 0.1000 higher than champion 0.5000" \
        in d.reasons[0]


@pytest.mark.parametrize("kwargs,match", [({"absolute": -0.1}, "absolute"),
                                          ({"relative": float("nan")}, "relative"),
                                          ({"metrics": ()}, "at least one"),
                                          ({"metrics": ("auc",)}, "section.metric")])
def test_bad_tolerances_are_rejected(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        GateTolerance(**kwargs)


def test_flatten() -> None:
    assert flatten({"ranker": {"auc": 0.7}, "x": 1}) == {"ranker.auc": 0.7, "x": 1}
    assert flatten(None) == {}


def test_gate_run_reads_evaluation_and_writes_gate_json(settings) -> None:
    run = settings.models_dir / "r1"
    run.mkdir(parents=True)
    (run / "evaluation.json").write_text(json.dumps({
        "run_id": "r1", "champion_run_id": "r0", "challenger": metrics(recall=None),
        "champion": None, "champion_status": "not_comparable",
        "champion_reason": "run r0 does not exist"}))
    d = gate_run(settings, "r1", force=True)
    assert not d.promote
    assert d.reasons[-1] == "champion: run r0 does not exist"
    gate = json.loads((run / "gate.json").read_text())
    assert gate["promote"] is False and gate["force"] is True
    assert gate["reasons"] == d.reasons and gate["tolerance"]["absolute"] == 0.01
