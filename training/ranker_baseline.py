"""Non-neural ranker baselines on the same contract features: boosted trees, logistic regression.

Every ranker table reports these, because a deep ranker that does not beat a tuned GBDT on the
same inputs is not worth its serving cost. Fairness rules:

* the same rows and inputs as the neural rankers (the contract's ``ranker`` service + ids);
* sequences, which trees and linear models cannot read, are summarised into scalars carrying
  what DIN's attention extracts from them: history length, how often the candidate's target
  value (its item id, its category) occurs in the history, and how many steps ago it last did
  (:func:`sequence_summaries`); float histories give their mean and newest value;
* categorical inputs and raw ids keep their most frequent training values as categories (the
  rest share one "other" code): native categorical splits for the GBDT, one-hot for the LR;
* the same tuning budget as the neural models (a grid of the same size, each config selected
  on the same validation window by AUC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.preprocessing import InputSpec, to_feature_dict
from training.ranker_data import GROUP_COL
from training.ranker_metrics import task_metrics

GBDT_GRID: tuple[dict[str, Any], ...] = ({"learning_rate": 0.05}, {"learning_rate": 0.1})
LR_GRID: tuple[dict[str, Any], ...] = ({"C": 0.1}, {"C": 1.0})
GBDT_CATEGORIES = 254
"""Most frequent values kept per categorical input for the GBDT (sklearn bins at most 255)."""
LR_CATEGORIES = 50
"""Most frequent values one-hot encoded per categorical input for the logistic regression."""


def sequence_summaries(columns: dict[str, np.ndarray], specs: Sequence[InputSpec]
                       ) -> dict[str, np.ndarray]:
    """Scalar summaries of every ``sequence`` input (padded ``[N, max_len]``, newest last).

    For an id/category history with a ``target`` input: ``__len`` (non-pad positions),
    ``__target_count`` (positions equal to the row's target value) and ``__target_recency``
    (positions back from the newest to the latest match; ``max_len + 1`` when none). For a
    float history: ``__len``, ``__mean`` and ``__last`` of the non-pad elements (0 if empty).
    """
    out: dict[str, np.ndarray] = {}
    for s in specs:
        if s.kind != "sequence":
            continue
        seq = columns[s.name]
        real = seq != s.default
        out[f"{s.name}__len"] = real.sum(axis=1).astype(np.float64)
        if s.dtype == "float64":
            n = np.maximum(real.sum(axis=1), 1)
            out[f"{s.name}__mean"] = np.where(real, seq, 0.0).sum(axis=1) / n
            out[f"{s.name}__last"] = np.where(real[:, -1], seq[:, -1], 0.0)
            continue
        if not s.target or s.target not in columns:
            continue
        hit = real & (seq == columns[s.target][:, None])
        out[f"{s.name}__target_count"] = hit.sum(axis=1).astype(np.float64)
        back = np.where(hit, np.arange(s.max_len)[::-1][None, :], s.max_len + 1)
        out[f"{s.name}__target_recency"] = back.min(axis=1).astype(np.float64)
    return out


@dataclass
class Tabular:
    """How raw inputs become one table, fitted on the training rows.

    Attributes:
        specs: The model inputs.
        max_categories: Frequent values kept per categorical/id input.
        categories: Per categorical input, its kept values (code = position; other = len).
        numeric: Names of the numeric columns (counts log1p'd, summaries), in order.
    """

    specs: list[InputSpec]
    max_categories: int
    categories: dict[str, np.ndarray] = field(default_factory=dict)
    numeric: list[str] = field(default_factory=list)

    def fit(self, df: pd.DataFrame) -> Tabular:
        """Choose the kept categories from ``df`` (the training rows)."""
        for s in self.specs:
            if s.kind in ("id", "categorical"):
                counts = df[s.name].value_counts(sort=True)
                self.categories[s.name] = counts.index.to_numpy()[:self.max_categories]
        self.numeric = list(self._numeric(df.head(1)))
        return self

    def _numeric(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        cols = to_feature_dict(df, self.specs)
        out = {s.name: (np.log1p(np.maximum(cols[s.name], 0)) if s.kind == "count"
                        else cols[s.name]).astype(np.float64)
               for s in self.specs if s.kind in ("count", "numeric")}
        out.update(sequence_summaries(cols, self.specs))
        return out

    def codes(self, df: pd.DataFrame) -> np.ndarray:
        """``[N, C]`` integer codes of the categorical inputs (other = ``len(kept)``)."""
        parts = []
        for name, kept in self.categories.items():
            code = pd.Index(kept).get_indexer(df[name].to_numpy())
            parts.append(np.where(code < 0, len(kept), code))
        return np.stack(parts, axis=1) if parts else np.zeros((len(df), 0), np.int64)

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(numeric [N, F] float64, categorical codes [N, C])``."""
        num = self._numeric(df)
        dense = np.stack([num[n] for n in self.numeric], axis=1) if self.numeric \
            else np.zeros((len(df), 0))
        return dense, self.codes(df)


def fit_gbdt(train: pd.DataFrame, specs: list[InputSpec], label: str, params: dict[str, Any],
             seed: int) -> Any:
    """A ``HistGradientBoostingClassifier`` with native categorical splits; returns a scorer.

    Early stopping holds out 10% of the training rows (sklearn's own split), up to 500 trees
    of 31 leaves unless ``params`` says otherwise.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    tab = Tabular(specs, GBDT_CATEGORIES).fit(train)
    dense, codes = tab.transform(train)
    x = np.hstack([dense, codes])
    mask = np.r_[np.zeros(dense.shape[1], bool), np.ones(codes.shape[1], bool)]
    settings = {"max_iter": 500, "max_leaf_nodes": 31, "early_stopping": True,
                "validation_fraction": 0.1, "n_iter_no_change": 20, **params}
    model = HistGradientBoostingClassifier(categorical_features=mask, random_state=seed,
                                           **settings)
    model.fit(x, train[label].to_numpy())

    def score(df: pd.DataFrame) -> np.ndarray:
        d, c = tab.transform(df)
        return model.predict_proba(np.hstack([d, c]))[:, 1]

    return score


def fit_logistic(train: pd.DataFrame, specs: list[InputSpec], label: str,
                 params: dict[str, Any], seed: int) -> Any:
    """Standardised numeric columns + one-hot categories → L2 logistic regression."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    tab = Tabular(specs, LR_CATEGORIES).fit(train)
    dense, codes = tab.transform(train)
    scaler = StandardScaler().fit(dense)
    onehot = OneHotEncoder(handle_unknown="ignore").fit(codes)
    model = LogisticRegression(max_iter=1000, random_state=seed, **params)

    def design(d: np.ndarray, c: np.ndarray) -> Any:
        return sp.hstack([sp.csr_matrix(scaler.transform(d)), onehot.transform(c)]).tocsr()

    model.fit(design(dense, codes), train[label].to_numpy())

    def score(df: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(design(*tab.transform(df)))[:, 1]

    return score


FAMILIES = {"gbdt": (fit_gbdt, GBDT_GRID), "logreg": (fit_logistic, LR_GRID)}


def tune_baseline(family: str, train: pd.DataFrame, validation: pd.DataFrame,
                  specs: list[InputSpec], label: str, *, seed: int = 0,
                  grid: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Fit every config of ``family``'s grid; keep the one with the best validation AUC.

    Returns:
        ``{"params", "score" (callable DataFrame → probabilities), "validation" (metrics of the
        chosen config), "tried" (params + validation AUC of each)}``.

    Raises:
        ValueError: for an unknown family or an empty grid.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown baseline {family!r}; known: {sorted(FAMILIES)}")
    fit, default_grid = FAMILIES[family]
    grid = list(default_grid if grid is None else grid)
    if not grid:
        raise ValueError(f"the {family} grid is empty: give at least one configuration")
    best: dict[str, Any] = {}
    tried = []
    for params in grid:
        score = fit(train, specs, label, params, seed)
        metrics = task_metrics(validation[label].to_numpy(), score(validation),
                               validation[GROUP_COL].to_numpy())
        tried.append({**params, "val_auc": metrics["auc"]})
        if not best or metrics["auc"] > best["validation"]["auc"]:
            best = {"params": params, "score": score, "validation": metrics}
    return {**best, "tried": tried}
