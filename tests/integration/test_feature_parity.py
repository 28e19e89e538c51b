"""Training and serving read features through the same FeatureService (no training-serving skew).

A real Feast store (file offline store, sqlite online store) is wrapped in a recorder that
delegates every call to it and notes which FeatureService each read named. Training sets are
built through it, and the serving fetcher plus the model-input builder of the Bento run against
it. Then the contract is changed (one feature's definition altered, another dropped) and both
sides are shown to follow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feature_repo import store as fstore
from feature_repo.build import build_snapshots
from feature_repo.online import feast_fetcher
from feature_repo.training_set import build_training_sets
from serving.recommender import model_inputs
from shoprec.contract import CONTRACT, ITEM_TOWER, RANKER, USER_TOWER, Contract
from shoprec.recipes import SmoothedRatio
from shoprec.settings import Settings
from tests.data.feature_fixtures import write_tiny

pytestmark = pytest.mark.integration


class RecordingStore:
    """The real FeatureStore, plus a log of ``(offline|online, FeatureService name)`` reads."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.reads: list[tuple[str, str]] = []

    def get_historical_features(self, *, entity_df: Any, features: Any, **kw: Any) -> Any:
        # A FeatureService, or (when re-requesting rows Feast dropped) a list of its refs.
        name = features.name if hasattr(features, "name") else tuple(features)
        self.reads.append(("offline", name))
        return self._store.get_historical_features(entity_df=entity_df, features=features, **kw)

    def get_online_features(self, *, features: Any, entity_rows: Any, **kw: Any) -> Any:
        self.reads.append(("online", features.name))
        return self._store.get_online_features(features=features, entity_rows=entity_rows, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def run_both_sides(settings: Settings, contract: Contract) -> dict[str, Any]:
    """Build the store and training sets for ``contract``, then fetch as serving does."""
    write_tiny(settings)
    build_snapshots(settings, contract)
    fstore.apply(settings, contract)
    store = RecordingStore(fstore.open_store(settings))
    fstore.materialize(settings, store, contract)
    sets = build_training_sets(settings, contract, store)
    offline = [r for r in store.reads if r[0] == "offline"]
    fetch = feast_fetcher(store, contract)
    pairs = pd.DataFrame({"user_id": np.array([1, 2, 2], np.int64),
                          "item_id": np.array([10, 11, 12], np.int64)})
    served = fetch(RANKER, pairs)
    inputs = model_inputs(served, ["user_id", "item_id"], contract, RANKER)
    user_inputs = model_inputs(fetch(USER_TOWER, pairs[["user_id"]]), ["user_id"], contract,
                               USER_TOWER)
    return {"offline": offline, "online": [r for r in store.reads if r[0] == "online"],
            "ranker": pd.read_parquet(sets["ranker"]), "served": served, "inputs": inputs,
            "user_inputs": user_inputs, "retrieval": pd.read_parquet(sets["retrieval"])}


def feature_columns(df: pd.DataFrame, contract: Contract) -> list[str]:
    names = {f.name for f in contract.features}
    return [c for c in df.columns if c in names]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_both_sides(Settings(home=tmp_path_factory.mktemp("parity") / "home"), CONTRACT)


def test_both_sides_name_the_same_feature_services(default_run: dict[str, Any]) -> None:
    services = {name for _, name in default_run["offline"] if isinstance(name, str)}
    assert services == {RANKER, USER_TOWER, ITEM_TOWER}
    served = {f"{f.view}:{f.name}" for s in services for f in CONTRACT.service_features(s)}
    for _, refs in default_run["offline"]:  # re-requests name only features of those services
        if not isinstance(refs, str):
            assert set(refs) <= served, refs
    assert {name for _, name in default_run["online"]} == {RANKER, USER_TOWER}


def test_ranker_training_columns_are_the_served_model_inputs(default_run: dict[str, Any]) -> None:
    trained_on = feature_columns(default_run["ranker"], CONTRACT)
    assert trained_on == [f.name for f in CONTRACT.service_features(RANKER)]
    assert [k for k in default_run["inputs"] if k not in ("user_id", "item_id")] == trained_on
    user_cols = [f.name for f in CONTRACT.service_features(USER_TOWER)]
    assert [k for k in default_run["user_inputs"] if k != "user_id"] == user_cols
    assert set(user_cols) <= set(default_run["retrieval"].columns)
    for name, values in default_run["inputs"].items():  # same dtypes as the training columns
        if name in trained_on:  # a sequence column holds arrays: compare its element dtype
            column = default_run["ranker"][name]
            trained = np.stack(column.to_numpy()) if column.dtype == object else column
            assert values.dtype == trained.dtype and values.shape[1:] == trained.shape[1:], name


def test_changing_the_contract_changes_training_and_serving(tmp_path) -> None:
    ctr = next(f for f in CONTRACT.features if isinstance(f.recipe, SmoothedRatio)
               and f.view == "user_stats")
    dropped = next(f for f in CONTRACT.service_features(RANKER) if f.view == "item_profile"
                   and not {USER_TOWER, ITEM_TOWER} & f.used_by)
    changed_recipe = dataclasses.replace(ctr.recipe, alpha=3.0, beta=7.0)
    features = tuple(dataclasses.replace(f, recipe=changed_recipe, default=0.3) if f is ctr else f
                     for f in CONTRACT.features if f is not dropped)
    contract = dataclasses.replace(CONTRACT, features=features)
    run = run_both_sides(Settings(home=tmp_path / "home"), contract)

    # The dropped feature is gone from the training set AND from what serving feeds the model.
    assert dropped.name not in run["ranker"].columns
    assert dropped.name not in run["inputs"]
    assert feature_columns(run["ranker"], contract) == \
        [k for k in run["inputs"] if k not in ("user_id", "item_id")]

    # The changed definition: (num + 3) / (den + 10) on both sides, from each side's counts.
    def expected(df: pd.DataFrame) -> np.ndarray:
        return ((df[changed_recipe.numerator] + 3.0)
                / (df[changed_recipe.denominator] + 10.0)).to_numpy()

    offline = run["ranker"]
    assert len(offline) > 0
    np.testing.assert_allclose(offline[ctr.name].to_numpy(), expected(offline))
    served = run["served"]
    np.testing.assert_allclose(served[ctr.name].to_numpy(), expected(served))
    assert not np.allclose(served[ctr.name].to_numpy(),  # and it differs from the old prior
                           ((served[changed_recipe.numerator] + 1.0)
                            / (served[changed_recipe.denominator] + 20.0)).to_numpy())
