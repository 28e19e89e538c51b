"""Ranker building blocks against hand computations (numpy, written from the papers' formulas)."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.tf_runtime import tensorflow
from training.rankers.inputs import SeqGroup, masked_mean
from training.rankers.layers import bi_interaction, dice_class, fm_second_order
from training.rankers.pnn import inner_products, outer_product
from training.rankers.sequence import (
    attention_side,
    augru_class,
    din_attention_class,
    masked_softmax,
)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_fm_second_order_on_two_fields() -> None:
    fields = np.array([[[1.0, 2.0], [3.0, -1.0]]], np.float32)  # v1, v2 of one example
    # <v1, v2> = 1*3 + 2*(-1) = 1 ; NFM keeps the element-wise product [3, -2].
    np.testing.assert_allclose(fm_second_order(fields).numpy(), [1.0], rtol=1e-6)
    np.testing.assert_allclose(bi_interaction(fields).numpy(), [[3.0, -2.0]], rtol=1e-6)


def test_fm_second_order_equals_sum_over_pairs() -> None:
    v = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    pairs = sum(np.sum(v[:, i] * v[:, j], axis=-1) for i in range(4) for j in range(i + 1, 4))
    np.testing.assert_allclose(fm_second_order(v).numpy(), pairs, rtol=1e-5)


def test_pnn_products_by_hand() -> None:
    fields = np.array([[[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]]], np.float32)
    # pairs (0,1), (0,2), (1,2): 3-2=1, .5+1=1.5, 1.5-.5=1
    np.testing.assert_allclose(inner_products(fields).numpy(), [[1.0, 1.5, 1.0]], rtol=1e-6)
    f = np.array([4.5, 1.5])  # sum of the fields
    np.testing.assert_allclose(outer_product(fields).numpy(), [np.outer(f, f).ravel()],
                               rtol=1e-6)


def test_masked_pooling_and_softmax_ignore_pads() -> None:
    values = np.array([[[9.0], [1.0], [3.0]], [[9.0], [9.0], [9.0]]], np.float32)
    mask = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
    # Row 0: mean of 1 and 3; row 1 (cold start): no real position → 0, not 9.
    np.testing.assert_allclose(masked_mean(values, mask).numpy(), [[2.0], [0.0]])
    scores = np.array([[50.0, 0.0, np.log(3.0)], [1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_allclose(masked_softmax(scores, mask).numpy(),
                               [[0.0, 0.25, 0.75], [0.0, 0.0, 0.0]], atol=1e-6)


def test_din_activation_unit_by_hand_and_pad_weight_is_zero() -> None:
    tf = tensorflow()
    att = din_attention_class()((2,), "prelu")
    q = np.array([[1.0, -1.0]], np.float32)
    keys = np.array([[[0.5, 1.0], [2.0, 2.0], [-1.0, 0.0]]], np.float32)
    mask = np.array([[1.0, 0.0, 1.0]], np.float32)
    att(q, keys, mask)  # build
    w1 = np.linspace(-1.0, 1.0, 16, dtype=np.float32).reshape(8, 2)
    b1 = np.array([0.1, -0.2], np.float32)
    w2, b2 = np.array([[1.5], [-0.5]], np.float32), np.array([0.3], np.float32)
    att.unit.dense[0].set_weights([w1, b1])
    att.score.set_weights([w2, b2])
    pooled, weights = att(tf.constant(q), tf.constant(keys), tf.constant(mask))

    x = np.concatenate([np.broadcast_to(q[:, None], keys.shape), keys, q[:, None] - keys,
                        q[:, None] * keys], axis=-1)
    hidden = np.maximum(x @ w1 + b1, 0.0)  # PReLU starts with alpha = 0, i.e. ReLU
    expected_w = (hidden @ w2 + b2)[..., 0] * mask
    np.testing.assert_allclose(weights.numpy(), expected_w, rtol=1e-5, atol=1e-6)
    assert weights.numpy()[0, 1] == 0.0
    np.testing.assert_allclose(pooled.numpy(), (expected_w[..., None] * keys).sum(axis=1),
                               rtol=1e-5, atol=1e-6)
    # Whatever sits in the padded slot, the output does not move.
    garbage = keys.copy()
    garbage[0, 1] = [100.0, -50.0]
    pooled2, weights2 = att(tf.constant(q), tf.constant(garbage), tf.constant(mask))
    np.testing.assert_array_equal(pooled2.numpy(), pooled.numpy())
    np.testing.assert_array_equal(weights2.numpy(), weights.numpy())

    # softmax pooling: the same scores, normalised over the two real positions only
    soft = din_attention_class()((2,), "prelu", pooling="softmax")
    soft(q, keys, mask)
    soft.unit.dense[0].set_weights([w1, b1])
    soft.score.set_weights([w2, b2])
    pooled3, weights3 = soft(tf.constant(q), tf.constant(garbage), tf.constant(mask))
    e = np.exp(expected_w[0, [0, 2]] - expected_w[0, [0, 2]].max())
    expected_soft = np.array([[e[0] / e.sum(), 0.0, e[1] / e.sum()]])
    np.testing.assert_allclose(weights3.numpy(), expected_soft, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled3.numpy(), (expected_soft[..., None] * keys).sum(axis=1),
                               rtol=1e-5, atol=1e-6)



def test_din_split_first_layer_equals_the_concatenated_input() -> None:
    """Side inputs, recency slots and two hidden layers: x W on the concat, by NumPy."""
    tf = tensorflow()
    rng = np.random.default_rng(3)
    b, length, d, s = 4, 5, 3, 2
    att = din_attention_class()((6, 4), "prelu", positions=length, position_dim=2)
    q = rng.normal(size=(b, d)).astype(np.float32)
    keys = rng.normal(size=(b, length, d)).astype(np.float32)
    side = rng.normal(size=(b, length, s)).astype(np.float32)
    mask = (rng.random((b, length)) < 0.8).astype(np.float32)
    _, weights = att(tf.constant(q), tf.constant(keys), tf.constant(mask), tf.constant(side))
    w1, b1 = att.unit.dense[0].get_weights()
    assert w1.shape == (4 * d + s + 2, 6)  # the kernel the concatenated input would have
    w2, b2 = att.unit.dense[1].get_weights()
    w3, b3 = att.score.get_weights()
    pos = att.position_table.get_weights()[0]
    qb = np.broadcast_to(q[:, None], keys.shape)
    x = np.concatenate([qb, keys, qb - keys, qb * keys, side,
                        np.broadcast_to(pos[None], (b, length, 2))], axis=-1)
    hidden = np.maximum(np.maximum(x @ w1 + b1, 0.0) @ w2 + b2, 0.0)  # PReLU alpha 0 = ReLU
    np.testing.assert_allclose(weights.numpy(), (hidden @ w3 + b3)[..., 0] * mask,
                               rtol=1e-4, atol=1e-5)


def test_din_position_embedding_by_hand_separates_equal_keys() -> None:
    """Two identical behaviours in different slots get different weights through ``p_t``."""
    tf = tensorflow()
    att = din_attention_class()((2,), "prelu", positions=3, position_dim=1)
    q = np.array([[1.0, 0.0]], np.float32)
    keys = np.array([[[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]], np.float32)  # slot 0 is a pad
    mask = np.array([[0.0, 1.0, 1.0]], np.float32)
    att(q, keys, mask)  # build
    w1 = np.zeros((9, 2), np.float32)  # 8 DIN inputs + 1 position width
    w1[8] = [1.0, -1.0]  # only the position reaches the hidden units
    w1[3] = [0.5, 0.0]  # ... and the key's second element
    att.unit.dense[0].set_weights([w1, np.zeros(2, np.float32)])
    att.score.set_weights([np.array([[2.0], [1.0]], np.float32), np.array([0.0], np.float32)])
    att.position_table.set_weights([np.array([[7.0], [-1.0], [3.0]], np.float32)])
    pooled, weights = att(tf.constant(q), tf.constant(keys), tf.constant(mask))
    # slot 1: h = relu([0.5 - 1, 0 + 1]) = [0, 1] -> 2*0 + 1*1 = 1
    # slot 2 (newest): h = relu([0.5 + 3, -3]) = [3.5, 0] -> 7; the pad slot stays 0
    np.testing.assert_allclose(weights.numpy(), [[0.0, 1.0, 7.0]], rtol=1e-6)
    np.testing.assert_allclose(pooled.numpy(), [[8.0, 8.0]], rtol=1e-6)
    with pytest.raises(ValueError, match="history length 2"):
        att(tf.constant(q), tf.constant(keys[:, 1:]), tf.constant(mask[:, 1:]))
    with pytest.raises(ValueError, match="pooling"):
        din_attention_class()((2,), pooling="max")



def test_attention_side_match_flags_by_hand() -> None:
    """Flag = history bucket equals the candidate's, per history, 0 at pads; after gaps."""
    mask = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]], np.float32)
    items = np.array([[5, 5, 3], [2, 9, 2]], np.int64)  # slot 0 of row 0 is a pad (bucket 5)
    cats = np.array([[1, 1, 4], [7, 7, 8]], np.int64)
    gaps = np.array([[[0.0], [0.5], [-1.0]], [[2.0], [1.0], [0.0]]], np.float32)
    group = SeqGroup(names=("h_item", "h_cat"), targets=("item", "cat"), keys=None, query=None,
                     mask=mask, side=gaps, buckets=(items, cats),
                     target_buckets=(np.array([5, 2], np.int64), np.array([4, 8], np.int64)))
    expected = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
                         [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]], np.float32)
    np.testing.assert_array_equal(attention_side(group, True).numpy(),
                                  np.concatenate([gaps, expected], axis=-1))
    assert attention_side(group, False) is gaps
    no_side = SeqGroup(**{**group.__dict__, "side": None})
    np.testing.assert_array_equal(attention_side(no_side, True).numpy(), expected)


