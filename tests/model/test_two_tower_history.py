"""Behaviour histories: point-in-time positions by hand, and the pooled user tower."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shoprec.contract import CONTRACT
from shoprec.tf_runtime import tensorflow
from training.config import ModelConfig
from training.preprocessing import InputSpec
from training.recall_datasets import from_frame
from training.two_tower import build_two_tower, item_inputs, user_inputs
from training.two_tower_history import (
    harness_history_spec,
    history_positions,
    item_histories,
    user_ends,
    user_specs_with_history,
)
from training.two_tower_inputs import (
    pad_column,
    position_pool_class,
    tower_feature_dict,
    tower_keras_inputs,
)


def _data():
    """User 100 takes items 7, 8, 9 (in time order), user 200 takes item 8."""
    frame = pd.DataFrame({"user_id": [100, 200, 100, 100], "item_id": [7, 8, 8, 9],
                          "ts": [0, 5, 20, 40]})
    return from_frame("tiny", frame)


def test_training_rows_see_only_earlier_interactions_of_their_own_user() -> None:
    data = _data()  # positions: 0-2 user 100 (items 7, 8, 9), 3 user 200 (item 8)
    rows = np.arange(len(data))
    pos = history_positions(data, data.user, rows, 3)
    np.testing.assert_array_equal(pos, [[-1, -1, -1], [-1, -1, 0], [-1, 0, 1], [-1, -1, -1]])
    hist = item_histories(data, data.user, rows, 2)  # newest kept, left-padded with -1
    np.testing.assert_array_equal(hist, [[-1, -1], [-1, 7], [7, 8], [-1, -1]])
    users = np.array([0, 1])  # serving time: everything the user did in training
    np.testing.assert_array_equal(user_ends(data, users), [3, 4])
    np.testing.assert_array_equal(item_histories(data, users, user_ends(data, users), 4),
                                  [[-1, 7, 8, 9], [-1, -1, -1, 8]])


def test_harness_history_is_added_only_when_the_user_inputs_have_none() -> None:
    item = item_inputs(CONTRACT)[0]
    spec = harness_history_spec(item, 5)
    assert (spec.kind, spec.dtype, spec.max_len, spec.target, spec.vocab) == (
        "sequence", "int64", 5, item.name, item.vocab)
    users = user_inputs(CONTRACT)  # the contract's user tower has an item-id history already
    assert [s.name for s in users if s.kind == "sequence" and s.target == item.name]
    assert user_specs_with_history(users, item, 5) == users
    bare = [s for s in users if s.kind != "sequence"]
    assert user_specs_with_history(bare, item, 5) == [*bare, spec]
    assert user_specs_with_history([*bare, spec], item) == [*bare, spec]


def test_pad_column_left_pads_truncates_and_treats_missing_as_empty() -> None:
    spec = InputSpec("h", "int64", "sequence", 10, max_len=3, target="item_id", default=-1)
    got = pad_column(pd.Series([[1, 2, 3, 4], [5], [], None, np.nan], dtype=object), spec)
    np.testing.assert_array_equal(got, [[2, 3, 4], [-1, -1, 5], [-1] * 3, [-1] * 3, [-1] * 3])
    with pytest.raises(KeyError, match=r"lacks model inputs \['h'\]"):
        tower_feature_dict(pd.DataFrame({"x": [1]}), [spec])


def test_position_pool_by_hand() -> None:
    tf = tensorflow()
    layer = position_pool_class()()
    # Row 0: a pad slot (vector 9, 9 must not count), then (1, 0) and (0, 1). Row 1: all pad.
    history = np.array([[[9.0, 9.0], [1.0, 0.0], [0.0, 1.0]], [[9.0, 9.0]] * 3], np.float32)
    mask = np.array([[0, 1, 1], [0, 0, 0]], np.float32)
    layer([tf.constant(history), tf.constant(mask)])
    layer.set_weights([np.array([[5.0, 5.0], [0.0, 0.0], [2.0, 0.0]], np.float32)])
    out = layer([tf.constant(history), tf.constant(mask)]).numpy()
    # ((1, 0) + (0, 0) + (0, 1) + (2, 0)) / 2 = (1.5, 0.5); a user without history gets 0.
    np.testing.assert_allclose(out, [[1.5, 0.5], [0.0, 0.0]])


def _history_frame(spec: InputSpec) -> pd.DataFrame:
    rows = CONTRACT_ROWS.copy()
    rows[spec.name] = [[3, 4], [], [4, 3]]
    return rows


CONTRACT_ROWS = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [3, 4, 5]})


def _fill_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    for s in [*user_inputs(CONTRACT), *item_inputs(CONTRACT)]:
        if s.name not in frame:
            frame[s.name] = CONTRACT.feature(s.name).default
    return frame


def test_history_pooling_switches_on_only_with_an_item_history_input() -> None:
    tf = tensorflow()
    tf.keras.utils.set_random_seed(0)
    cfg = ModelConfig(embedding_dim=4, id_embedding_dim=4, cat_embedding_dim=2, tower_units=())
    frame = _fill_defaults(CONTRACT_ROWS.copy())
    bare = [s for s in user_inputs(CONTRACT) if s.kind != "sequence"]  # no history input
    plain = build_two_tower(CONTRACT, frame, cfg, user_specs=bare)
    assert not [layer for layer in plain.user_tower.layers if "pool" in layer.name]
    spec = harness_history_spec(item_inputs(CONTRACT)[0], 3)
    u_specs = [*bare, spec]
    frame = _fill_defaults(_history_frame(spec))
    model = build_two_tower(CONTRACT, frame, cfg, user_specs=u_specs)
    assert tower_keras_inputs(u_specs)[spec.name].shape[1:] == (3,)
    (item_table,) = [w for w in model.item_tower.weights if "item_tower_item_id_emb" in w.name]
    assert any(w is item_table for w in model.user_tower.weights)  # one vector per item
    feats = tower_feature_dict(frame, u_specs)
    np.testing.assert_array_equal(feats[spec.name], [[-1, 3, 4], [-1, -1, -1], [-1, 4, 3]])
    emb = model.user_tower(feats).numpy()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    # Positions start at 0, so the pool is a plain mean: order does not matter yet...
    pool = [layer for layer in model.user_tower.layers if layer.name.endswith("_pool")][0]
    sub = tf.keras.Model(model.user_tower.inputs, pool.output)
    pooled = sub(feats).numpy()
    np.testing.assert_allclose(pooled[0], pooled[2], atol=1e-6)
    np.testing.assert_array_equal(pooled[1], 0.0)  # no history: zero vector
    # ...and a recency position vector on the newest slot tells the two orders apart.
    pool.set_weights([np.array([[0.0] * 4, [0.0] * 4, [1.0, 0.0, 0.0, 0.0]], np.float32)])
    moved = sub(feats).numpy()
    np.testing.assert_allclose(moved[0] - pooled[0], [0.5, 0, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(moved[1], 0.0)
