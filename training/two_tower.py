"""Two-tower retrieval model trained with an in-batch softmax (``tfrs.tasks.Retrieval``).

The user tower sees ``user_id`` + the ``two_tower_user`` FeatureService, the item tower
``item_id`` + ``two_tower_item``. Both end in an L2 normalisation so that the inner product the
FAISS index uses at serving time is a cosine similarity, bounded and comparable across users.

Options (:class:`training.two_tower_options.TwoTowerOptions`): logQ sampling-bias correction and
mixed negatives (:mod:`training.two_tower_sampling`), accidental-hit removal, and the user tower:
``pooled`` (one ``[B, D]`` vector; an item history, when the user inputs have one, is pooled
over the item tower's own embeddings with recency-position vectors,
:mod:`training.two_tower_inputs`) or ``multi_interest`` (``[B, K, D]``,
:mod:`training.multi_interest`; an item's score is its max over the K interests; needs such a
history).
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

from shoprec.contract import ITEM_TOWER, USER_TOWER, Contract
from shoprec.tf_runtime import tensorflow, tfrs
from training.config import ModelConfig
from training.preprocessing import InputSpec, Stats, fit_stats, model_inputs
from training.two_tower_inputs import embedding_tables, encode_tower, tower_keras_inputs
from training.two_tower_options import TwoTowerOptions


def user_inputs(contract: Contract) -> list[InputSpec]:
    """Raw inputs of the user tower (= its SavedModel signature, in order)."""
    return model_inputs(contract, USER_TOWER, ("user_id",))


def item_inputs(contract: Contract) -> list[InputSpec]:
    """Raw inputs of the item tower (= its SavedModel signature, in order)."""
    return model_inputs(contract, ITEM_TOWER, ("item_id",))


def build_tower(specs: list[InputSpec], stats: Stats, config: ModelConfig, name: str,
                shared: dict[str, Any] | None = None) -> Any:
    """A functional Keras tower: raw dict inputs → unit-norm ``[B, embedding_dim]`` float32.

    Functional (not subclassed) so that it can be built without defining classes at import
    time, and so its input names are exactly the contract names. ``shared`` are the other
    tower's embedding tables that histories targeting its inputs reuse.
    """
    tf = tensorflow()
    inputs = tower_keras_inputs(specs)
    x = encode_tower(inputs, specs, stats, config, name, shared)
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
        batch (plus, optionally, uniformly sampled catalogue items) act as negatives. That is
        cheap and matches the serving task: pick the right item out of many by inner product.
        """

        def __init__(self, user_tower: Any, item_tower: Any, temperature: float | None = 0.1,
                     candidates: Any = None, remove_accidental_hits: bool = False,
                     sampler: Any = None, item_id: str = "item_id") -> None:
            """Wire the towers to the retrieval task.

            Args:
                user_tower: Keras model from a feature dict to ``[B, D]`` (or ``[B, K, D]``)
                    embeddings.
                item_tower: Keras model from a feature dict to ``[B, D]`` embeddings.
                temperature: Softmax temperature (``None`` = 1).
                candidates: Optional ``tf.data.Dataset`` of item embeddings for FactorizedTopK
                    metrics; ``None`` (default) skips them because they score the whole
                    catalogue on every evaluation batch.
                remove_accidental_hits: Drop candidates that are the row's positive item itself
                    (popular items appear twice in a batch); needs ``item_id``.
                sampler: A :func:`training.two_tower_sampling.candidate_sampler_class` instance
                    adding mixed negatives and/or sampling probabilities; ``None`` = plain
                    in-batch softmax.
                item_id: Name of the item id input (candidate ids for the two options above).
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
            self.sampler = sampler
            self.item_id = item_id
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
            ids = features.get(self.item_id)
            cands, cand_ids, prob = item_emb, ids, None
            if self.sampler is not None:
                cands, cand_ids, prob = self.sampler(item_emb, ids, self.item_tower, training)
            return self.task(user_emb, cands, candidate_sampling_probability=prob,
                             candidate_ids=cand_ids if self.remove_accidental_hits else None,
                             compute_metrics=not training)

        def call(self, features: dict[str, Any], training: bool = False) -> Any:
            """Score of each row's (user, item) pair (max over interests); not used in serving."""
            user_emb = self.user_tower(self._select(features, self.user_tower), training=training)
            item_emb = self.item_tower(self._select(features, self.item_tower), training=training)
            if len(user_emb.shape) == 3:
                return tf.reduce_max(tf.einsum("bkd,bd->bk", user_emb, item_emb), axis=-1)
            return tf.reduce_sum(user_emb * item_emb, axis=-1)

    return TwoTowerModel


def build_sampler(train_df: pd.DataFrame, item_specs: list[InputSpec],
                  options: TwoTowerOptions, catalogue: pd.DataFrame | None = None) -> Any:
    """The candidate sampler the options ask for, or ``None`` for plain in-batch softmax.

    Item frequencies are counted over ``train_df``'s item ids; mixed negatives are drawn from
    ``catalogue`` (every serving item with its item-tower inputs) or, without one, from the
    distinct items of ``train_df``.
    """
    from training.two_tower_sampling import (
        ItemFrequency,
        candidate_sampler_class,
        catalogue_arrays,
    )

    if not options.logq_correction and not options.mixed_negatives:
        return None
    id_name = item_specs[0].name
    freq = (ItemFrequency().update(train_df[id_name].to_numpy())
            if options.logq_correction else None)
    source = catalogue if catalogue is not None else train_df
    return candidate_sampler_class()(freq, catalogue_arrays(source, item_specs),
                                     options.mixed_negatives, options.logq_weight, options.seed)


def build_two_tower(contract: Contract, train_df: pd.DataFrame, config: ModelConfig,
                    options: TwoTowerOptions | None = None,
                    catalogue: pd.DataFrame | None = None, *,
                    user_specs: list[InputSpec] | None = None) -> Any:
    """Build (not train) the two-tower model with normalisation fitted on ``train_df``.

    Args:
        contract: Feature contract; decides every input.
        train_df: Training rows of ``retrieval.parquet`` (ids + both towers' features).
        config: Hyper-parameters.
        options: Sampling and user-tower switches (defaults: :class:`TwoTowerOptions`).
        catalogue: Every catalogue item with its item-tower inputs, the pool of mixed negatives
            (default: the distinct items of ``train_df``).
        user_specs: User-tower inputs instead of :func:`user_inputs` (the recall harness adds
            a behaviour history built from interaction data this way).

    Returns:
        A compiled-ready ``TwoTowerModel`` with ``user_tower`` / ``item_tower`` attributes.

    Raises:
        ValueError: for ``multi_interest`` without a user input that is an item-id history.
    """
    from training.multi_interest import build_multi_interest_tower

    opts = options or TwoTowerOptions()
    u_specs = user_specs if user_specs is not None else user_inputs(contract)
    i_specs = item_inputs(contract)
    item = build_tower(i_specs, fit_stats(train_df, i_specs), config, "item_tower")
    shared = embedding_tables(item, i_specs, "item_tower")
    u_stats = fit_stats(train_df, u_specs)
    if opts.user_tower == "multi_interest":
        user = build_multi_interest_tower(
            u_specs, u_stats, config, shared, i_specs[0].name, num_interests=opts.num_interests,
            attention_units=opts.attention_units)
    else:
        user = build_tower(u_specs, u_stats, config, "user_tower", shared)
    return two_tower_model_class()(
        user, item, temperature=config.temperature,
        remove_accidental_hits=opts.remove_accidental_hits,
        sampler=build_sampler(train_df, i_specs, opts, catalogue), item_id=i_specs[0].name)
