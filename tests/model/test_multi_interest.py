"""Multi-interest user tower: attention by hand, masking, max-over-interests loss, export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shoprec.tf_runtime import tensorflow
from training.config import ModelConfig
from training.export import call_saved, export_tower
from training.multi_interest import build_multi_interest_tower, multi_interest_layer_class
from training.preprocessing import InputSpec, fit_stats
from training.two_tower import build_tower, two_tower_model_class
from training.two_tower_inputs import embedding_tables, tower_feature_dict

# Hand-built inputs with tiny vocabularies (the contract's conventions: newest last, pad -1/0.0).
USER_SPECS = [InputSpec("user_id", "int64", "id", 50),
              InputSpec("u_n", "int64", "count"),
              InputSpec("u_hist", "int64", "sequence", 50, 4, "item_id", default=-1)]
ITEM_SPECS = [InputSpec("item_id", "int64", "id", 20), InputSpec("i_cat", "int64",
                                                                  "categorical", 5)]
CFG = ModelConfig(embedding_dim=4, id_embedding_dim=4, cat_embedding_dim=2, tower_units=(8,))


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [1, 2, 3], "u_n": [3, 0, 1], "item_id": [4, 5, 6], "i_cat": [0, 1, 2],
        "u_hist": [[7, 8, 9], [], [3]]})


def _towers(k: int = 3):
    tf = tensorflow()
    tf.keras.utils.set_random_seed(0)
    df = _frame()
    item = build_tower(ITEM_SPECS, fit_stats(df, ITEM_SPECS), CFG, "item_tower")
    shared = embedding_tables(item, ITEM_SPECS, "item_tower")
    user = build_multi_interest_tower(USER_SPECS, fit_stats(df, USER_SPECS), CFG, shared,
                                      "item_id", num_interests=k, attention_units=4)
    return user, item, df


def test_attention_by_hand_ignores_pads_and_gives_cold_users_nothing() -> None:
    tf = tensorflow()
    layer = multi_interest_layer_class()(2, 2)
    # Row 0: a pad (huge embedding, must get no weight) then h1 = e1, h2 = e2. Row 1: all pad.
    history = np.array([[[5.0, 5.0], [1.0, 0.0], [0.0, 1.0]], [[3.0, 3.0]] * 3], np.float32)
    mask = np.array([[0, 1, 1], [0, 0, 0]], np.float32)
    layer([tf.constant(history), tf.constant(mask)])  # builds the weights
    layer.set_weights([np.eye(2), np.eye(2), np.zeros((3, 2))])  # w1, w2, positions
    out = layer([tf.constant(history), tf.constant(mask)]).numpy()
    # Head 0 scores tanh(h[0]): h1 -> tanh(1), h2 -> 0; softmax -> a = e^t / (e^t + 1).
    a = np.exp(np.tanh(1.0)) / (np.exp(np.tanh(1.0)) + 1.0)
    assert a == pytest.approx(0.6817, abs=1e-4)
    np.testing.assert_allclose(out[0], [[a, 1 - a], [1 - a, a]], rtol=1e-5)
    np.testing.assert_array_equal(out[1], np.zeros((2, 2)))


def test_tower_emits_k_unit_vectors_and_shares_the_item_table() -> None:
    user, item, df = _towers(k=3)
    emb = user(tower_feature_dict(df, USER_SPECS)).numpy()
    assert emb.shape == (3, 3, 4)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, rtol=1e-5)
    # The cold user (row 1, empty history) gets K identical interests.
    np.testing.assert_allclose(emb[1, 0], emb[1, 2], atol=1e-6)
    assert not np.allclose(emb[0, 0], emb[0, 1], atol=1e-6)  # a history separates them
    (item_table,) = [w for w in item.weights if "item_tower_item_id_emb" in w.name]
    assert any(w is item_table for w in user.weights)  # history uses the item's own vectors


def test_pad_embedding_does_not_reach_the_interests() -> None:
    tf = tensorflow()
    user, item, df = _towers()
    feats = tower_feature_dict(df, USER_SPECS)
    np.testing.assert_array_equal(feats["u_hist"][2], [-1, -1, -1, 3])  # left-padded
    hashing = tf.keras.layers.Hashing(num_bins=20)
    pad_bucket = int(hashing(tf.constant([-1], tf.int64))[0])
    real = hashing(tf.constant([3, 7, 8, 9], tf.int64)).numpy()
    assert pad_bucket not in real  # otherwise the check below would move a real item too
    base = user(feats).numpy()
    (table,) = [w for w in item.weights if "item_tower_item_id_emb" in w.name]
    table.assign(tf.tensor_scatter_nd_update(table, [[pad_bucket]], [[50.0, -50.0, 9.0, 9.0]]))
    np.testing.assert_allclose(user(feats).numpy(), base, atol=1e-6)
    feats["u_hist"][2] = [11, -1, -1, 3]  # a real item where there was a pad: row 2 changes
    changed = user(feats).numpy()
    np.testing.assert_allclose(changed[:2], base[:2], atol=1e-6)
    assert not np.allclose(changed[2], base[2], atol=1e-4)


def test_loss_scores_each_candidate_by_its_best_interest() -> None:
    tf = tensorflow()
    users = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [-1.0, 0.0]]])  # [B=2, K=2, D=2]
    items = np.array([[0.0, 1.0], [0.6, -0.8]])

    def fixed(name: str, table: np.ndarray):
        inp = tf.keras.Input(shape=(), dtype=tf.int64, name=name)
        const = tf.constant(table, dtype=tf.float32)
        return tf.keras.Model(inp, tf.keras.layers.Lambda(lambda i: tf.gather(const, i))(inp))

    model = two_tower_model_class()(fixed("user_id", users), fixed("item_id", items),
                                    temperature=0.5)
    batch = {"user_id": tf.constant([0, 1], tf.int64), "item_id": tf.constant([0, 1], tf.int64)}
    loss = float(model.compute_loss(batch, training=True))
    scores = np.einsum("bkd,cd->bkc", users, items).max(axis=1) / 0.5
    # User 0: item 0 by interest 1 (1.0), item 1 by interest 0 (0.6 vs -0.8). User 1: item 0
    # by interest 0 (0.8 vs 0), item 1: max(0.36 - 0.64, -0.6) = -0.28.
    np.testing.assert_allclose(scores, [[2.0, 1.2], [1.6, -0.56]], atol=1e-9)
    log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-np.trace(log_p), rel=1e-5)
    np.testing.assert_allclose(model(batch).numpy(), [1.0, -0.28], atol=1e-6)


def test_export_returns_b_k_d_and_needs_an_item_history(tmp_path) -> None:
    user, _, df = _towers(k=2)
    feats = tower_feature_dict(df, USER_SPECS)
    path = export_tower(user, USER_SPECS, tmp_path / "user_tower")
    got = call_saved(path, feats)
    assert got.shape == (3, 2, 4)
    np.testing.assert_allclose(got, user(feats).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="sequence input with target 'item_id'"):
        build_multi_interest_tower(USER_SPECS[:2], {}, CFG, {}, "item_id", num_interests=2,
                                   attention_units=2)