def test_augru_one_step_two_units_by_hand() -> None:
    tf = tensorflow()
    layer = augru_class()(2)
    x = np.array([[[1.0, 2.0]]], np.float32)  # B=1, L=1, in=2
    h0 = np.array([[0.5, -0.3]], np.float32)
    layer(x, np.ones((1, 1), np.float32), initial_state=h0)  # build
    kernel = np.array([[0.1, -0.2, 0.3, 0.0, 0.5, -0.1],
                       [0.2, 0.1, -0.4, 0.3, -0.2, 0.2]], np.float32)
    recurrent = np.array([[0.3, 0.1, -0.2, 0.4, 0.1, 0.5],
                          [-0.1, 0.2, 0.6, -0.3, 0.2, -0.4]], np.float32)
    bias = np.array([0.05, -0.05, 0.0, 0.1, -0.1, 0.02], np.float32)
    layer.set_weights([kernel, recurrent, bias])
    a = 0.6

    xi, h = x[0, 0], h0[0]
    wu, wr, wc = kernel[:, 0:2], kernel[:, 2:4], kernel[:, 4:6]
    uu, ur, uc = recurrent[:, 0:2], recurrent[:, 2:4], recurrent[:, 4:6]
    bu, br, bc = bias[0:2], bias[2:4], bias[4:6]
    u = _sigmoid(xi @ wu + h @ uu + bu)
    r = _sigmoid(xi @ wr + h @ ur + br)
    c = np.tanh(xi @ wc + r * (h @ uc) + bc)
    expected = (1 - a * u) * h + a * u * c

    got = layer(tf.constant(x), tf.constant([[a]]), initial_state=tf.constant(h0)).numpy()
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)
    # Score 0 (irrelevant behaviour) and a masked (pad) step both leave the state unchanged.
    np.testing.assert_allclose(layer(x, np.zeros((1, 1)), initial_state=h0).numpy(), h0)
    np.testing.assert_allclose(
        layer(x, np.ones((1, 1)), mask=np.zeros((1, 1)), initial_state=h0).numpy(), h0)


def test_dice_in_training_mode_by_hand() -> None:
    tf = tensorflow()
    dice = dice_class()(epsilon=1e-8)
    x = np.array([[1.0, -2.0], [3.0, 0.0], [-1.0, 4.0], [2.0, 1.0]], np.float32)
    dice(x)  # build
    alpha = np.array([0.25, -0.5], np.float32)
    dice.alpha.assign(alpha)
    p = _sigmoid((x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-8))
    expected = p * x + (1 - p) * alpha * x
    got = dice(tf.constant(x), training=True).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_unknown_activation_is_named() -> None:
    from training.rankers.layers import activation_layer

    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        activation_layer("gelu")
