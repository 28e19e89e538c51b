"""Offline evaluation: retrieval Recall/HR@K through the real index, ranker AUC/logloss/GAUC.

Retrieval is measured the way serving retrieves (user-tower embedding → FAISS top-K over the
whole catalogue), not with in-batch metrics, so the number reflects what users would see.

:func:`evaluate` scores a challenger run AND the current champion on the same held-out rows of
the CURRENT datasets, each through its own reloaded SavedModels and FAISS index, so the gate
compares like with like even when the champion was trained on older data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import Contract
from shoprec.settings import Settings
from training.index import load_index, search, search_multi
from training.preprocessing import InputSpec, to_feature_dict
from training.runs import (
    RANKER_SET,
    RETRIEVAL_SET,
    clean_json,
    dataset_cutoff,
    load_split,
    part_dirs,
    run_dir,
    write_json,
    write_run_summary,
)

PREDICT_BATCH = 8192
EVALUATION = "evaluation.json"


def heldout_queries(val_df: pd.DataFrame, user_col: str = "user_id", item_col: str = "item_id",
                    ts_col: str = "event_ts") -> tuple[pd.DataFrame, list[set[int]]]:
    """One query row per held-out user and the set of items they interacted with.

    The query row is the user's earliest validation row, i.e. the user features as they were
    when the held-out period began (what serving would have used to recommend).

    Returns:
        ``(query_rows, relevant)``: one row per user (sorted by user id) and, aligned with it,
        the set of item ids that user interacted with in the validation period.
    """
    ordered = val_df.sort_values([user_col, ts_col], kind="stable")
    queries = ordered.drop_duplicates(user_col, keep="first").reset_index(drop=True)
    items = ordered.groupby(user_col)[item_col].agg(lambda s: set(int(v) for v in s))
    relevant = [items[u] for u in queries[user_col]]
    return queries, relevant


def retrieval_metrics(query_embeddings: np.ndarray, relevant: Sequence[set[int]], index: object,
                      item_ids: np.ndarray, ks: Sequence[int] = (10, 50, 100)) -> dict[str, float]:
    """Recall@K and HitRate@K of top-K index search against held-out positives.

    ``recall@K`` = mean over users of ``|topK ∩ relevant| / |relevant|``; ``hr@K`` = share of
    users with at least one relevant item in the top K. Items seen in training are not removed
    (repeat purchases/clicks are legitimate recommendations in e-commerce).

    Args:
        query_embeddings: ``[U, D]`` user-tower embeddings, aligned with ``relevant``, or
            ``[U, K, D]`` from a multi-interest tower (an item scores its best interest,
            :func:`training.index.search_multi`).
        relevant: Per user, the set of held-out item ids.
        index: FAISS index from :func:`training.index.build_index`.
        item_ids: Item id per index row.
        ks: Cut-offs.

    Returns:
        ``{"recall@10": ..., "hr@10": ..., ...}``; all NaN when there are no queries.
    """
    if len(relevant) != len(query_embeddings):
        raise ValueError("query_embeddings and relevant must be aligned")
    out: dict[str, float] = {}
    if len(relevant) == 0:  # no evidence is not "zero recall": NaN keeps the gate shut
        return {f"{m}@{k}": float("nan") for k in ks for m in ("recall", "hr")}
    find = search_multi if np.ndim(query_embeddings) == 3 else search
    _, top = find(index, item_ids, query_embeddings, max(ks))
    for k in ks:
        hits = np.array([len(rel.intersection(row[:k].tolist())) for rel, row in
                         zip(relevant, top, strict=True)], dtype=np.float64)
        sizes = np.array([len(rel) for rel in relevant], dtype=np.float64)
        out[f"recall@{k}"] = float(np.mean(hits / sizes))
        out[f"hr@{k}"] = float(np.mean(hits > 0))
    return out


def ranker_metrics(labels: np.ndarray, scores: np.ndarray,
                   groups: np.ndarray | None = None) -> dict[str, float]:
    """AUC, log loss and (if ``groups`` given) impression-weighted per-user GAUC.

    GAUC averages AUC within each user (weighted by their row count), skipping users whose
    rows are all one class; it measures ranking *within* a user's list, which is what the
    ranker is used for, while global AUC also rewards separating active from inactive users.

    Returns:
        ``{"auc", "logloss"[, "gauc"]}``; ``auc`` is NaN when only one class is present.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(labels).astype(np.int64)
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
    two_classes = len(np.unique(y)) == 2
    out = {"auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
           "logloss": float(log_loss(y, p, labels=[0, 1])) if len(y) else float("nan")}
    if groups is not None:
        frame = pd.DataFrame({"g": np.asarray(groups), "y": y, "p": p})
        num = den = 0.0
        for _, part in frame.groupby("g", sort=False):
            if part["y"].nunique() == 2:
                num += len(part) * roc_auc_score(part["y"], part["p"])
                den += len(part)
        out["gauc"] = float(num / den) if den else float("nan")
    return out


