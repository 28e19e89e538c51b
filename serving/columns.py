"""Feature columns as model-ready NumPy arrays: one fill and cast rule for every serving path.

Both ways serving assembles ranker inputs use :func:`feature_array`: the reference path (one
batched store read of every ``(user, item)`` pair) and the fast path (one user row, cached item
rows, request features computed once, see :mod:`serving.item_cache`). So a value reaches the
model identically, whichever path read it; ``tests/serving/test_ranker_inputs.py`` holds them
equal on a real Feast store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_repo.online import conform_values
from shoprec.contract import Contract
from shoprec.sequences import pad_sequences


def feature_array(df: pd.DataFrame, name: str, contract: Contract) -> np.ndarray:
    """One feature column as a NumPy array of its contract dtype, nulls as the default.

    Scalars go through :func:`feature_repo.online.conform_values`, the fill and cast of every
    online read: a column that already has the contract dtype and no nulls (what
    ``feast_fetcher`` returns) is used as it is, with no pandas copy per request.

    A ``sequence`` feature comes back as ``[n, max_len]`` (newest last, left-padded with the
    pad element), padded by :func:`shoprec.sequences.pad_sequences` like in training.

    Raises:
        ValueError: naming the feature if a value cannot be cast to its dtype.
    """
    feat = contract.feature(name)
    if feat.kind == "sequence":
        col = df[name] if name in df else pd.Series([None] * len(df), index=df.index)
        return pad_sequences(col, feat)
    return conform_values(df[name].to_numpy() if name in df else None, len(df), feat)


def frame_of(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A DataFrame of array columns; a 2-D ``[n, L]`` column becomes ``n`` row arrays.

    The inverse of :func:`feature_array` for already-padded sequences (``pad_sequences``
    keeps a row that is already an array of the full length), used where a consumer wants a
    frame: the served-feature log.
    """
    return pd.DataFrame({name: (list(col) if col.ndim == 2 else col)
                         for name, col in columns.items()})


class Columns:
    """The feature arrays of one frame, each converted once and then reused.

    A ``/recommend`` call reads the user row three times (cold-start check, user tower, ranker
    inputs); converting each column once saves that work on every request.
    """

    def __init__(self, df: pd.DataFrame, contract: Contract) -> None:
        """Wrap ``df``; nothing is converted until asked for."""
        self.df, self.contract = df, contract
        self._got: dict[str, np.ndarray] = {}

    def __call__(self, name: str) -> np.ndarray:
        """:func:`feature_array` of ``name``, converted the first time only."""
        if name not in self._got:
            self._got[name] = feature_array(self.df, name, self.contract)
        return self._got[name]

    @property
    def attrs(self) -> dict:
        """The frame's ``attrs`` (``serving.fallback`` marks defaulted reads there)."""
        return self.df.attrs
