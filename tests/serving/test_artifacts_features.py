"""Artifact loading and feature conformance (pure helpers, real SavedModels)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from feature_repo.online import conform
from serving.artifacts import load_artifacts
from shoprec.contract import CONTRACT, RANKER, USER_TOWER
from tests.serving.models import N_ITEMS


def test_signatures_take_contract_inputs_with_contract_dtypes(artifacts):
    user = {"user_id": np.int64} | {
        f.name: np.dtype(f.dtype) for f in CONTRACT.service_features(USER_TOWER)}
    assert artifacts.user_tower.input_dtypes == user
    assert set(artifacts.ranker.input_names) == {"user_id", "item_id"} | {
        f.name for f in CONTRACT.service_features(RANKER)}
    assert artifacts.index.ntotal == len(artifacts.item_ids) == N_ITEMS
    assert artifacts.run_id == "run-1"


def test_signature_rejects_missing_inputs(artifacts):
    with pytest.raises(ValueError, match=r"user_tower: missing inputs \[.*'u_clicks_30d'"):
        artifacts.user_tower({"user_id": np.array([1])})


def test_missing_artifacts_are_named(tmp_path, run_dir):
    partial = tmp_path / "run"
    shutil.copytree(run_dir, partial)
    shutil.rmtree(partial / "ranker")
    (partial / "item_ids.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"item_ids\.npy.*ranker"):
        load_artifacts(partial)


def test_conform_fills_defaults_and_casts():
    df = pd.DataFrame({"user_id": [1, 2], "u_clicks_30d": [4.0, None],
                       "u_ctr_30d": [None, 0.2]})
    out = conform(df, CONTRACT, USER_TOWER)
    assert out["u_clicks_30d"].tolist() == [4, 0] and out["u_clicks_30d"].dtype == np.int64
    assert out["u_ctr_30d"].tolist() == [0.05, 0.2]
    assert out["u_top_category"].tolist() == [-1, -1]  # absent column -> default
    assert out["u_purchases_30d"].dtype == np.int64


def test_conform_names_uncastable_feature():
    df = pd.DataFrame({"user_id": [1], "u_clicks_30d": ["many"]})
    with pytest.raises(ValueError, match="u_clicks_30d"):
        conform(df, CONTRACT, USER_TOWER)
