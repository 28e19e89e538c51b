"""The platform's two-tower model (:mod:`training.two_tower`) as a source of the recall harness.

Real datasets have none of the shop's aggregate features, so those tower inputs get their
contract default (what serving sends for an unknown entity). What the data does give is found
through the contract, never by name: a feature whose recipe is ``Attr(column)`` is filled from
that item column, and, when the trial asks for histories, the user's item-id behaviour sequence
(:mod:`training.two_tower_history`) from earlier training interactions: point-in-time for a
training row, the latest ones for a user being recommended to.

Retrieval is exact (brute-force inner product over the whole catalogue, in user blocks; a
multi-interest user scores an item by its best interest), so the figure reflects the model, not
an ANN approximation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import CONTRACT, Contract
from shoprec.recipes import Attr
from training.config import ModelConfig
from training.preprocessing import InputSpec
from training.recall_datasets import Interactions
from training.recall_itemcf import seen_matrix
from training.two_tower_history import item_histories, user_ends, user_specs_with_history
from training.two_tower_options import TwoTowerOptions

BLOCK = 2048


@dataclass(frozen=True)
class TwoTowerTrial:
    """Everything that decides one two-tower fit on interaction data.

    Attributes:
        config: Architecture and optimiser settings.
        options: Sampling and user-tower switches.
        epochs: Passes over the training interactions.
        batch_size: Rows per step (= in-batch negatives).
        histories: Give the user tower the item-id behaviour history (``False``: the id-only
            model of the TFRS tutorial). ``multi_interest`` needs it.
        history_len: Items kept per history (newest).
    """

    config: ModelConfig = field(default_factory=ModelConfig)
    options: TwoTowerOptions = field(default_factory=TwoTowerOptions)
    epochs: int = 10
    batch_size: int = 1024
    histories: bool = False
    history_len: int = 50

    def label(self) -> str:
        """Short description for tables."""
        c, o = self.config, self.options
        return (f"{o.user_tower} hist={self.history_len if self.histories else 0} "
                f"logq={o.logq_weight if o.logq_correction else 0} mns={o.mixed_negatives} "
                f"T={c.temperature} dim={c.embedding_dim} ep={self.epochs} bs={self.batch_size}")


DEFAULT_TRIAL = TwoTowerTrial(config=ModelConfig(temperature=0.3))
"""Id-only, logQ on, ``T = 0.3``: the setting the session-10 validation grid on MovieLens-100K
(validation carved from the training side) chose (0.4021 validation accuracy@100; the same
model without logQ: 0.2076)."""


def trial_specs(contract: Contract,
                trial: TwoTowerTrial) -> tuple[list[InputSpec], list[InputSpec]]:
    """``(user specs, item specs)`` the trial's towers read."""
    from training.two_tower import item_inputs, user_inputs

    users, items = user_inputs(contract), item_inputs(contract)
    if trial.histories:
        users = user_specs_with_history(users, items[0], trial.history_len)
    else:  # id-only, as the trial says, although the contract's user tower reads a history
        users = [spec for spec in users if spec.kind != "sequence"]
    return users, items


