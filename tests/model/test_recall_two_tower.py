"""The platform two-tower model run as a recall source on interaction data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprec.contract import CONTRACT, ITEM_TOWER, USER_TOWER
from shoprec.recipes import Attr
from training.config import ModelConfig
from training.recall_datasets import Interactions, from_frame
from training.recall_eval_two_tower import TwoTowerTrial, fit_two_tower, tower_frame, trial_specs


def clusters() -> Interactions:
    """Even users only take items 0-9 (category 1), odd users only items 10-19 (category 2)."""
    rng = np.random.default_rng(0)
    rows = [(u, int((0 if u % 2 == 0 else 10) + rng.integers(0, 10)), t)
            for u in range(80) for t in range(12)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    items = pd.DataFrame({"item_id": np.arange(20), "category_id": [1] * 10 + [2] * 10,
                          "shop_id": np.arange(20) % 3})
    return from_frame("clusters", frame, items=items)


def test_tower_frame_takes_attributes_from_recipes_and_defaults_the_rest() -> None:
    data = clusters()
    specs = [s for part in trial_specs(CONTRACT, TwoTowerTrial()) for s in part]
    frame = tower_frame(data, np.array([0, 1]), np.array([3, 15]), CONTRACT, specs)
    assert frame["user_id"].tolist() == [0, 1] and frame["item_id"].tolist() == [3, 15]
    for feat in CONTRACT.service_features(ITEM_TOWER):
        if isinstance(feat.recipe, Attr) and feat.recipe.column == "category_id":
            assert frame[feat.name].tolist() == [1, 2]
        elif isinstance(feat.recipe, Attr) and feat.recipe.column == "shop_id":
            assert frame[feat.name].tolist() == [0, 0]
        elif not isinstance(feat.recipe, Attr):
            assert frame[feat.name].tolist() == [feat.default] * 2


def test_two_tower_source_learns_the_clusters() -> None:
    data = clusters()
    cfg = ModelConfig(embedding_dim=8, id_embedding_dim=8, cat_embedding_dim=4, tower_units=())
    model = fit_two_tower(data, trial=TwoTowerTrial(config=cfg, epochs=15, batch_size=128))
    items, scores = model.recommend(data, np.arange(80), 10, exclude_history=False)
    own = np.where(np.arange(80)[:, None] % 2 == 0, items < 10, items >= 10)
    assert own.mean() > 0.9
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    items, _ = model.recommend(data, np.array([0]), 20)
    seen = set(data.item[data.user == 0].tolist())
    assert seen.isdisjoint(items[0][items[0] >= 0].tolist())
    assert len(items[0][items[0] >= 0]) == 20 - len(seen)


def test_id_only_trial_leaves_the_contract_history_out() -> None:
    """The contract's user tower reads item-id/category/gap histories; the id-only trial
    must not, and the history trial reads exactly the contract's (no second history)."""
    id_only, items = trial_specs(CONTRACT, TwoTowerTrial())
    with_history, _ = trial_specs(CONTRACT, TwoTowerTrial(histories=True))
    sequences = [f.name for f in CONTRACT.service_features(USER_TOWER) if f.kind == "sequence"]
    assert len(sequences) == 3
    assert [s.name for s in id_only] == [s.name for s in with_history
                                         if s.name not in sequences]
    assert [s.name for s in with_history if s.kind == "sequence"] == sequences
    targeted = [s for s in with_history if s.target == items[0].name]
    assert len(targeted) == 1 and targeted[0].name in sequences
