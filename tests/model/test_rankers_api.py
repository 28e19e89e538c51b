"""The rankers' shared API: names, tasks, config and input validation, export errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.model.test_rankers_models import STATS, tiny_batch, tiny_specs
from training.preprocessing import InputSpec
from training.rankers import (
    MULTI_TASK_RANKERS,
    RANKERS,
    RankerConfig,
    build_ranker_model,
    check_tasks,
    default_tasks,
    fit_ranker_stats,
)
from training.rankers.inputs import fit_sequence_stats, validate_specs

REPO = Path(__file__).resolve().parents[2]


def test_ranker_names_and_default_tasks() -> None:
    assert RANKERS == ("wide_deep", "deepfm", "dcn", "din", "dien", "dmr", "pnn", "nfm",
                       "deep_resnet", "mmoe", "esmm")
    assert [n for n in RANKERS if default_tasks(n) == ("ctr", "cvr")] == list(MULTI_TASK_RANKERS)
    assert default_tasks("din") == ("ctr",)


def test_importing_the_package_and_models_does_not_import_tensorflow() -> None:
    mods = ", ".join(f"training.rankers.{n}" for n in (*RANKERS, "export", "base", "sequence"))
    code = f"import sys, {mods}; assert 'tensorflow' not in sys.modules, 'TF imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.mark.parametrize(("name", "tasks", "message"), [
    ("xgboost", ("ctr",), "unknown ranker 'xgboost'"),
    ("din", ("ctr", "cvr"), "din is single-task"),
    ("mmoe", ("ctr",), "mmoe is multi-task"),
    ("esmm", ("cvr", "ctr"), "esmm learns exactly"),
    ("mmoe", ("ctr", "ctr"), "distinct"),
    ("mmoe", ("ctr", "ctcvr"), "distinct"),
])
def test_bad_tasks_are_rejected_with_the_reason(name: str, tasks: tuple[str, ...],
                                                message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_tasks(name, tasks)


def test_mmoe_accepts_more_than_two_tasks() -> None:
    assert check_tasks("mmoe", ("ctr", "cvr", "fav")) == ("ctr", "cvr", "fav")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"dropout": 1.0}, "dropout"),
    ({"product": "hadamard"}, "product"),
    ({"attention_pooling": "max"}, "attention_pooling"),
    ({"attention_positions": -1}, "attention_positions"),
    ({"hidden_units": ()}, "hidden_units"),
    ({"embedding_dim": 0}, "positive"),
    ({"projection_dim": 0}, "projection_dim"),
    ({"task_weights": (("ctr", 1.0), ("ctr", 2.0))}, "task_weights"),
])
def test_config_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RankerConfig(**overrides)


def test_task_weights_default_to_one() -> None:
    config = RankerConfig(task_weights=(("cvr", 0.5),))
    assert (config.task_weight("cvr"), config.task_weight("ctr")) == (0.5, 1.0)


def _replace(specs: list[InputSpec], name: str, **changes: object) -> list[InputSpec]:
    return [InputSpec(**{**s.__dict__, **changes}) if s.name == name else s for s in specs]


@pytest.mark.parametrize(("specs", "stats", "error", "message"), [
    (_replace(tiny_specs(), "hist_i", target="nope"), STATS, ValueError, "targets 'nope'"),
    (_replace(tiny_specs(), "hist_i", target="n"), STATS, ValueError, "not a scalar id"),
    (_replace(tiny_specs(), "hist_i", vocab=7), STATS, ValueError, "shares the table"),
    (_replace(tiny_specs(), "hist_i", max_len=0), STATS, ValueError, "max_len >= 1"),
    (_replace(tiny_specs(), "hist_gap", target="i"), STATS, ValueError, "cannot have a target"),
    (_replace(tiny_specs(), "u_cat", vocab=0), STATS, ValueError, "'u_cat'.*vocab"),
    (_replace(tiny_specs(), "u_cat", kind="bucketized"), STATS, ValueError, "unknown kind"),
    (tiny_specs() + [tiny_specs()[0]], STATS, ValueError, "duplicate"),
    (tiny_specs(), {"n": (0.0, 1.0), "price": (0.0, 1.0)}, KeyError, "'hist_gap'"),
    (tiny_specs(), {"hist_gap": (0.0, 1.0), "price": (0.0, 1.0)}, KeyError, "'n'"),
])
def test_spec_validation_names_the_input(specs: list[InputSpec], stats: dict, error: type,
                                         message: str) -> None:
    with pytest.raises(error, match=message):
        validate_specs(specs, stats)


def test_fit_sequence_stats_skips_pads() -> None:
    gaps = np.array([[0.0, 0.0, 1.0, 3.0], [0.0, 2.0, 2.0, 4.0]])
    stats = fit_sequence_stats({"hist_gap": gaps}, [InputSpec("hist_gap", "float64", "sequence",
                                                              0, 4)])
    # non-pad elements 1, 3, 2, 2, 4, on the log1p scale the encoder standardises
    z = np.log1p([1.0, 3.0, 2.0, 2.0, 4.0])
    assert stats["hist_gap"] == pytest.approx((z.mean(), z.var()))
    assert stats["hist_gap"][0] == pytest.approx((np.log(2) + np.log(4) + 2 * np.log(3)
                                                  + np.log(5)) / 5)


def test_fit_ranker_stats_reads_a_frame_with_list_columns() -> None:
    import pandas as pd

    df = pd.DataFrame({"n": [0, 3], "gap": [[1.0, 3.0], [0.0, 2.0, 2.0, 4.0]]})
    specs = [InputSpec("n", "int64", "count"), InputSpec("gap", "float64", "sequence", 0, 4)]
    stats = fit_ranker_stats(df, specs)
    z = np.log1p([1.0, 3.0, 2.0, 2.0, 4.0])  # the pad 0.0 is dropped
    assert stats["gap"] == pytest.approx((z.mean(), z.var()))
    mean = (np.log1p(0) + np.log1p(3)) / 2
    assert stats["n"] == pytest.approx((mean, (np.log1p(3) - mean) ** 2))


def test_export_and_scoring_errors_are_explicit(tmp_path: Path) -> None:
    from training.rankers.export import export_ranker_model, load_and_score

    model = build_ranker_model("wide_deep", tiny_specs(), STATS,
                               RankerConfig(embedding_dim=4, hidden_units=(4,)))
    feats, labels = tiny_batch()
    with pytest.raises(TypeError, match=r"\(features, labels\)"):
        model.compute_loss(feats)
    with pytest.raises(KeyError, match="no label for task 'ctr'"):
        model.compute_loss((feats, {"click": labels["ctr"]}))
    with pytest.raises(ValueError, match=r"missing \['hist_gap'\]"):
        export_ranker_model(model, tiny_specs()[:-1], tmp_path / "m")
    path = export_ranker_model(model, tiny_specs(), tmp_path / "m")
    with pytest.raises(FileExistsError):
        export_ranker_model(model, tiny_specs(), path)
    with pytest.raises(ValueError, match=r"missing \['price'\], unexpected \['prize'\]"):
        load_and_score(path, {**{k: v for k, v in feats.items() if k != "price"},
                              "prize": feats["price"]})
    with pytest.raises(ValueError, match="'u' must be integer"):
        load_and_score(path, {**feats, "u": feats["u"] + 0.5})
    with pytest.raises(ValueError, match="'hist_i' has shape"):
        load_and_score(path, {**feats, "hist_i": feats["hist_i"][:, 1:]})
    # Integer values for a float input are fine (cast to the signature dtype).
    ok = load_and_score(path, {**feats, "price": np.round(feats["price"]).astype(np.int64)})
    assert ok["score"].shape == (len(feats["u"]),)