def tower_frame(data: Interactions, users: np.ndarray, items: np.ndarray, contract: Contract,
                specs: list[InputSpec], history_end: np.ndarray | None = None) -> pd.DataFrame:
    """Rows of (dense) ``users`` × ``items`` with the raw inputs of ``specs``.

    Ids are the dataset's original ids; catalogue attributes come from ``Attr`` recipes; item-id
    histories from ``data``'s interactions before ``history_end`` (one exclusive end position
    per row; ``None`` = empty); every other feature is its contract default.
    """
    frame = pd.DataFrame({"user_id": data.user_ids[users], "item_id": data.item_ids[items]})
    attrs = {"category_id": data.item_category, "shop_id": data.item_shop}
    item_id = "item_id"
    for spec in specs:
        if spec.kind == "id" or spec.name in frame.columns:
            continue
        if spec.kind == "sequence":
            if spec.target == item_id and history_end is not None:
                frame[spec.name] = list(item_histories(data, users, history_end, spec.max_len))
            else:
                frame[spec.name] = [None] * len(frame)  # empty history: all padding
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
        trial: The settings it was trained with.
        fit_seconds: Wall time of training.
        train_loss: Final epoch loss.
    """

    name: str
    model: Any
    contract: Contract
    trial: TwoTowerTrial = DEFAULT_TRIAL
    fit_seconds: float = 0.0
    train_loss: float = float("nan")

    def _embed(self, frame: pd.DataFrame, tower: str) -> np.ndarray:
        from training.two_tower_inputs import tower_feature_dict

        u_specs, i_specs = trial_specs(self.contract, self.trial)
        feats = tower_feature_dict(frame, u_specs if tower == "user_tower" else i_specs)
        net = getattr(self.model, tower)
        return np.asarray(net.predict(feats, batch_size=8192, verbose=0), dtype=np.float32)

    def user_embeddings(self, train: Interactions, users: np.ndarray) -> np.ndarray:
        """``[U, D]`` (or ``[U, K, D]``) from each user's latest training history."""
        users = np.asarray(users, dtype=np.int64)
        u_specs, _ = trial_specs(self.contract, self.trial)
        frame = tower_frame(train, users, np.zeros(len(users), np.int64), self.contract,
                            u_specs, user_ends(train, users))
        return self._embed(frame, "user_tower")

    def item_embeddings(self, train: Interactions) -> np.ndarray:
        """``[N, D]`` for every catalogue item."""
        _, i_specs = trial_specs(self.contract, self.trial)
        frame = tower_frame(train, np.zeros(train.n_items, np.int64), np.arange(train.n_items),
                            self.contract, i_specs)
        return self._embed(frame, "item_tower")

    def recommend(self, train: Interactions, users: np.ndarray, k: int, *,
                  exclude_history: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` items by inner product (best interest; ties: lower item index)."""
        users = np.asarray(users, dtype=np.int64)
        item_emb = self.item_embeddings(train)
        user_emb = self.user_embeddings(train, users)
        seen = seen_matrix(train, users) if exclude_history else None
        k = min(k, train.n_items)
        out_i = np.empty((len(users), k), dtype=np.int64)
        out_s = np.empty((len(users), k))
        for lo in range(0, len(users), BLOCK):
            block = user_emb[lo:lo + BLOCK]
            scores = (np.einsum("ukd,id->uki", block, item_emb).max(axis=1) if block.ndim == 3
                      else block @ item_emb.T)
            if seen is not None:
                scores[seen[lo:lo + BLOCK].toarray() > 0] = -np.inf
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            out_i[lo:lo + BLOCK] = order
            out_s[lo:lo + BLOCK] = np.take_along_axis(scores, order, axis=1)
        return np.where(np.isfinite(out_s), out_i, -1), out_s


def fit_two_tower(train: Interactions, *, contract: Contract = CONTRACT,
                  trial: TwoTowerTrial = DEFAULT_TRIAL, seed: int = 42) -> TwoTowerRecall:
    """Train :func:`training.two_tower.build_two_tower` on every training interaction.

    Each row's history holds only the interactions before it. Mixed negatives are drawn from
    the whole catalogue (items without interactions included). Uses the training stage's own
    optimiser set-up (:func:`training.pipeline.make_optimizer`).
    """
    from shoprec.tf_runtime import tensorflow
    from training.pipeline import make_optimizer
    from training.two_tower import build_two_tower
    from training.two_tower_inputs import tower_feature_dict

    tf = tensorflow()
    tf.keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    u_specs, i_specs = trial_specs(contract, trial)
    frame = tower_frame(train, train.user, train.item, contract, [*u_specs, *i_specs],
                        np.arange(len(train)))
    catalogue = tower_frame(train, np.zeros(train.n_items, np.int64), np.arange(train.n_items),
                            contract, i_specs)
    model = build_two_tower(contract, frame, trial.config, trial.options, catalogue,
                            user_specs=u_specs)
    specs = list({s.name: s for s in [*u_specs, *i_specs]}.values())
    ds = tf.data.Dataset.from_tensor_slices(tower_feature_dict(frame, specs))
    ds = ds.shuffle(len(frame), seed=seed, reshuffle_each_iteration=True).batch(trial.batch_size)
    model.compile(optimizer=make_optimizer(model, trial.config))
    hist = model.fit(ds.prefetch(2), epochs=trial.epochs, verbose=0)
    return TwoTowerRecall("two_tower", model, contract, trial, time.perf_counter() - start,
                          float(hist.history["loss"][-1]))

