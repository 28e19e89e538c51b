"""Two-stage recommendation logic: two-tower retrieval over FAISS, then ranker re-scoring.

Pure and framework-free (no BentoML, no Feast): the model callables and the feature fetcher
are injected, so the exact ranking can be tested with small real SavedModels and an
in-memory fetcher, and the Bento service stays a thin wrapper.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import pandas as pd

from feature_repo.online import Fetch, conform
from serving.artifacts import Artifacts
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


def model_inputs(df: pd.DataFrame, keys: list[str], contract: Contract,
                 service: str) -> dict[str, np.ndarray]:
    """Named input arrays for a SavedModel: entity keys as int64 plus the service's features."""
    df = conform(df, contract, service)
    inputs = {key: df[key].to_numpy(dtype=np.int64) for key in keys}
    for feat in contract.service_features(service):
        inputs[feat.name] = df[feat.name].to_numpy()
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
                 n_candidates: int = 100) -> None:
        """Keep the injected parts; nothing is loaded or fetched until a request."""
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        self.artifacts = artifacts
        self.fetch = fetch
        self.contract = contract
        self.n_candidates = n_candidates

    def user_embedding(self, user_id: int) -> np.ndarray:
        """The user tower's embedding, ``float32[1, D]``, from ``two_tower_user`` features."""
        feats = self.fetch(USER_TOWER, pd.DataFrame({"user_id": [user_id]}))
        if len(feats) != 1:
            raise RuntimeError(f"fetch({USER_TOWER!r}) returned {len(feats)} rows for 1 user")
        inputs = model_inputs(feats, ["user_id"], self.contract, USER_TOWER)
        emb = self.artifacts.user_tower(inputs)["embedding"]
        return np.ascontiguousarray(emb, dtype=np.float32).reshape(1, -1)

    def candidates(self, user_id: int, n: int) -> np.ndarray:
        """Up to ``n`` distinct item ids, best inner product first."""
        n = min(n, self.artifacts.index.ntotal)
        if n == 0:
            return np.empty(0, dtype=np.int64)
        _, rows = self.artifacts.index.search(self.user_embedding(user_id), n)
        rows = rows[0][rows[0] >= 0]  # FAISS pads with -1 when it finds fewer than n
        ids = self.artifacts.item_ids[rows]
        _, first = np.unique(ids, return_index=True)  # a catalogue may repeat an id
        return ids[np.sort(first)]

    def score(self, user_id: int, item_ids: np.ndarray) -> np.ndarray:
        """Ranker scores for ``(user_id, item)`` pairs, fetched in one batched feature call."""
        entity_df = pd.DataFrame({"user_id": np.full(len(item_ids), user_id, dtype=np.int64),
                                  "item_id": item_ids.astype(np.int64)})
        feats = self.fetch(RANKER, entity_df)
        if len(feats) != len(entity_df):
            raise RuntimeError(
                f"fetch({RANKER!r}) returned {len(feats)} rows for {len(entity_df)} pairs")
        feats = feats.reset_index(drop=True)
        feats[["user_id", "item_id"]] = entity_df  # rows are positional; keys are ours
        inputs = model_inputs(feats, ["user_id", "item_id"], self.contract, RANKER)
        return np.asarray(self.artifacts.ranker(inputs)["score"], dtype=np.float64).reshape(-1)

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
