"""serving.package.without_nulls: BentoML model metadata may not hold None."""

from __future__ import annotations

from serving.package import without_nulls


def test_nulls_are_dropped_at_every_depth_and_falsy_values_kept() -> None:
    metrics = {"ranker": {"auc": 0.7, "gauc": None}, "training": {"warm_start": None,
               "history": [{"loss": 0.5, "val": None}, None], "stopped_early": False},
               "train_rows": 0}
    assert without_nulls(metrics) == {"ranker": {"auc": 0.7}, "training": {
        "history": [{"loss": 0.5}], "stopped_early": False}, "train_rows": 0}
