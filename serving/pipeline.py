"""The ``/recommend`` and ``/rank`` pipelines: recall -> ranker -> re-rank -> top k, degrading.

:class:`Pipeline` composes the pure parts (no BentoML here, so all of it is tested in-process):

1. **Experiments** (:mod:`serving.experiments`): the user's variant per layer sets
   ``use_ranker``, ``popularity_quota`` and ``diversity``; each assignment is counted.
2. **User features** through a :class:`~serving.fallback.ResilientFetch` (store down ->
   contract defaults). A user whose tower features all equal the defaults (no row within the
   TTL, or no activity in 30 days) is *cold*: the popularity source is added with at least
   ``cold_start_popularity_quota`` guaranteed candidates.
3. **Recall**: the two-tower FAISS search (``two_tower``) and, when the quota is > 0, the
   popularity list (``popularity``), merged by :func:`serving.merge.merge` (reciprocal-rank
   fusion, popularity quota). Every item keeps the sources that produced it.
4. **Ranker**: the user row of step 2 repeated, the candidates' rows from the item cache and
   the request features computed once (:mod:`serving.ranker_inputs`), then one model call for
   all candidates; if the model fails (or the variant is ``use_ranker: false``) the recall
   order and fusion scores are kept.
5. **Re-rank** (:mod:`serving.rerank`) with the item attributes of the same inputs (of
   the startup catalogue when the store answered with defaults); already-purchased items come
   from :class:`~serving.feedback.PurchaseMemory`.
6. **Fill**: if fewer than ``k`` items remain, the popularity list (filtered the same way) fills
   the rest with score 0 (they were not scored by the ranker) - the last resort.

Every degraded step is counted (``fallback{reason}``) and listed in the answer's ``fallbacks``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from serving.columns import Columns
from serving.config import PipelineConfig
from serving.experiments import Layer, assign
from serving.fallback import DEFAULTED, FALLBACK, VARIANT, Catalogue, CounterLog
from serving.feature_log import FeatureLog
from serving.feedback import PurchaseMemory
from serving.merge import Merged, MergePolicy, merge_arrays
from serving.ranker_inputs import RankerRows
from serving.recommender import InvalidRequest, Recommender, request_values, validate_request
from serving.rerank import RerankConfig, Slate, keep_mask, rerank
from serving.similar import ItemNeighbours
from shoprec.contract import DEVICES, EVENT_SCHEMA, USER_TOWER

TS_COLUMN = EVENT_SCHEMA.column("event_ts").name
DEVICE_COLUMN = EVENT_SCHEMA.column("device").name
"""Event columns whose roles a live request plays (``RequestField.event_column``)."""
log = logging.getLogger(__name__)

TWO_TOWER, POPULARITY = "two_tower", "popularity"
MAX_ID = 2**63 - 1
MAX_CATEGORIES = 100


@dataclass(frozen=True)
class RequestContext:
    """Optional context of a ``/recommend`` call."""

    device: str | None = None
    page: str | None = None
    categories: frozenset[int] | None = None
    exclude: frozenset[int] = frozenset()


@dataclass
class Answer:
    """What ``/recommend`` returns (before HTTP serialisation)."""

    items: list[dict[str, Any]]
    variants: dict[str, str]
    fallbacks: list[str] = field(default_factory=list)
    cold_start: bool = False


def check_ids(name: str, values: Sequence[Any], limit: int) -> list[int]:
    """Distinct non-negative 64-bit integer ids, at most ``limit`` of them.

    Raises:
        InvalidRequest: naming ``name`` and the offending value.
    """
    if len(values) > limit:
        raise InvalidRequest(f"{name} holds {len(values)} ids; at most {limit} are allowed")
    seen: set[int] = set()
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 0 <= v <= MAX_ID:
            raise InvalidRequest(f"{name} must hold integers in [0, 2**63), got {v!r}")
        if int(v) in seen:
            raise InvalidRequest(f"{name} repeats id {v}")
        seen.add(int(v))
    return [int(v) for v in values]


class Pipeline:
    """Recommend, rank and find similar items with counted fallbacks (module docstring)."""

    def __init__(self, recommender: Recommender, catalogue: Catalogue, purchases: PurchaseMemory,
                 config: PipelineConfig, rerank_config: RerankConfig, layers: Sequence[Layer],
                 counters: CounterLog, neighbours: ItemNeighbours | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 feature_log: FeatureLog | None = None) -> None:
        """Keep the parts; the last-resort order is popularity, else the index order.

        ``feature_log`` (optional) records every ranked feature vector for the skew check.
        """
        self.rec, self.catalogue, self.purchases = recommender, catalogue, purchases
        self.feature_log = feature_log
        self.config, self.rules, self.layers = config, rerank_config, tuple(layers)
        self.counters, self.neighbours, self.clock = counters, neighbours, clock
        self.contract = recommender.contract
        ids = recommender.artifacts.item_ids
        self.popular = catalogue.popular if len(catalogue.popular) else \
            ids[np.sort(np.unique(ids, return_index=True)[1])]
        self.user_defaults = self.contract.defaults(
            [f.name for f in self.contract.service_features(USER_TOWER)])
        self.no_category = float(self.contract.feature(config.roles["category"]).default)
        self._served = itertools.count()  # requests whose features the log may sample
        self._popular_lists: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def check_context(self, ctx: RequestContext | None) -> RequestContext:
        """Validate a context (device, page, id lists) and return it (empty when ``None``)."""
        ctx = ctx or RequestContext()
        if ctx.device is not None and ctx.device not in DEVICES:
            raise InvalidRequest(f"context.device must be one of {list(DEVICES)}, "
                                 f"got {ctx.device!r}")
        if ctx.page is not None and ctx.page not in self.config.pages:
            raise InvalidRequest(f"context.page must be one of {list(self.config.pages)}, "
                                 f"got {ctx.page!r}")
        check_ids("context.exclude", list(ctx.exclude), self.config.max_exclude)
        if ctx.categories is not None:
            check_ids("context.categories", list(ctx.categories), MAX_CATEGORIES)
        return ctx

    def _degrade(self, fallbacks: list[str], reason: str, count: bool = True) -> None:
        if reason not in fallbacks:
            fallbacks.append(reason)
        if count:
            self.counters.inc(FALLBACK, reason=reason)

    def is_cold(self, user_feats: pd.DataFrame | Columns) -> bool:
        """Whether every user-tower feature of the (one-row) frame is at its default."""
        get = user_feats if isinstance(user_feats, Columns) else Columns(user_feats,
                                                                         self.contract)
        return all(bool(np.all(get(name)[0] == value))
                   for name, value in self.user_defaults.items())  # a history: all padding

    def popularity_list(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most popular items and their popularity (0 where unknown)."""
        if n not in self._popular_lists:  # the catalogue is fixed for the service's life
            ids = self.popular[:n]
            pop = self.catalogue.attributes(ids)["popularity"].fillna(0.0).to_numpy()
            self._popular_lists[n] = (ids, pop)
        return self._popular_lists[n]

    def _slate(self, ids: np.ndarray, scores: np.ndarray, rows: RankerRows | None,
               order: np.ndarray | None = None) -> Slate:
        """The re-ranking view of ``ids``: item attributes from ``rows`` (taken in ``order``)."""
        roles = self.config.roles
        if rows is not None and not rows.items_defaulted:
            pick = slice(None) if order is None else order
            attrs = {r: rows.columns[roles[r]][pick].astype(np.float64)
                     for r in roles}  # a missing row means the contract defaults
        else:  # store values unavailable: the startup catalogue, NaN for unknown items
            table = self.catalogue.attributes(ids)
            attrs = {r: table[r].to_numpy(dtype=np.float64) for r in roles}
        return Slate(ids, scores, attrs["category"], attrs["stock"], attrs["age_days"],
                     no_category=self.no_category)

    def _recall(self, user_id: int, k: int, params: dict, fallbacks: list[str]
                ) -> tuple[Merged | None, bool, Columns]:
        feats = Columns(self.rec.user_row(user_id), self.contract)
        if feats.attrs.get(DEFAULTED):
            self._degrade(fallbacks, "feature_store", count=False)  # counted by the fetch
        cold = self.is_cold(feats)
        if cold:
            self._degrade(fallbacks, "cold_start")
        n = max(self.config.n_candidates, k)
        lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        try:
            lists[TWO_TOWER] = self.rec.search(self.rec.embed_user(feats), n)
        except Exception:  # noqa: BLE001 - a broken tower degrades to popularity
            log.exception("two-tower recall failed for user %s", user_id)
            self._degrade(fallbacks, "recall")
        quota = params["popularity_quota"]
        if cold:
            quota = max(quota, self.config.cold_start_popularity_quota)
        if quota > 0:
            lists[POPULARITY] = self.popularity_list(self.config.popularity_candidates)
        if not any(len(ids) for ids, _ in lists.values()):
            return None, cold, feats
        policy = MergePolicy(quotas={POPULARITY: min(quota, n)} if POPULARITY in lists else {},
                             priority=(TWO_TOWER, POPULARITY))
        return merge_arrays(lists, n, policy), cold, feats

    def _request(self, ctx: RequestContext) -> dict[str, Any]:
        """Request fields for the request-time features: now, and the context's device."""
        return request_values(self.contract, {TS_COLUMN: pd.Timestamp(self.clock()),
                                              DEVICE_COLUMN: ctx.device})

    def _log_features(self, rows: RankerRows) -> None:
        """Hand one request in ``log_every`` to the feature log (which never raises).

        Each logged request brings all its candidates' vectors: sampling requests, not rows,
        keeps whole slates for the skew check at a bounded cost per second.
        """
        if self.feature_log is not None and next(self._served) % self.config.log_every == 0:
            self.feature_log.record(rows.frame(), self.clock())

    def _features_degraded(self, rows: RankerRows, fallbacks: list[str]) -> None:
        """Name the ``feature_store`` fallback when any part of ``rows`` holds defaults.

        A failed user read was counted by the fetch; cached item rows that hold defaults were
        counted once when read, so each request using them is counted here.
        """
        if rows.defaulted:
            self._degrade(fallbacks, "feature_store", count=not rows.user_defaulted)

    def recommend(self, user_id: Any, k: Any, context: RequestContext | None = None) -> Answer:
        """Top ``k`` items for ``user_id`` (module docstring).

        Raises:
            InvalidRequest: for a bad ``user_id``, ``k`` or context, before any work is done.
        """
        user_id, k = validate_request(user_id, k)
        if user_id > MAX_ID:
            raise InvalidRequest(f"user_id must be < 2**63, got {user_id}")
        ctx = self.check_context(context)
        variants, params = assign(self.layers, user_id)
        for layer, variant in variants.items():
            self.counters.inc(VARIANT, layer=layer, variant=variant)
        fallbacks: list[str] = []
        cands, cold, user = self._recall(user_id, k, params, fallbacks)
        purchased = self.purchases.items(user_id, self.clock()) \
            if self.rules.already_purchased else set()
        items: list[dict[str, Any]] = []
        if cands is not None and len(cands):
            ids, fused = cands.item_ids, cands.scores
            inputs = self.rec.ranker_rows(user, ids, self._request(ctx))
            self._features_degraded(inputs, fallbacks)
            scores = fused
            if params["use_ranker"]:
                try:
                    scores = self.rec.score_rows(inputs)
                    if scores.shape != fused.shape or not np.isfinite(scores).all():
                        raise ValueError(f"ranker returned {scores.shape} scores, non-finite "
                                         f"or of the wrong shape, for {len(ids)} items")
                except Exception:  # noqa: BLE001 - keep the recall order
                    log.exception("ranker failed for user %s", user_id)
                    self._degrade(fallbacks, "ranker")
                    scores = fused
                else:
                    self._log_features(inputs)
            order = np.argsort(-scores, kind="stable")
            slate = self._slate(ids[order], scores[order], inputs, order)
            rules = dataclasses.replace(self.rules, diversity=params["diversity"]) \
                if params["diversity"] else self.rules
            sim = self.neighbours.cosine(slate.item_ids) \
                if rules.diversity == "mmr" and self.neighbours is not None else None
            rows, final = rerank(slate, rules, purchased=purchased, exclude=ctx.exclude,
                                 categories=ctx.categories, similarity=sim)
            for r, score in zip(rows[:k], final[:k], strict=False):
                items.append({"item_id": int(ids[order[r]]), "score": float(score),
                              "sources": list(cands.sources_of(order[r]))})
        if len(items) < k:
            self._fill(items, k, ctx, purchased, fallbacks)
        return Answer(items, variants, fallbacks, cold)

    def last_resort(self, user_id: int, k: int, context: RequestContext | None) -> Answer:
        """Popular items only, for when :meth:`recommend` itself failed (``error`` fallback)."""
        fallbacks = ["error"]
        self.counters.inc(FALLBACK, reason="error")
        items: list[dict[str, Any]] = []
        self._fill(items, k, context or RequestContext(), set(), fallbacks)
        return Answer(items, assign(self.layers, user_id)[0], fallbacks)

    def _fill(self, items: list[dict[str, Any]], k: int, ctx: RequestContext,
              purchased: set[int], fallbacks: list[str]) -> None:
        """Append popular items that pass the filters until ``k`` (score 0, unranked)."""
        taken = {it["item_id"] for it in items}
        ids = self.popular
        slate = self._slate(ids, np.zeros(len(ids)), None)
        keep, _ = keep_mask(slate, self.rules, purchased=purchased, exclude=ctx.exclude | taken,
                            categories=ctx.categories)
        added = [int(i) for i in ids[keep][:k - len(items)]]
        if added:
            self._degrade(fallbacks, POPULARITY)
            items.extend({"item_id": i, "score": 0.0, "sources": [POPULARITY]} for i in added)

    def rank(self, user_id: Any, item_ids: Sequence[Any]) -> tuple[list[dict[str, Any]],
                                                                  list[str]]:
        """Score ``item_ids`` for ``user_id`` with the ranker; best first.

        If the ranker fails the items come back in the given order with ``score: None``.

        Raises:
            InvalidRequest: for a bad user id or item list (empty, too long, repeated ids).
        """
        user_id, _ = validate_request(user_id, 1)
        if user_id > MAX_ID:
            raise InvalidRequest(f"user_id must be < 2**63, got {user_id}")
        ids = check_ids("item_ids", list(item_ids), self.config.max_rank_items)
        if not ids:
            raise InvalidRequest("item_ids must hold at least one id")
        fallbacks: list[str] = []
        rows = self.rec.ranker_rows(self.rec.user_row(user_id), np.array(ids, dtype=np.int64),
                                    self._request(RequestContext()))
        self._features_degraded(rows, fallbacks)
        try:
            scores = self.rec.score_rows(rows)
            if scores.shape != (len(ids),) or not np.isfinite(scores).all():
                raise ValueError(f"ranker returned unusable scores {scores!r}")
        except Exception:  # noqa: BLE001 - answer unscored rather than fail
            log.exception("ranker failed in /rank for user %s", user_id)
            self._degrade(fallbacks, "ranker")
            return [{"item_id": i, "score": None} for i in ids], fallbacks
        self._log_features(rows)
        order = np.argsort(-scores, kind="stable")
        return [{"item_id": ids[i], "score": float(scores[i])} for i in order], fallbacks

    def similar(self, item_id: Any, k: Any) -> list[dict[str, Any]]:
        """The ``k`` nearest items of ``item_id`` in the item index.

        Raises:
            InvalidRequest: for a bad id or ``k``; ``serving.similar.UnknownItem`` for an item
                the index does not hold.
        """
        item_id, k = validate_request(item_id, k)
        if self.neighbours is None:
            raise RuntimeError("this pipeline was built without an item index")
        return [{"item_id": i, "score": s} for i, s in self.neighbours.similar(item_id, k)]
