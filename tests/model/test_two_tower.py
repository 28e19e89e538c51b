"""Two-tower loss checked by hand, and tower output properties."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.contract import CONTRACT
from shoprec.tf_runtime import tensorflow
from training.config import ModelConfig
from training.preprocessing import to_feature_dict
from training.two_tower import build_two_tower, item_inputs, two_tower_model_class, user_inputs


def _fixed_tower(tf, id_name: str, table: np.ndarray):
    """A real Keras model that maps id i to the fixed row ``table[i]`` (no trainable weights)."""
    inp = tf.keras.Input(shape=(), dtype=tf.int64, name=id_name)
    const = tf.constant(table, dtype=tf.float32)
    out = tf.keras.layers.Lambda(lambda ids: tf.gather(const, ids))(inp)
    return tf.keras.Model(inp, out)


def _softmax_ce_sum(scores: np.ndarray) -> float:
    """Sum over rows of -log softmax(scores)[i, i] (positives on the diagonal)."""
    z = scores - scores.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.trace(log_p))


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_compute_loss_matches_hand_computed_in_batch_softmax(temperature: float) -> None:
    tf = tensorflow()
    users = np.array([[1.0, 0.0], [0.6, 0.8]])
    items = np.array([[0.8, 0.6], [0.0, 1.0]])
    model = two_tower_model_class()(_fixed_tower(tf, "user_id", users),
                                    _fixed_tower(tf, "item_id", items), temperature=temperature)
    batch = {"user_id": tf.constant([0, 1], tf.int64), "item_id": tf.constant([0, 1], tf.int64),
             "unused_feature": tf.constant([7, 7], tf.int64)}
    loss = float(model.compute_loss(batch, training=True))

    # scores[u, i] = <user_u, item_i> / T: [[0.8, 0.0], [0.96, 0.8]] / T
    scores = users @ items.T / temperature
    expected = _softmax_ce_sum(scores)
    # Spelled out for T = 1: -log(e^.8/(e^.8+e^0)) - log(e^.8/(e^.96+e^.8))
    if temperature == 1.0:
        assert expected == pytest.approx(
            -np.log(np.exp(0.8) / (np.exp(0.8) + 1)) - np.log(np.exp(0.8) / (np.exp(0.96) +
                                                                              np.exp(0.8))))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_towers_emit_unit_vectors_and_accept_unseen_raw_values(toy_data) -> None:
    df = toy_data.retrieval
    model = build_two_tower(CONTRACT, df, ModelConfig(embedding_dim=8))
    raw = df.head(4).copy()
    raw["user_id"] = [10**12, -5, 0, 3]  # never seen, negative, small: all must hash
    raw["u_top_category"] = -1  # contract default for cold users
    raw["u_clicks_30d"] = [0, -1, 10**9, 5]  # a negative count must not produce NaN
    emb = model.user_tower(to_feature_dict(raw, user_inputs(CONTRACT))).numpy()
    item_emb = model.item_tower(to_feature_dict(raw, item_inputs(CONTRACT))).numpy()
    assert emb.shape == (4, 8) and item_emb.shape == (4, 8)
    assert np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(item_emb, axis=1), 1.0, rtol=1e-5)


def test_tower_inputs_follow_contract() -> None:
    u = [s.name for s in user_inputs(CONTRACT)]
    i = [s.name for s in item_inputs(CONTRACT)]
    assert u == ["user_id", *(f.name for f in CONTRACT.service_features("two_tower_user"))]
    assert i == ["item_id", *(f.name for f in CONTRACT.service_features("two_tower_item"))]