class NotComparable(Exception):
    """A run cannot be scored against the current contract and data (the message says why)."""


def predict_saved(loaded: Any, df: pd.DataFrame, specs: list[InputSpec]) -> np.ndarray:
    """Run a reloaded SavedModel's ``serving_default`` over ``df`` in batches; numpy output."""
    from training.export import call_saved

    parts = [call_saved(loaded, to_feature_dict(df.iloc[i:i + PREDICT_BATCH], specs))
             for i in range(0, len(df), PREDICT_BATCH)]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def retrieval_eval(user_tower: Any, index: Any, item_ids: np.ndarray, val_df: pd.DataFrame,
                   specs: list[InputSpec]) -> tuple[dict[str, float], int]:
    """``(retrieval metrics, number of held-out users)`` of a user tower + index on ``val_df``.

    Raises:
        NotComparable: if the tower's embedding width differs from the index's.
    """
    queries, relevant = heldout_queries(val_df)
    q_emb = (predict_saved(user_tower, queries, specs) if len(queries)
             else np.zeros((0, index.d), np.float32))
    if q_emb.ndim not in (2, 3) or q_emb.shape[-1] != index.d:
        raise NotComparable(f"user tower emits {q_emb.shape[1:]} embeddings but the index "
                            f"holds {index.d}-d vectors")
    return retrieval_metrics(q_emb, relevant, index, item_ids), len(queries)


def ranker_eval(ranker: Any, val_df: pd.DataFrame, specs: list[InputSpec],
                label: str) -> dict[str, float]:
    """AUC, log loss and per-user GAUC of a reloaded ranker on ``val_df``."""
    scores = predict_saved(ranker, val_df, specs)
    return ranker_metrics(val_df[label].to_numpy(), scores, val_df["user_id"].to_numpy())


def signature_mismatch(loaded: Any, specs: list[InputSpec]) -> str | None:
    """Why a SavedModel's ``serving_default`` inputs differ from ``specs``; ``None`` if equal."""
    from training.preprocessing import tf_dtype

    if "serving_default" not in loaded.signatures:
        return "has no serving_default signature"
    have = {n: s.dtype.name for n, s in
            loaded.signatures["serving_default"].structured_input_signature[1].items()}
    want = {s.name: tf_dtype(s.dtype).name for s in specs}
    problems = []
    if set(want) - set(have):
        problems.append(f"lacks inputs {sorted(set(want) - set(have))}")
    if set(have) - set(want):
        problems.append(f"has inputs the contract no longer has {sorted(set(have) - set(want))}")
    problems += [f"{n} is {have[n]}, contract says {want[n]}" for n in sorted(set(want) & set(have))
                 if have[n] != want[n]]
    return "; ".join(problems) or None


def _load(path: Path, specs: list[InputSpec]) -> Any:
    from shoprec.tf_runtime import tensorflow

    try:
        loaded = tensorflow().saved_model.load(str(path))
    except Exception as err:  # a corrupt or foreign SavedModel: not comparable, say why
        raise NotComparable(f"{path} cannot be loaded: {err}") from err
    why = signature_mismatch(loaded, specs)
    if why:
        raise NotComparable(f"{path} no longer matches the contract: {why}")
    return loaded


