"""logQ correction and mixed negatives: frequencies, probabilities and losses by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec
from training.two_tower import build_sampler, two_tower_model_class
from training.two_tower_options import TwoTowerOptions
from training.two_tower_sampling import (
    ItemFrequency,
    candidate_probability,
    candidate_sampler_class,
    catalogue_arrays,
)

USERS = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
ITEMS = np.zeros((10, 2))
ITEMS[[0, 1, 2, 9]] = [[0.8, 0.6], [0.0, 1.0], [1.0, 0.0], [0.6, -0.8]]
T = 0.5


def _fixed_tower(tf, id_name: str, table: np.ndarray):
    """A real Keras model that maps id i to the fixed row ``table[i]`` (no trainable weights)."""
    inp = tf.keras.Input(shape=(), dtype=tf.int64, name=id_name)
    const = tf.constant(table, dtype=tf.float32)
    out = tf.keras.layers.Lambda(lambda ids: tf.gather(const, ids))(inp)
    return tf.keras.Model(inp, out)


def _ce_sum(logits: np.ndarray) -> float:
    """Sum over rows of -log softmax(logits)[i, i] (row i's positive is column i)."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.trace(log_p[:, :len(logits)]))


def _model(frequency, catalogue_ids, negatives, remove_hits=False, weight=1.0):
    tf = tensorflow()
    sampler = candidate_sampler_class()(
        frequency, {"item_id": np.asarray(catalogue_ids, np.int64)}, negatives, weight, seed=1)
    return two_tower_model_class()(_fixed_tower(tf, "user_id", USERS),
                                   _fixed_tower(tf, "item_id", ITEMS), temperature=T,
                                   remove_accidental_hits=remove_hits, sampler=sampler)


def _loss(model, item_ids) -> float:
    tf = tensorflow()
    batch = {"user_id": tf.constant([0, 1, 2], tf.int64),
             "item_id": tf.constant(item_ids, tf.int64)}
    return float(model.compute_loss(batch, training=True))


def test_item_frequency_streams_chunks_and_matches_one_pass() -> None:
    chunks = [np.array([5, 5, 7]), np.array([7, 5, 9])]
    freq = ItemFrequency.from_chunks(chunks)
    assert freq.total == 6
    np.testing.assert_array_equal(freq.ids, [5, 7, 9])
    np.testing.assert_array_equal(freq.counts, [3, 2, 1])
    np.testing.assert_allclose(freq.probability(np.array([5, 7, 9, 11])),
                               [3 / 6, 2 / 6, 1 / 6, 0.0])
    one_pass = ItemFrequency().update(np.concatenate(chunks))
    np.testing.assert_array_equal(one_pass.counts, freq.counts)
    with pytest.raises(ValueError, match="empty"):
        ItemFrequency().probability(np.array([1]))


def test_candidate_probability_is_the_in_batch_uniform_mixture() -> None:
    p = np.array([0.5, 0.0])
    np.testing.assert_allclose(candidate_probability(p, 4, 0, 10), p)
    # One draw: in-batch (4 of 6 slots) with p, uniform over 10 items (2 of 6 slots).
    np.testing.assert_allclose(candidate_probability(p, 4, 2, 10),
                               [(4 * 0.5 + 2 / 10) / 6, (2 / 10) / 6])


def test_logq_corrected_loss_on_a_3x3_batch_matches_numpy() -> None:
    # Training stream 0,0,1,2: p = [1/2, 1/4, 1/4].
    freq = ItemFrequency().update(np.array([0, 0, 1, 2]))
    loss = _loss(_model(freq, [0, 1, 2], 0), [0, 1, 2])
    scores = USERS @ ITEMS[[0, 1, 2]].T / T
    logits = scores - np.log([0.5, 0.25, 0.25])[None, :]
    # Row 0 by hand: <u0, i0>/T - log(1/2) = 0.8/0.5 + 0.693 = 2.293.
    assert logits[0, 0] == pytest.approx(1.6 + np.log(2), abs=1e-9)
    assert loss == pytest.approx(_ce_sum(logits), rel=1e-5)
    assert abs(loss - _ce_sum(scores)) > 0.05  # the correction changes the loss
    half = _loss(_model(freq, [0, 1, 2], 0, weight=0.5), [0, 1, 2])
    assert half == pytest.approx(_ce_sum(scores - 0.5 * np.log([0.5, 0.25, 0.25])), rel=1e-5)


def test_mixed_negatives_add_uniform_catalogue_items_with_mixture_correction() -> None:
    # Catalogue = {9}, so both sampled negatives are item 9 (p = 0, never a training item).
    freq = ItemFrequency().update(np.array([0, 0, 1, 2]))
    loss = _loss(_model(freq, [9], 2), [0, 1, 2])
    cands = ITEMS[[0, 1, 2, 9, 9]]
    p = np.array([0.5, 0.25, 0.25, 0.0, 0.0])
    q = (3 * p + 2 / 1) / (3 + 2)
    logits = USERS @ cands.T / T - np.log(q)[None, :]
    assert logits.shape == (3, 5)
    assert loss == pytest.approx(_ce_sum(logits), rel=1e-5)
    plain = _loss(_model(None, [9], 2), [0, 1, 2])  # mixed negatives without logQ
    assert plain == pytest.approx(_ce_sum(USERS @ cands.T / T), rel=1e-5)


def test_accidental_hits_are_masked_in_batch_and_among_sampled_negatives() -> None:
    # Rows 0 and 1 share item 0; the sampled negative (catalogue = {1}) is row 2's positive.
    loss = _loss(_model(None, [1], 1, remove_hits=True), [0, 0, 1])
    cands = ITEMS[[0, 0, 1, 1]]
    logits = USERS @ cands.T / T
    keep = np.ones_like(logits, dtype=bool)
    keep[0, 1] = keep[1, 0] = keep[2, 3] = False
    expected = sum(-(logits[i, i] - np.log(np.exp(logits[i][keep[i]]).sum())) for i in range(3))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert loss < _loss(_model(None, [1], 1, remove_hits=False), [0, 0, 1])


def test_sampler_draws_uniformly_from_the_whole_catalogue_and_repeats_with_its_seed() -> None:
    catalogue = {"item_id": np.arange(10, 15, dtype=np.int64)}
    freq = ItemFrequency().update(np.array([10, 10, 11]))  # 12-14 never in training
    cls = candidate_sampler_class()
    rows = cls(freq, catalogue, 8, seed=3).sample_rows(5000).numpy()
    assert rows.min() >= 0 and rows.max() <= 4
    counts = np.bincount(rows, minlength=5)
    assert counts.min() >= 850 and counts.max() <= 1150  # 1000 expected each, sd ~28
    again = cls(freq, catalogue, 8, seed=3).sample_rows(5000).numpy()
    np.testing.assert_array_equal(rows, again)


def test_build_sampler_follows_the_options_and_uses_the_catalogue() -> None:
    specs = [InputSpec("item_id", "int64", "id", 20), InputSpec("i_cat", "int64",
                                                                "categorical", 5)]
    train = pd.DataFrame({"item_id": [3, 3, 4], "i_cat": [1, 1, 2]})
    off = TwoTowerOptions(logq_correction=False, mixed_negatives=0)
    assert build_sampler(train, specs, off) is None
    catalogue = pd.DataFrame({"item_id": [3, 4, 5, 5], "i_cat": [1, 2, 0, 4]})
    arrays = catalogue_arrays(catalogue, specs)
    np.testing.assert_array_equal(arrays["item_id"], [3, 4, 5])
    np.testing.assert_array_equal(arrays["i_cat"], [1, 2, 4])  # last row of item 5 wins
    sampler = build_sampler(train, specs, TwoTowerOptions(mixed_negatives=4), catalogue)
    assert sampler.catalogue_size == 3 and sampler.mixed_negatives == 4
    tf = tensorflow()
    assert float(sampler.table.lookup(tf.constant([3], tf.int64))[0]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="mixed_negatives"):
        TwoTowerOptions(mixed_negatives=-1)
