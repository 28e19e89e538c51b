"""Two-stage recommendation logic: two-tower retrieval over FAISS, then ranker re-scoring.

Pure and framework-free (no BentoML, no Feast): the model callables and the feature fetcher
are injected, so the exact ranking can be tested with small real SavedModels and an
in-memory fetcher, and the Bento service stays a thin wrapper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from feature_repo.online import Fetch
from serving.artifacts import Artifacts
from serving.columns import Columns, feature_array
from serving.fallback import DEFAULTED
from serving.item_cache import ItemCache
from serving.ranker_inputs import RankerInputs, RankerRows
from serving.recall import search_interests
from shoprec.contract import RANKER, USER_TOWER, Contract

MAX_K = 100
"""Upper bound on ``k``: more than this is not a recommendation list, it is a dump."""


class InvalidRequest(ValueError):
    """A caller error (bad ``user_id`` or ``k``); the service maps it to a 4xx."""


class Scored(TypedDict):
    """One recommended item."""

    item_id: int
    score: float


def validate_request(user_id: object, k: object) -> tuple[int, int]:
    """Check ``user_id`` and ``k`` and return them as ints.

    ``bool`` is rejected explicitly because it is an ``int`` subclass and ``k=True`` would
    otherwise silently mean ``k=1``.

    Raises:
        InvalidRequest: naming the bad argument and the allowed range.
    """
    for name, value in (("user_id", user_id), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InvalidRequest(f"{name} must be an integer, got {value!r}")
    if user_id < 0:
        raise InvalidRequest(f"user_id must be >= 0, got {user_id}")
    if not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be between 1 and {MAX_K}, got {k}")
    return int(user_id), int(k)


def request_values(contract: Contract, event: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's request fields from a live request's values, keyed by event column.

    Training rows take each request field from an event column (the impression's ``event_ts``
    and ``device``, ``RequestField.event_column``); a live request supplies the same roles, so
    mapping by event column makes the on-demand features see the same kind of value on both
    sides. Fields whose value is ``None`` or absent are left out (the fetcher fills them).
    """
    return {r.name: event[r.event_column] for r in contract.request_fields
            if event.get(r.event_column) is not None}


def model_inputs(df: pd.DataFrame, keys: list[str], contract: Contract,
                 service: str) -> dict[str, np.ndarray]:
    """Named input arrays for a SavedModel: entity keys as int64 plus the service's features."""
    inputs = {key: df[key].to_numpy(dtype=np.int64) for key in keys}
    for feat in contract.service_features(service):
        inputs[feat.name] = feature_array(df, feat.name, contract)
    return inputs


