"""Deep & Cross Network ranker: click probability of a (user, item) pair.

Cross layers model explicit feature interactions (e.g. "user's top category == item category")
that a plain MLP learns slowly; the deep MLP stacked on top adds capacity. The network outputs a
logit; the loss uses it directly (``from_logits``) for numerical stability and ``call`` returns
the sigmoid, which is what the exported ``score`` is.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

from shoprec.contract import RANKER, Contract
from shoprec.tf_runtime import tensorflow, tfrs
from training.config import ModelConfig
from training.preprocessing import InputSpec, Stats, encode, fit_stats, keras_inputs, model_inputs


def ranker_inputs(contract: Contract) -> list[InputSpec]:
    """Raw inputs of the ranker (= its SavedModel signature, in order)."""
    return model_inputs(contract, RANKER, ("user_id", "item_id"))


def build_ranker_network(specs: list[InputSpec], stats: Stats, config: ModelConfig) -> Any:
    """Functional network: raw dict inputs → ``[B]`` logits (x0 → cross×N → deep MLP → 1)."""
    tf = tensorflow()
    cross_cls = tfrs().layers.dcn.Cross
    inputs = keras_inputs(specs)
    x0 = encode(inputs, specs, stats, id_dim=config.cat_embedding_dim,
                cat_dim=config.cat_embedding_dim, prefix="ranker")
    x = x0
    for i in range(config.cross_layers):
        x = cross_cls(name=f"ranker_cross{i}")(x0, x)
    for i, units in enumerate(config.deep_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"ranker_deep{i}")(x)
    logit = tf.keras.layers.Dense(1, name="ranker_logit")(x)
    logit = tf.keras.layers.Reshape((), name="ranker_squeeze")(logit)
    return tf.keras.Model(inputs=inputs, outputs=logit, name="ranker_network")


@functools.cache
def dcn_model_class() -> type:
    """The ``tfrs.Model`` subclass, defined on first use so importing this module stays TF-free."""
    tf = tensorflow()
    tfrs_mod = tfrs()

    class DCNRanker(tfrs_mod.models.Model):
        """DCN network + ``tfrs.tasks.Ranking`` with binary cross-entropy on the click label."""

        def __init__(self, network: Any, label: str = "label") -> None:
            """Wrap a logit network.

            Args:
                network: Keras model from a feature dict to ``[B]`` logits.
                label: Name of the 0/1 label column in the training batches.
            """
            super().__init__()
            self.network = network
            self.label = label
            self.task = tfrs_mod.tasks.Ranking(
                loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                metrics=[tf.keras.metrics.AUC(from_logits=True, name="auc")])

        def logits(self, features: dict[str, Any], training: bool = False) -> Any:
            """Raw logits; the network sees only its own inputs (not the label)."""
            feats = {name: features[name] for name in self.network.input_names}
            return self.network(feats, training=training)

        def call(self, features: dict[str, Any], training: bool = False) -> Any:
            """Click probability, ``[B]`` float32."""
            return tf.sigmoid(self.logits(features, training=training))

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            """Mean binary cross-entropy of the logits against the label."""
            labels = tf.cast(features[self.label], tf.float32)
            return self.task(labels=labels[:, None],
                             predictions=self.logits(features, training=training)[:, None],
                             compute_metrics=not training)

    return DCNRanker


def build_ranker(contract: Contract, train_df: pd.DataFrame, config: ModelConfig) -> Any:
    """Build (not train) the DCN ranker with normalisation fitted on ``train_df``."""
    specs = ranker_inputs(contract)
    network = build_ranker_network(specs, fit_stats(train_df, specs), config)
    return dcn_model_class()(network, label=contract.label)
