"""Every ranker: builds, learns in one step, and scores identically after save → reload.

Tiny inputs built straight from ``InputSpec`` (vocab 50, dim 4, max_len 5, 12 rows) with made-up
names, so nothing here depends on the contract's feature names. The label is separable through
a feature interaction: click iff the user's category equals the item's category.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec
from training.rankers import RANKERS, RankerConfig, build_ranker_model, default_tasks
from training.rankers.export import export_ranker_model, load_and_score

VOCAB, MAX_LEN, ROWS = 50, 5, 12
CONFIG = RankerConfig(embedding_dim=4, hidden_units=(8,), attention_units=(4,), gru_units=3,
                      n_experts=2, tower_units=(4,), projection_dim=2, learning_rate=0.01)


def tiny_specs() -> list[InputSpec]:
    """Ids, categories, a count, a numeric, two target histories and a float history."""
    return [InputSpec("u", "int64", "id", VOCAB), InputSpec("i", "int64", "id", VOCAB),
            InputSpec("u_cat", "int64", "categorical", VOCAB),
            InputSpec("i_cat", "int64", "categorical", VOCAB),
            InputSpec("n", "int64", "count"), InputSpec("price", "float64", "numeric"),
            InputSpec("hist_i", "int64", "sequence", VOCAB, MAX_LEN, "i"),
            InputSpec("hist_cat", "int64", "sequence", VOCAB, MAX_LEN, "i_cat"),
            InputSpec("hist_gap", "float64", "sequence", 0, MAX_LEN)]


STATS = {"n": (1.2, 0.6), "price": (5.0, 8.0), "hist_gap": (1.5, 0.8)}


def tiny_batch(seed: int = 0, rows: int = ROWS) -> tuple[dict[str, np.ndarray],
                                                         dict[str, np.ndarray]]:
    """Raw features (contract dtypes, left-padded histories) and ctr/cvr labels."""
    rng = np.random.default_rng(seed)
    f = {"u": rng.integers(0, 30, rows), "i": rng.integers(0, 30, rows),
         "u_cat": rng.integers(0, 3, rows), "i_cat": rng.integers(0, 3, rows),
         "n": rng.integers(0, 9, rows), "price": rng.random(rows) * 10}
    lengths = rng.integers(0, MAX_LEN + 1, rows)
    lengths[0] = 0  # a cold-start user: every history position is a pad
    pad = np.arange(MAX_LEN)[None, :] < (MAX_LEN - lengths)[:, None]
    f["hist_i"] = np.where(pad, -1, rng.integers(0, 30, (rows, MAX_LEN)))
    f["hist_cat"] = np.where(pad, -1, rng.integers(0, 3, (rows, MAX_LEN)))
    f["hist_gap"] = np.where(pad, 0.0, rng.random((rows, MAX_LEN)) * 3 + 0.1)
    f = {k: v.astype(np.float64 if k in ("price", "hist_gap") else np.int64) for k, v in f.items()}
    click = (f["u_cat"] == f["i_cat"]).astype(np.float32)
    buy = click * (f["price"] < 5).astype(np.float32)
    return f, {"ctr": click, "cvr": buy}


def _build(name: str, **overrides: object) -> object:
    config = dataclasses.replace(CONFIG, **overrides)
    return build_ranker_model(name, tiny_specs(), STATS, config, default_tasks(name))


@pytest.mark.parametrize("name", RANKERS)
def test_ranker_learns_and_reloads_identically(name: str, tmp_path: Path) -> None:
    tf = tensorflow()
    feats, labels = tiny_batch()
    model = _build(name)
    assert model.tasks == default_tasks(name)
    probs = model(feats)
    expected_keys = set(model.tasks) | ({"ctcvr"} if name == "esmm" else set())
    assert set(probs) == expected_keys
    for p in probs.values():
        assert p.shape == (ROWS,) and np.all((p.numpy() > 0) & (p.numpy() < 1))

    before = float(model.compute_loss((feats, labels), training=False))
    model.compile(optimizer=tf.keras.optimizers.Adam(CONFIG.learning_rate))
    with tf.GradientTape() as tape:
        loss = model.compute_loss((feats, labels), training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    unused = [v.name for v, g in zip(model.trainable_variables, grads, strict=True) if g is None]
    assert unused == [], f"{name}: variables outside the loss graph: {unused}"
    model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    after = float(model.compute_loss((feats, labels), training=False))
    assert np.isfinite(before) and after < before, (name, before, after)

    # Export after training, score rows the model never saw (fresh ids, other histories).
    fresh, _ = tiny_batch(seed=1, rows=7)
    reference = {k: v.numpy() for k, v in model(fresh).items()}
    path = export_ranker_model(model, tiny_specs(), tmp_path / name)
    got = load_and_score(path, fresh)
    assert set(got) == {"score"} | expected_keys
    for key, value in reference.items():
        np.testing.assert_allclose(got[key], value, atol=1e-6, rtol=0)
    np.testing.assert_allclose(got["score"], reference["ctr"], atol=1e-6, rtol=0)


def test_fit_runs_compiled_train_step_with_aux_loss() -> None:
    """Keras ``fit`` (graph mode, random in-batch negatives) on DIEN, as the trainer runs it."""
    tf = tensorflow()
    feats, labels = tiny_batch()
    model = _build("dien")
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    ds = tf.data.Dataset.from_tensor_slices((feats, labels)).batch(5)
    history = model.fit(ds, epochs=1, verbose=0).history
    assert all(np.isfinite(history["loss"]))
    assert np.isfinite(model.evaluate(ds, verbose=0, return_dict=True)["ctr_auc"])


def test_din_with_dice_trains() -> None:
    tf = tensorflow()
    feats, labels = tiny_batch()
    model = _build("din", dice=True)
    model(feats)
    start = [v.numpy().copy() for v in model.trainable_variables]
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    metrics = model.train_step((feats, labels))
    assert np.isfinite(float(metrics["loss"]))
    changed = [not np.array_equal(a, v.numpy()) for a, v in zip(start, model.trainable_variables,
                                                                 strict=True)]
    assert all(changed)


def test_esmm_ctcvr_is_product_and_loss_is_over_entire_space() -> None:
    feats, labels = tiny_batch()
    model = _build("esmm")
    out = {k: v.numpy().astype(np.float64) for k, v in model(feats).items()}
    np.testing.assert_allclose(out["ctcvr"], out["ctr"] * out["cvr"], rtol=1e-6)

    def bce(y: np.ndarray, p: np.ndarray) -> float:
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    expected = bce(labels["ctr"], out["ctr"]) + bce(labels["ctr"] * labels["cvr"], out["ctcvr"])
    got = float(model.compute_loss((feats, labels), training=False))
    assert got == pytest.approx(expected, rel=1e-4)


def test_mmoe_gates_are_distributions_and_cvr_learns_on_clicks_only() -> None:
    feats, labels = tiny_batch()
    model = _build("mmoe", n_experts=3)
    gates = model.gate_weights(feats)
    assert set(gates) == {"ctr", "cvr"}
    for g in gates.values():
        assert g.shape == (ROWS, 3) and np.all(g.numpy() >= 0)
        np.testing.assert_allclose(g.numpy().sum(axis=1), 1.0, atol=1e-6)

    out = {k: v.numpy().astype(np.float64) for k, v in model(feats).items()}
    clicked = labels["ctr"] == 1
    assert 0 < clicked.sum() < ROWS

    def bce(y: np.ndarray, p: np.ndarray) -> np.ndarray:
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    expected = (bce(labels["ctr"], out["ctr"]).mean()
                + bce(labels["cvr"], out["cvr"])[clicked].mean())
    got = float(model.compute_loss((feats, labels), training=False))
    assert got == pytest.approx(expected, rel=1e-4)


def test_dcn_low_rank_cross_equals_formula() -> None:
    tf = tensorflow()
    feats, _ = tiny_batch()
    model = _build("dcn", projection_dim=2)
    model(feats)
    x0 = model.encoder.encode(feats).flat().numpy()
    cross = model.crosses[0]
    u = cross._dense_u.kernel.numpy()
    v, b = cross._dense_v.kernel.numpy(), cross._dense_v.bias.numpy()
    assert u.shape == (x0.shape[1], 2) and v.shape == (2, x0.shape[1])
    expected = x0 * ((x0 @ u) @ v + b) + x0
    got = cross(tf.constant(x0), tf.constant(x0)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_history_shares_the_target_embedding_table() -> None:
    feats, _ = tiny_batch()
    feats["hist_i"][1:, -1] = feats["i"][1:]  # the newest behaviour is the candidate itself
    model = _build("din")
    enc = model.encoder.encode(feats)
    (group,) = enc.groups
    assert group.names == ("hist_i", "hist_cat") and group.targets == ("i", "i_cat")
    d = CONFIG.embedding_dim
    np.testing.assert_array_equal(group.keys.numpy()[1:, -1, :d], group.query.numpy()[1:, :d])
    # The cold-start row: no real position, zero keys whatever the pad hashes to.
    assert group.mask.numpy()[0].sum() == 0 and not group.keys.numpy()[0].any()