class Recommender:
    """Recommend items for a user from one run's artifacts and online features.

    Attributes:
        artifacts: Towers, ranker and the FAISS index of one run.
        fetch: ``fetch(service, entity_df)``; production uses the Feast online store.
        contract: Feature contract naming each FeatureService's features.
        n_candidates: How many items retrieval hands to the ranker (raised to ``k`` if smaller).
    """

    def __init__(self, artifacts: Artifacts, fetch: Fetch, contract: Contract,
                 n_candidates: int = 100, items: ItemCache | None = None) -> None:
        """Keep the injected parts; nothing is loaded or fetched until a request.

        ``items`` caches the ranker's item features (:mod:`serving.item_cache`); by default an
        empty cache over ``fetch`` that reads each item the first time it is ranked.
        """
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        self.artifacts = artifacts
        self.fetch = fetch
        self.contract = contract
        self.n_candidates = n_candidates
        self.items = items if items is not None else ItemCache(fetch, contract)
        self.inputs = RankerInputs(contract)

    def user_features(self, user_id: int) -> pd.DataFrame:
        """The ``two_tower_user`` features of one user (one row, contract dtypes)."""
        feats = self.fetch(USER_TOWER, pd.DataFrame({"user_id": [user_id]}))
        if len(feats) != 1:
            raise RuntimeError(f"fetch({USER_TOWER!r}) returned {len(feats)} rows for 1 user")
        return feats

    def embed_user(self, feats: pd.DataFrame | Columns) -> np.ndarray:
        """The user tower's embedding of one row of user features.

        ``float32[1, D]``, or ``[1, K, D]`` for a multi-interest tower (one vector per
        interest); :meth:`search` takes either.
        """
        if isinstance(feats, Columns):
            inputs = {"user_id": feats.df["user_id"].to_numpy(dtype=np.int64),
                      **{f.name: feats(f.name)
                         for f in self.contract.service_features(USER_TOWER)}}
        else:
            inputs = model_inputs(feats, ["user_id"], self.contract, USER_TOWER)
        emb = np.ascontiguousarray(self.artifacts.user_tower(inputs)["embedding"],
                                   dtype=np.float32)
        return emb.reshape(1, *emb.shape[-2:]) if emb.ndim == 3 else emb.reshape(1, -1)

    def user_row(self, user_id: int) -> pd.DataFrame:
        """One row of every user feature a request needs: the ranker's and the tower's.

        One store read of the ranker's user part (``ranker@user``); the tower's features are
        among them in the shipped contract, otherwise they are read too. ``attrs["defaulted"]``
        is set when either read answered with defaults.
        """
        key = pd.DataFrame({"user_id": [user_id]})
        feats = self.fetch(self.inputs.user_part, key)
        if len(feats) != 1:
            raise RuntimeError(f"fetch({self.inputs.user_part!r}) returned {len(feats)} rows "
                               "for 1 user")
        if self.inputs.tower_apart:
            tower = self.user_features(user_id)
            extra = [c for c in tower.columns if c not in feats.columns]
            attrs = {DEFAULTED: bool(feats.attrs.get(DEFAULTED) or tower.attrs.get(DEFAULTED))}
            feats = pd.concat([feats.reset_index(drop=True), tower[extra].reset_index(drop=True)],
                              axis=1)
            feats.attrs.update(attrs)
        return feats

    def ranker_rows(self, user: pd.DataFrame | Columns, item_ids: np.ndarray,
                    request: Mapping[str, Any] | None = None) -> RankerRows:
        """Ranker inputs of ``(user, item)`` pairs: the user row repeated, cached item rows.

        The same values as :meth:`ranker_features` reads pair by pair from the store
        (``tests/serving/test_ranker_inputs.py``), with one user read instead of one per pair.
        """
        items, items_defaulted = self.items.gather(np.asarray(item_ids, dtype=np.int64))
        return self.inputs.rows(user, np.asarray(item_ids, dtype=np.int64), items,
                                request or {}, items_defaulted)

    def score_rows(self, rows: RankerRows) -> np.ndarray:
        """Ranker scores of :meth:`ranker_rows`, one model call."""
        return np.asarray(self.artifacts.ranker(rows.model_inputs())["score"],
                          dtype=np.float64).reshape(-1)

    def user_embedding(self, user_id: int) -> np.ndarray:
        """The user tower's embedding, ``float32[1, D]``, from ``two_tower_user`` features."""
        return self.embed_user(self.user_features(user_id))

    def search(self, embedding: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` distinct ``(item ids, inner products)``, best first.

        A multi-interest embedding ``[1, K, D]`` scores each item by its best interest
        (:func:`serving.recall.search_interests`).
        """
        return search_interests(self.artifacts.index, self.artifacts.item_ids, embedding, n)

    def candidates(self, user_id: int, n: int) -> np.ndarray:
        """Up to ``n`` distinct item ids, best inner product first."""
        if min(n, self.artifacts.index.ntotal) == 0:
            return np.empty(0, dtype=np.int64)
        return self.search(self.user_embedding(user_id), n)[0]

    def ranker_features(self, user_id: int, item_ids: np.ndarray,
                        request: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """``ranker`` features of ``(user_id, item)`` pairs in one batched fetch, in order.

        Args:
            user_id: The user.
            item_ids: The candidates.
            request: Request fields (:func:`request_values`) the request-time features read,
                the same on every row; absent ones are filled by the fetcher as "now" and
                "unknown".

        The frame keeps the fetcher's ``attrs`` (``serving.fallback`` marks defaulted answers).
        """
        entity_df = pd.DataFrame({"user_id": np.full(len(item_ids), user_id, dtype=np.int64),
                                  "item_id": np.asarray(item_ids, dtype=np.int64),
                                  **{k: [v] * len(item_ids) for k, v in (request or {}).items()}})
        feats = self.fetch(RANKER, entity_df)
        if len(feats) != len(entity_df):
            raise RuntimeError(
                f"fetch({RANKER!r}) returned {len(feats)} rows for {len(entity_df)} pairs")
        attrs = dict(feats.attrs)
        feats = feats.reset_index(drop=True)
        feats[["user_id", "item_id"]] = entity_df[["user_id", "item_id"]]  # rows are positional
        feats.attrs.update(attrs)
        return feats

    def score_features(self, feats: pd.DataFrame) -> np.ndarray:
        """Ranker scores of rows of :meth:`ranker_features`."""
        inputs = model_inputs(feats, ["user_id", "item_id"], self.contract, RANKER)
        return np.asarray(self.artifacts.ranker(inputs)["score"], dtype=np.float64).reshape(-1)

    def score(self, user_id: int, item_ids: np.ndarray) -> np.ndarray:
        """Ranker scores for ``(user_id, item)`` pairs, fetched in one batched feature call."""
        return self.score_features(self.ranker_features(user_id, item_ids))

    def recommend(self, user_id: int, k: int) -> list[Scored]:
        """Top ``k`` distinct items for ``user_id`` by ranker score, best first.

        Returns fewer than ``k`` items only when the catalogue is smaller than ``k``. Ties are
        broken by retrieval order so the answer is deterministic.

        Raises:
            InvalidRequest: for a negative or non-integer ``user_id``, or ``k`` outside 1..100.
        """
        user_id, k = validate_request(user_id, k)
        items = self.candidates(user_id, max(self.n_candidates, k))
        if len(items) == 0:
            return []
        scores = self.score(user_id, items)
        order = np.argsort(-scores, kind="stable")[:k]
        return [Scored(item_id=int(items[i]), score=float(scores[i])) for i in order]
