"""The platform's two-tower model (:mod:`training.two_tower`) as a source of the recall harness.

Real datasets have none of the shop's behavioural features, so every tower input except the ids
and the catalogue attributes gets its contract default; catalogue attributes are found through
the contract's recipes (a feature whose recipe is ``Attr(column)`` is filled from that item
column), never by name. What is measured is therefore the id-based two-tower retrieval of the
TFRS basic-retrieval tutorial, trained with the platform's own model code and optimiser.

Retrieval is exact (brute-force inner product over the whole catalogue, in user blocks), so the
figure reflects the model, not an ANN approximation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import CONTRACT, Contract
from shoprec.recipes import Attr
from training.config import ModelConfig
from training.recall_datasets import Interactions
from training.recall_itemcf import seen_matrix

BLOCK = 2048


def tower_frame(data: Interactions, users: np.ndarray, items: np.ndarray,
                contract: Contract) -> pd.DataFrame:
    """Rows of (dense) ``users`` × ``items`` with both towers' raw inputs.

    Ids are the dataset's original ids; catalogue attributes come from ``Attr`` recipes; every
    other feature is its contract default (what serving sends for an unknown entity).
    """
    from training.two_tower import item_inputs, user_inputs

    frame = pd.DataFrame({"user_id": data.user_ids[users], "item_id": data.item_ids[items]})
    attrs = {"category_id": data.item_category, "shop_id": data.item_shop}
    for spec in [*user_inputs(contract), *item_inputs(contract)]:
        if spec.kind == "id":
            continue
        feat = contract.feature(spec.name)
        if isinstance(feat.recipe, Attr) and feat.recipe.column in attrs:
            frame[spec.name] = attrs[feat.recipe.column][items]
        else:
            frame[spec.name] = np.full(len(frame), feat.default)
    return frame


@dataclass
class TwoTowerRecall:
    """A trained two-tower model serving exact top-k over the catalogue.

    Attributes:
        name: Source name.
        model: The ``TwoTowerModel`` (``user_tower`` / ``item_tower``).
        contract: Contract the towers were built from.
        fit_seconds: Wall time of training.
        train_loss: Final epoch loss.
    """

    name: str
    model: Any
    contract: Contract
    fit_seconds: float = 0.0
    train_loss: float = float("nan")

    def _embed(self, data: Interactions, users: np.ndarray, items: np.ndarray,
               tower: str) -> np.ndarray:
        from training.preprocessing import to_feature_dict

        net = getattr(self.model, tower)
        frame = tower_frame(data, users, items, self.contract)
        feats = to_feature_dict(frame, [s for s in _specs(self.contract, tower)])
        return np.asarray(net.predict(feats, batch_size=8192, verbose=0), dtype=np.float32)

    def recommend(self, train: Interactions, users: np.ndarray, k: int, *,
                  exclude_history: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` items by inner product (ties: lower item index)."""
        users = np.asarray(users, dtype=np.int64)
        all_items = np.arange(train.n_items)
        item_emb = self._embed(train, np.zeros(train.n_items, np.int64), all_items, "item_tower")
        user_emb = self._embed(train, users, np.zeros(len(users), np.int64), "user_tower")
        seen = seen_matrix(train, users) if exclude_history else None
        k = min(k, train.n_items)
        out_i = np.empty((len(users), k), dtype=np.int64)
        out_s = np.empty((len(users), k))
        for lo in range(0, len(users), BLOCK):
            scores = user_emb[lo:lo + BLOCK] @ item_emb.T
            if seen is not None:
                scores[seen[lo:lo + BLOCK].toarray() > 0] = -np.inf
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            out_i[lo:lo + BLOCK] = order
            out_s[lo:lo + BLOCK] = np.take_along_axis(scores, order, axis=1)
        return np.where(np.isfinite(out_s), out_i, -1), out_s


def _specs(contract: Contract, tower: str) -> list:
    from training.two_tower import item_inputs, user_inputs

    return user_inputs(contract) if tower == "user_tower" else item_inputs(contract)


def fit_two_tower(train: Interactions, *, contract: Contract = CONTRACT,
                  config: ModelConfig | None = None, epochs: int = 10, batch_size: int = 1024,
                  seed: int = 42) -> TwoTowerRecall:
    """Train :func:`training.two_tower.build_two_tower` on every training interaction.

    Uses the training stage's own optimiser set-up (:func:`training.pipeline.make_optimizer`).
    """
    from shoprec.tf_runtime import tensorflow
    from training.pipeline import make_optimizer
    from training.preprocessing import to_feature_dict
    from training.two_tower import build_two_tower, item_inputs, user_inputs

    tf = tensorflow()
    cfg = config or ModelConfig()
    tf.keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    frame = tower_frame(train, train.user, train.item, contract)
    model = build_two_tower(contract, frame, cfg)
    specs = user_inputs(contract) + item_inputs(contract)
    ds = tf.data.Dataset.from_tensor_slices(to_feature_dict(frame, specs))
    ds = ds.shuffle(len(frame), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    model.compile(optimizer=make_optimizer(model, cfg))
    hist = model.fit(ds.prefetch(2), epochs=epochs, verbose=0)
    return TwoTowerRecall("two_tower", model, contract, time.perf_counter() - start,
                          float(hist.history["loss"][-1]))