def score_run(path: Path, contract: Contract, retrieval_val: pd.DataFrame,
              ranker_val: pd.DataFrame) -> tuple[dict[str, Any], int]:
    """``({"retrieval": ..., "ranker": ...}, held-out users)`` of the run at ``path``.

    Raises:
        NotComparable: artifacts missing, SavedModel unloadable, or signatures that no longer
            match ``contract``.
    """
    from training.dcn import ranker_inputs
    from training.two_tower import user_inputs

    if not path.is_dir():
        raise NotComparable(f"run {path.name} does not exist ({path} is missing)")
    retr, rank = part_dirs(path)
    wanted = [retr / "user_tower", retr / "item_index.faiss", retr / "item_ids.npy",
              rank / "ranker"]
    missing = [str(p) for p in wanted if not p.exists()]
    if missing:
        raise NotComparable(f"run {path.name} lacks artifacts {missing}")
    u_specs, r_specs = user_inputs(contract), ranker_inputs(contract)
    user, ranker = _load(retr / "user_tower", u_specs), _load(rank / "ranker", r_specs)
    index, ids = load_index(retr)
    retrieval, users = retrieval_eval(user, index, ids, retrieval_val, u_specs)
    return {"retrieval": retrieval,
            "ranker": ranker_eval(ranker, ranker_val, r_specs, contract.label)}, users


def evaluate(settings: Settings, contract: Contract, run_id: str,
             champion_run_id: str | None) -> dict[str, Any]:
    """Score challenger and champion on the same held-out rows; write ``evaluation.json``.

    The held-out rows are the last 10% of the time span of the CURRENT datasets (the split the
    challenger was trained with, when the datasets have not changed since). A champion whose
    artifacts are missing or whose signatures no longer match ``contract`` is recorded as
    ``champion_status="not_comparable"`` with the reason, and ``champion`` is ``None``.

    Args:
        settings: Locations (reads ``datasets/`` and ``models/``).
        contract: The current feature contract.
        run_id: The challenger run (both parts must exist).
        champion_run_id: The run currently served, or ``None`` on the very first run.

    Returns:
        The JSON written to ``models/<run_id>/evaluation.json`` (NaN written as ``null``):
        ``run_id``, ``champion_run_id``, ``evaluated_at``, ``split_cutoff``, ``rows``,
        ``challenger``, ``champion``, ``champion_status`` (``compared`` / ``none`` /
        ``not_comparable``) and ``champion_reason``. Also refreshes the run's ``metrics.json``.

    Raises:
        NotComparable: if the CHALLENGER itself cannot be scored (message names the problem).
    """
    cutoff = dataset_cutoff(settings)
    _, ranker_val = load_split(settings, RANKER_SET, cutoff)
    _, retrieval_val = load_split(settings, RETRIEVAL_SET, cutoff)
    path = run_dir(settings, run_id)
    try:
        challenger, users = score_run(path, contract, retrieval_val, ranker_val)
    except NotComparable as err:
        raise NotComparable(f"challenger {run_id} cannot be evaluated: {err}") from err
    champion, status, reason = None, "none", "there is no champion yet"
    if champion_run_id == run_id:
        champion, status, reason = challenger, "compared", "the champion is this same run"
    elif champion_run_id is not None:
        try:
            champion, _ = score_run(run_dir(settings, champion_run_id), contract, retrieval_val,
                                    ranker_val)
            status, reason = "compared", None
        except NotComparable as err:
            status, reason = "not_comparable", str(err)
    result = clean_json({
        "run_id": run_id, "champion_run_id": champion_run_id,
        "evaluated_at": datetime.now(UTC).isoformat(), "split_cutoff": cutoff,
        "rows": {"retrieval_validation_rows": len(retrieval_val), "validation_users": users,
                 "ranker_validation_rows": len(ranker_val),
                 "ranker_validation_positives": int(ranker_val[contract.label].sum())},
        "challenger": challenger, "champion": champion, "champion_status": status,
        "champion_reason": reason})
    write_json(path / EVALUATION, result)
    write_run_summary(settings, run_id)
    return result
