"""Item-id behaviour histories of interaction data, point in time, for the two-tower harness.

A history is a user's last ``max_len`` positive interactions strictly before the snapshot,
newest last, left-padded with -1 (the contract's conventions for id sequences). On
:class:`training.recall_datasets.Interactions` (positives only, sorted by user and time) that is
a window of interaction *positions*: for a training row at position ``r`` the ones before ``r``
(so the row's own item is never in its history), for a user being recommended to everything up
to the end of the user's training interactions. Only training interactions ever enter one.

The contract does not (yet) declare a history feature, so :func:`harness_history_spec` names one
after the item tower's id input; when the contract's user inputs contain an item-id history, the
harness fills that one instead (:func:`user_specs_with_history`).
"""

from __future__ import annotations

import numpy as np

from training.preprocessing import InputSpec
from training.recall_datasets import Interactions
from training.two_tower_inputs import history_specs

HISTORY_SUFFIX = "_history"
DEFAULT_HISTORY_LEN = 50


def harness_history_spec(item_spec: InputSpec, max_len: int = DEFAULT_HISTORY_LEN) -> InputSpec:
    """An item-id history input sharing the item id's hash buckets, ``max_len`` long."""
    return InputSpec(f"{item_spec.name}{HISTORY_SUFFIX}", "int64", "sequence", item_spec.vocab,
                     max_len=max_len, target=item_spec.name, default=-1)  # the contract's pad


def user_specs_with_history(user_specs: list[InputSpec], item_spec: InputSpec,
                            max_len: int = DEFAULT_HISTORY_LEN) -> list[InputSpec]:
    """``user_specs`` plus :func:`harness_history_spec` unless they already hold such a history."""
    if history_specs(user_specs, item_spec.name):
        return list(user_specs)
    return [*user_specs, harness_history_spec(item_spec, max_len)]


def user_ends(data: Interactions, users: np.ndarray) -> np.ndarray:
    """Exclusive end position of each (dense) user's interactions in ``data``."""
    return np.searchsorted(data.user, np.asarray(users, dtype=np.int64), side="right")


def history_positions(data: Interactions, users: np.ndarray, ends: np.ndarray,
                      max_len: int) -> np.ndarray:
    """``[N, max_len]`` interaction positions (``-1`` = pad) of each row's history.

    Row ``j`` holds the positions ``ends[j] - max_len .. ends[j] - 1`` that belong to user
    ``users[j]``, oldest first.
    """
    users = np.asarray(users, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    first = np.searchsorted(data.user, users, side="left")
    pos = ends[:, None] - max_len + np.arange(max_len)
    valid = (pos >= first[:, None]) & (pos < ends[:, None])
    return np.where(valid, pos, -1)


def item_histories(data: Interactions, users: np.ndarray, ends: np.ndarray,
                   max_len: int) -> np.ndarray:
    """``[N, max_len]`` original item ids of each row's history, -1 at pads (newest last)."""
    pos = history_positions(data, users, ends, max_len)
    ids = data.item_ids[data.item[np.clip(pos, 0, None)]] if len(data) else np.zeros(pos.shape)
    return np.where(pos >= 0, ids, -1).astype(np.int64)
