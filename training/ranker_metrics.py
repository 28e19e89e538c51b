"""Ranking metrics per task: AUC, GAUC and log loss, for single- and multi-task rankers.

AUC and log loss come from :func:`training.evaluate.ranker_metrics` (the definitions the gate
already uses), so a model trained here is judged exactly as the pipeline judges the champion.
GAUC is computed here with a vectorised rank formula instead of one ``roc_auc_score`` call per
user: validation runs after every epoch and real data has tens of thousands of users, where
the per-user loop costs seconds. Both give the same number (``tests/model/test_ranker_metrics``
checks one against the other).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from training.evaluate import ranker_metrics

METRICS: tuple[str, ...] = ("auc", "gauc", "logloss")
HIGHER_IS_BETTER: dict[str, bool] = {"auc": True, "gauc": True, "logloss": False, "loss": False}


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Impression-weighted mean of per-group AUC; groups with a single class are skipped.

    Within one group, AUC = (sum of the positives' ranks − P(P+1)/2) / (P·N), with tied scores
    given their average rank (a tie counts as half a correctly ordered pair, as in
    ``roc_auc_score``). Each group weighs its row count: a user shown 40 items says more about
    ranking quality than one shown 3.

    Args:
        labels: 0/1 per row.
        scores: Predicted probability (or any monotone score) per row.
        groups: Group id per row (the user id: ranking is judged within a user's list).

    Returns:
        The GAUC, or NaN when no group has both classes (no evidence is not a score of 0).

    Raises:
        ValueError: if the three arrays differ in length or a label is not 0/1.
    """
    y = np.asarray(labels)
    if not len(y) == len(scores) == len(groups):
        raise ValueError(f"labels, scores and groups differ in length: {len(y)}, "
                         f"{len(scores)}, {len(groups)}")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {sorted(set(np.unique(y)) - {0, 1})}")
    frame = pd.DataFrame({"g": np.asarray(groups), "y": y.astype(np.int64),
                          "p": np.asarray(scores, dtype=np.float64)})
    by = frame.groupby("g", sort=False)
    ranks = by["p"].rank(method="average")
    size = by["y"].size().astype(np.float64)
    pos = by["y"].sum().astype(np.float64)
    neg = size - pos
    pos_ranks = (ranks * frame["y"]).groupby(frame["g"], sort=False).sum()
    ok = (pos > 0) & (neg > 0)
    if not ok.any():
        return float("nan")
    auc = (pos_ranks[ok] - pos[ok] * (pos[ok] + 1) / 2) / (pos[ok] * neg[ok])
    return float((auc * size[ok]).sum() / size[ok].sum())


def task_metrics(labels: np.ndarray, scores: np.ndarray,
                 groups: np.ndarray | None) -> dict[str, float]:
    """``{"auc", "logloss"[, "gauc"]}`` of one task (AUC NaN when one class only)."""
    out = ranker_metrics(labels, scores)
    if groups is not None:
        out["gauc"] = gauc(labels, scores, groups)
    return out


def multi_task_metrics(labels: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray],
                       groups: np.ndarray | None) -> dict[str, dict[str, float]]:
    """Per task, :func:`task_metrics` of that task's head against that task's label.

    Raises:
        KeyError: naming tasks that have scores but no labels (or the reverse).
    """
    if set(labels) != set(scores):
        raise KeyError(f"tasks with scores {sorted(scores)} differ from tasks with labels "
                       f"{sorted(labels)}")
    return {t: task_metrics(labels[t], scores[t], groups) for t in scores}


def flat_metrics(per_task: Mapping[str, Mapping[str, float]], primary: str,
                 prefix: str = "val_") -> dict[str, float]:
    """Keras-log style names: the primary task unqualified, the others with their task name.

    ``{"ctr": {"auc": .7}, "cvr": {"auc": .8}}`` with primary ``ctr`` becomes
    ``{"val_auc": .7, "val_cvr_auc": .8}``, so a single-task model and the CTR head of a
    multi-task model are monitored under the same name.
    """
    out: dict[str, float] = {}
    for task, values in per_task.items():
        infix = "" if task == primary else f"{task}_"
        out.update({f"{prefix}{infix}{k}": float(v) for k, v in values.items()})
    return out


def monitor_mode(monitor: str) -> str:
    """``"max"`` or ``"min"`` for a monitored log name such as ``val_auc`` or ``val_loss``.

    Raises:
        ValueError: for a name whose last part is not a known metric.
    """
    last = monitor.rsplit("_", 1)[-1]
    if last not in HIGHER_IS_BETTER:
        raise ValueError(f"cannot monitor {monitor!r}: it must end in one of "
                         f"{sorted(HIGHER_IS_BETTER)} (e.g. val_auc, val_gauc, val_logloss)")
    return "max" if HIGHER_IS_BETTER[last] else "min"
