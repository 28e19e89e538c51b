"""DCN: the cross layer on a hand-checked input, and the ranker's structure and loss."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.contract import CONTRACT
from shoprec.tf_runtime import tensorflow, tfrs
from training.config import ModelConfig
from training.dcn import build_ranker, ranker_inputs
from training.preprocessing import to_feature_dict


def test_cross_layer_matches_hand_computation() -> None:
    tf = tensorflow()
    cross = tfrs().layers.dcn.Cross()
    x0 = np.array([[1.0, 2.0]], np.float32)
    x = np.array([[3.0, -1.0]], np.float32)
    cross(x0, x)  # build
    w = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)  # Dense kernel: y = x @ w + b
    b = np.array([0.1, -0.2], np.float32)
    cross.set_weights([w, b])
    out = cross(tf.constant(x0), tf.constant(x)).numpy()
    # x @ w + b = [3*1 + -1*.5 + .1, 3*2 + -1*-1 - .2] = [2.6, 6.8]
    # x0 * (.) + x = [1*2.6 + 3, 2*6.8 - 1] = [5.6, 12.6]
    np.testing.assert_allclose(out, [[5.6, 12.6]], rtol=1e-6)


def test_ranker_has_two_cross_layers_and_outputs_probabilities(toy_data) -> None:
    tf = tensorflow()
    ranker = build_ranker(CONTRACT, toy_data.ranker, ModelConfig())
    crosses = [la for la in ranker.network.layers if isinstance(la, tfrs().layers.dcn.Cross)]
    assert len(crosses) == 2
    batch = toy_data.ranker.head(16)
    feats = to_feature_dict(batch, ranker_inputs(CONTRACT))
    p = ranker(feats).numpy()
    assert p.shape == (16,) and ((p > 0) & (p < 1)).all()

    labels = batch["label"].to_numpy().astype(np.float64)
    loss = float(ranker.compute_loss({**feats, "label": tf.constant(labels)}, training=True))
    logits = ranker.logits(feats).numpy().astype(np.float64)
    q = 1 / (1 + np.exp(-logits))
    expected = -np.mean(labels * np.log(q) + (1 - labels) * np.log(1 - q))
    assert loss == pytest.approx(expected, rel=1e-4)

