"""Two-tower retrieval model trained with an in-batch softmax (``tfrs.tasks.Retrieval``).

The user tower sees ``user_id`` + the ``two_tower_user`` FeatureService, the item tower
``item_id`` + ``two_tower_item``. Both end in an L2 normalisation so that the inner product the
FAISS index uses at serving time is a cosine similarity, bounded and comparable across users.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

from shoprec.contract import ITEM_TOWER, USER_TOWER, Contract
from shoprec.tf_runtime import tensorflow, tfrs
from training.config import ModelConfig
from training.preprocessing import InputSpec, Stats, encode, fit_stats, keras_inputs, model_inputs


def user_inputs(contract: Contract) -> list[InputSpec]:
    """Raw inputs of the user tower (= its SavedModel signature, in order)."""
    return model_inputs(contract, USER_TOWER, ("user_id",))


def item_inputs(contract: Contract) -> list[InputSpec]:
    """Raw inputs of the item tower (= its SavedModel signature, in order)."""
    return model_inputs(contract, ITEM_TOWER, ("item_id",))


def build_tower(specs: list[InputSpec], stats: Stats, config: ModelConfig, name: str) -> Any:
    """A functional Keras tower: raw dict inputs → unit-norm ``[B, embedding_dim]`` float32.

    Functional (not subclassed) so that it can be built without defining classes at import
    time, and so its input names are exactly the contract names.
    """
    tf = tensorflow()
    inputs = keras_inputs(specs)
    x = encode(inputs, specs, stats, id_dim=config.id_embedding_dim,
               cat_dim=config.cat_embedding_dim, prefix=name)
    for i, units in enumerate(config.tower_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"{name}_dense{i}")(x)
    x = tf.keras.layers.Dense(config.embedding_dim, name=f"{name}_proj")(x)
    out = tf.keras.layers.UnitNormalization(axis=-1, name=f"{name}_l2")(x)
    return tf.keras.Model(inputs=inputs, outputs=out, name=name)


@functools.cache
def two_tower_model_class() -> type:
    """The ``tfrs.Model`` subclass, defined on first use so importing this module stays TF-free."""
    tf = tensorflow()
    tfrs_mod = tfrs()

    class TwoTowerModel(tfrs_mod.models.Model):
        """Query tower + candidate tower joined by an in-batch softmax retrieval task.

        Each row of a batch is a (user, positively-interacted item) pair; the other items of the
        batch act as negatives. That is cheap (no sampling) and matches the serving task: pick
        the right item out of many by inner product.
        """

        def __init__(self, user_tower: Any, item_tower: Any, temperature: float | None = 0.1,
                     candidates: Any = None, remove_accidental_hits: bool = False) -> None:
            """Wire the towers to the retrieval task.

            Args:
                user_tower: Keras model from a feature dict to ``[B, D]`` embeddings.
                item_tower: Keras model from a feature dict to ``[B, D]`` embeddings.
                temperature: Softmax temperature (``None`` = 1).
                candidates: Optional ``tf.data.Dataset`` of item embeddings for FactorizedTopK
                    metrics; ``None`` (default) skips them because they score the whole
                    catalogue on every evaluation batch.
                remove_accidental_hits: Drop in-batch "negatives" that are the positive item
                    itself (popular items appear twice in a batch); needs ``item_id``.
            """
            super().__init__()
            self.user_tower = user_tower
            self.item_tower = item_tower
            metrics = None
            if candidates is not None:
                metrics = tfrs_mod.metrics.FactorizedTopK(
                    candidates=tfrs_mod.layers.factorized_top_k.BruteForce().index_from_dataset(
                        candidates))
            self.remove_accidental_hits = remove_accidental_hits
            self.task = tfrs_mod.tasks.Retrieval(
                metrics=metrics, temperature=temperature,
                remove_accidental_hits=remove_accidental_hits)

        @staticmethod
        def _select(features: dict[str, Any], model: Any) -> dict[str, Any]:
            # Give each tower only its own inputs: the batch carries both towers' features.
            return {name: features[name] for name in model.input_names}

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            """Sum over the batch of softmax cross-entropy of each user's own item."""
            user_emb = self.user_tower(self._select(features, self.user_tower), training=training)
            item_emb = self.item_tower(self._select(features, self.item_tower), training=training)
            ids = features.get("item_id") if self.remove_accidental_hits else None
            return self.task(user_emb, item_emb, candidate_ids=ids,
                             compute_metrics=not training)

        def call(self, features: dict[str, Any], training: bool = False) -> Any:
            """Score of each row's (user, item) pair; handy for debugging, not used in serving."""
            user_emb = self.user_tower(self._select(features, self.user_tower), training=training)
            item_emb = self.item_tower(self._select(features, self.item_tower), training=training)
            return tf.reduce_sum(user_emb * item_emb, axis=-1)

    return TwoTowerModel


def build_two_tower(contract: Contract, train_df: pd.DataFrame, config: ModelConfig) -> Any:
    """Build (not train) the two-tower model with normalisation fitted on ``train_df``.

    Args:
        contract: Feature contract; decides every input.
        train_df: Training rows of ``retrieval.parquet`` (ids + both towers' features).
        config: Hyper-parameters.

    Returns:
        A compiled-ready ``TwoTowerModel`` with ``user_tower`` / ``item_tower`` attributes.
    """
    u_specs, i_specs = user_inputs(contract), item_inputs(contract)
    user = build_tower(u_specs, fit_stats(train_df, u_specs), config, "user_tower")
    item = build_tower(i_specs, fit_stats(train_df, i_specs), config, "item_tower")
    return two_tower_model_class()(user, item, temperature=config.temperature)
