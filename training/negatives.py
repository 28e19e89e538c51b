"""Negative sampling for implicit-feedback data (no impressions): what a ranker learns against.

A shop log with impressions has true negatives (shown, not clicked). Public implicit datasets
such as Amazon Beauty hold only positives (reviews ≈ purchases), so a click-probability ranker
needs sampled negatives: for every positive (user, item, time), ``k`` items the user did not
interact with, stamped with the same user and time, so their point-in-time features are
fetched exactly like the positive's.

Choices, all in :class:`NegativeSampling` and recorded with every result:

* ``k`` negatives per positive (the label rate becomes ``1 / (k + 1)``);
* ``distribution="uniform"`` over the catalogue, or ``"popularity"``: ``P(i) ∝ count(i)^alpha``
  (word2vec's 0.75 by default). Uniform negatives are mostly obscure items that any popularity
  feature separates trivially; popularity-weighted ones are harder and closer to what a
  recommender actually shows, so metrics depend strongly on this choice - always report it.
  Counts must come from the TRAINING period only (the caller passes them), or the sampler
  leaks future popularity; ``pseudo_count`` gives never-seen items a non-zero chance;
* the user's own positives are never drawn (``exclude``: every (user, item) pair in the
  history the caller passes, the standard protocol of sampled evaluation): a negative that is
  in fact a positive would teach the model the opposite of the truth;
* draws are with replacement across a positive's ``k`` negatives and seeded (``seed``), so the
  same inputs always give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Distribution = Literal["uniform", "popularity"]


@dataclass(frozen=True)
class NegativeSampling:
    """How negatives are drawn (see the module docstring for why each choice matters).

    Attributes:
        k: Negatives per positive (>= 1).
        distribution: ``uniform`` or ``popularity`` (``count ** alpha``).
        alpha: Popularity exponent; 0 is uniform over items with a count, 1 is proportional.
        pseudo_count: Added to every item's count before the exponent (0: never-seen items
            are never drawn under ``popularity``).
        seed: Seed of the draws.
        max_rounds: Redraw rounds for candidates that hit an excluded item before giving up.
    """

    k: int = 4
    distribution: Distribution = "popularity"
    alpha: float = 0.75
    pseudo_count: float = 0.0
    seed: int = 42
    max_rounds: int = 50

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k (negatives per positive) must be >= 1, got {self.k}")
        if self.distribution not in ("uniform", "popularity"):
            raise ValueError(f"distribution must be 'uniform' or 'popularity', got "
                             f"{self.distribution!r}")
        if self.alpha < 0 or self.pseudo_count < 0:
            raise ValueError(f"alpha and pseudo_count must be >= 0, got {self.alpha} and "
                             f"{self.pseudo_count}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")


def item_probabilities(items: np.ndarray, counts: pd.Series | None,
                       cfg: NegativeSampling) -> np.ndarray:
    """Draw probability of each catalogue item (aligned with ``items``).

    Args:
        items: Catalogue item ids (unique).
        counts: Interactions per item id in the training period (``popularity`` only);
            ids absent from it count 0.
        cfg: The sampling settings.

    Raises:
        ValueError: for duplicate item ids, missing counts under ``popularity``, or a
            distribution with no mass (every count 0 and no pseudo-count).
    """
    items = np.asarray(items)
    if len(np.unique(items)) != len(items):
        raise ValueError("catalogue item ids must be unique")
    if cfg.distribution == "uniform":
        weights = np.ones(len(items), dtype=np.float64)
    else:
        if counts is None:
            raise ValueError("popularity sampling needs per-item training counts")
        c = counts.reindex(items).fillna(0.0).to_numpy(np.float64)
        if (c < 0).any():
            raise ValueError("item counts must be >= 0")
        weights = np.power(c + cfg.pseudo_count, cfg.alpha)
        weights[c + cfg.pseudo_count == 0] = 0.0  # 0 ** 0 would give never-seen items mass
    total = weights.sum()
    if not total > 0:
        raise ValueError("the sampling distribution has no mass: no item has a count "
                         "(use pseudo_count > 0 or distribution='uniform')")
    return weights / total


def _pairs(users: np.ndarray, items: np.ndarray) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([users, items])


def _check_feasible(users: np.ndarray, history: pd.DataFrame, items: np.ndarray,
                    probs: np.ndarray, user_col: str, item_col: str) -> None:
    """Fail up front for users whose excluded items hold (almost) all of the probability."""
    mass = pd.Series(probs, index=items)
    pairs = history[[user_col, item_col]].drop_duplicates()
    taken = mass.reindex(pairs[item_col].to_numpy()).fillna(0.0).to_numpy()
    per_user = pd.Series(taken, index=pairs[user_col].to_numpy()).groupby(level=0).sum()
    stuck = per_user[per_user >= 1.0 - 1e-9].index.intersection(pd.Index(np.unique(users)))
    if len(stuck):
        raise ValueError(f"cannot sample negatives for users {sorted(stuck.tolist())[:10]}: "
                         "their own positives cover every item that can be drawn")


def sample_negatives(positives: pd.DataFrame, items: np.ndarray, cfg: NegativeSampling, *,
                     counts: pd.Series | None = None, history: pd.DataFrame | None = None,
                     user_col: str = "user_id", item_col: str = "item_id",
                     label: str = "label") -> pd.DataFrame:
    """Positives (label 1) and ``k`` sampled negatives each (label 0).

    Args:
        positives: One row per positive; must hold ``user_col`` and ``item_col``. Every other
            column (timestamp, session, ...) is copied to the positive's negatives.
        items: Catalogue item ids to draw from.
        cfg: Sampling settings.
        counts: Training-period interactions per item id (``popularity`` only).
        history: (user, item) pairs never to draw for that user; default ``positives``.
        user_col: Column of the user id.
        item_col: Column of the item id.
        label: Name of the 0/1 label column added.

    Returns:
        ``len(positives) * (k + 1)`` rows: each positive followed by its ``k`` negatives
        (a ``neg_of`` column holds the position of the positive in ``positives``).

    Raises:
        KeyError: if an id column is missing.
        ValueError: for an impossible request (see :func:`item_probabilities`, or a user
            whose positives cover all drawable items).
    """
    missing = [c for c in (user_col, item_col) if c not in positives]
    if missing:
        raise KeyError(f"positives lack columns {missing}")
    if label in positives:
        raise ValueError(f"positives already have a {label!r} column; negatives are added here")
    history = positives if history is None else history
    items = np.asarray(items)
    probs = item_probabilities(items, counts, cfg)
    pos = positives.reset_index(drop=True)
    users = pos[user_col].to_numpy()
    _check_feasible(users, history, items, probs, user_col, item_col)
    excluded = _pairs(history[user_col].to_numpy(), history[item_col].to_numpy()).unique()
    rng = np.random.default_rng(cfg.seed)
    owner = np.repeat(np.arange(len(pos)), cfg.k)
    drawn = items[rng.choice(len(items), size=len(owner), p=probs)]
    for _ in range(cfg.max_rounds):
        bad = np.flatnonzero(_pairs(users[owner], drawn).isin(excluded))
        if not len(bad):
            break
        drawn[bad] = items[rng.choice(len(items), size=len(bad), p=probs)]
    else:
        raise ValueError(f"{len(bad)} negatives still hit the users' own items after "
                         f"{cfg.max_rounds} rounds; raise max_rounds or widen the catalogue")
    neg = pos.iloc[owner].reset_index(drop=True)
    neg[item_col] = drawn.astype(pos[item_col].dtype)
    neg[label] = 0
    neg["neg_of"] = owner
    out = pos.assign(**{label: 1, "neg_of": np.arange(len(pos))})
    out = pd.concat([out, neg], ignore_index=True)
    order = np.lexsort((out[label].to_numpy() == 0, out["neg_of"].to_numpy()))
    return out.iloc[order].reset_index(drop=True).astype({label: np.int64})
