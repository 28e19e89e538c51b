"""The ShopRec Bento service: ``/recommend``, ``/rank``, ``/similar_items``, ``/feedback``.

A thin HTTP layer over :class:`serving.pipeline.Pipeline` (recall -> ranker -> re-rank, with
experiments and counted fallbacks) and :mod:`serving.feedback`. Health (``/livez``,
``/readyz``) and ``/metrics`` are BentoML's; ``/metrics`` also carries ``shoprec_fallback_total``,
``shoprec_variant_total`` and ``shoprec_feedback_total`` (:mod:`serving.metrics`).

The two BentoML models are class attributes because BentoML collects model references from the
class when it builds the bento; a reference created in ``__init__`` would be left out. Their
tags come from the bento's build arguments (``serving.package`` passes the exact tags of one
run), because BentoML resolves a ``name:latest`` reference against the whole model store again
at serve time. Serving the source (``serving.service:ShopRec``) still means ``:latest``. Before
loading anything the service checks that both models carry the same ``run_id`` label. This
module is an entry point, so it is the one place in serving that reads
:meth:`Settings.from_env`. Caller errors become 4xx responses naming the problem: 400 for
invalid input, 404 for an item the index does not hold.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any, Optional

import bentoml
import numpy as np
from pydantic import BaseModel, Field

from serving.api import (
    MAX_ID,
    MAX_LIST,
    Context,
    FeedbackEvent,
    FeedbackResponse,
    Id,
    RankResponse,
    RecommendResponse,
    SimilarResponse,
)
from serving.recommender import MAX_K
from shoprec.contract import EVENT_SCHEMA

log = logging.getLogger(__name__)

RETRIEVAL_MODEL = "shoprec_retrieval"
RANKER_MODEL = "shoprec_ranker"


class BentoArgs(BaseModel):
    """Build arguments ``serving.package`` stores in the bento (defaults: serve from source)."""

    retrieval_model: str = f"{RETRIEVAL_MODEL}:latest"
    ranker_model: str = f"{RANKER_MODEL}:latest"
    run_id: str = ""
    run_fingerprint: str = ""


ARGS = bentoml.use_arguments(BentoArgs)
UserId = Annotated[int, Field(ge=0, le=MAX_ID, description="Shop user id.")]
K = Annotated[int, Field(ge=1, le=MAX_K, description="How many items.")]


@bentoml.service(
    name="shoprec",
    workers=2,  # the model call and the Python around it, side by side on 2 cores
    traffic={"timeout": 30},
    # One TF thread per worker: two workers already fill two cores (measured: 115 vs 104
    # rps). XLA auto-clustering fuses the ranker's many small ops (the id hashing, AsString,
    # stays outside the clusters): DIN on 500 candidates 7.4 -> 5.3 ms, scores equal to
    # 1.2e-7; each new batch size compiles once (~0.1 s).
    envs=[{"name": "TF_USE_LEGACY_KERAS", "value": "1"},
          {"name": "TF_NUM_INTRAOP_THREADS", "value": "1"},
          {"name": "TF_NUM_INTEROP_THREADS", "value": "1"},
          {"name": "TF_XLA_FLAGS", "value": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"}],
)
class ShopRec:
    """Two-stage recommendations with re-ranking, A/B experiments and a feedback loop."""

    retrieval = bentoml.models.BentoModel(ARGS.retrieval_model)
    ranker = bentoml.models.BentoModel(ARGS.ranker_model)

    def __init__(self) -> None:
        """Load models, index, configs and catalogue once per worker; open the online store."""
        import pandas as pd

        from feature_repo.online import feast_fetcher, open_feature_store
        from serving.artifacts import load_artifacts
        from serving.config import load_experiments, load_pipeline, load_rerank
        from serving.fallback import CounterLog, ResilientFetch, load_catalogue
        from serving.feature_log import FeatureLog
        from serving.feedback import PurchaseMemory, recent_purchases
        from serving.feedback_tail import FeedbackTail
        from serving.item_cache import ItemCache
        from serving.metrics import prometheus_sink
        from serving.pipeline import Pipeline
        from serving.recommender import Recommender
        from serving.registry import check_same_run
        from serving.similar import ItemNeighbours
        from shoprec.settings import Settings

        self.version = check_same_run(str(self.retrieval.tag), self.retrieval.info.labels,
                                      str(self.ranker.tag), self.ranker.info.labels,
                                      ARGS.run_id or None)
        self.settings = Settings.from_env()
        contract = self.settings.load_contract()
        config, rules = load_pipeline(contract), load_rerank()
        self.counters = CounterLog(prometheus_sink())
        artifacts = load_artifacts(self.retrieval.path, self.ranker.path)
        self.store = open_feature_store(self.settings)
        self.contract = contract
        raw = feast_fetcher(self.store, contract)
        # Warm up with the raw fetcher before /readyz turns green: the first call traces TF
        # functions (XLA compiles the candidate batch size), loads the Feast registry, and a
        # broken store config fails startup.
        Recommender(artifacts, raw, contract, n_candidates=config.n_candidates).recommend(0, 1)
        fetch = ResilientFetch(raw, contract, self.counters, config.retry_after_s)
        # the ranker's item rows, read once here and refreshed in the background: a request
        # then reads one user row from the store, not one row per candidate
        self.items = ItemCache(fetch, contract)
        self.items.load(artifacts.item_ids)
        self._stop_refresh = self.items.start(config.item_refresh_s, config.retry_after_s)
        purchases = PurchaseMemory(rules.purchase_window_days)
        since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=rules.purchase_window_days)
        purchases.add_frame(recent_purchases(self.settings, since))
        # /feedback landed by the other workers reaches this one at its next request
        self.tail = FeedbackTail(self.settings, purchases, on_items=self._refresh_items)
        # sampled ranked feature vectors, for the training-serving skew check (validation.skew)
        self.feature_log = FeatureLog(self.settings, contract, background=True)
        self.pipeline = Pipeline(
            Recommender(artifacts, fetch, contract, n_candidates=config.n_candidates,
                        items=self.items),
            load_catalogue(self.settings.features_dir, contract, config.roles, "popularity",
                           artifacts.item_ids),
            purchases, config, rules, load_experiments(), self.counters,
            ItemNeighbours(artifacts.index, artifacts.item_ids), feature_log=self.feature_log)

    @bentoml.on_shutdown
    def close_feature_log(self) -> None:
        """Write the buffered feature vectors: a worker stopping must not drop its log tail."""
        self._stop_refresh()
        self.feature_log.close()

    def _refresh_items(self, item_ids: np.ndarray) -> None:
        """Re-read the cached rows of ``item_ids`` (new events changed their online rows)."""
        self.items.update(item_ids[np.isin(item_ids, self.items.table.ids)])

    @staticmethod
    def _bad_request(err: Exception) -> bentoml.exceptions.BentoMLException:
        return bentoml.exceptions.InvalidArgument(str(err))

    @bentoml.api
    async def recommend(self, user_id: UserId, k: K = 10,
                  context: Optional[Context] = None) -> RecommendResponse:  # noqa: UP045
        """Top ``k`` items for ``user_id``: recall, ranker, re-ranking rules, A/B variants.

        ``async`` although the work is CPU-bound, on purpose: a worker serves one sync call at
        a time anyway (BentoML's default ``threads=1``), and running it on the event loop saves
        the hand-over to the thread pool and leaves a busy worker's socket to the idle one
        (measured at 8 clients: p99 90 ms instead of 105 ms at the same 153 requests/s).
        """
        from serving.experiments import encode
        from serving.pipeline import RequestContext
        from serving.recommender import InvalidRequest

        try:
            self.tail.poll()
        except Exception:  # noqa: BLE001 - stale purchases must not cost the answer
            log.exception("could not read new feedback files")
        ctx = None if context is None else RequestContext(
            context.device, context.page,
            None if context.categories is None else frozenset(context.categories),
            frozenset(context.exclude))
        try:
            answer = self.pipeline.recommend(user_id, k, ctx)
        except InvalidRequest as err:
            raise self._bad_request(err) from err
        except Exception:  # noqa: BLE001 - a bug must not cost the shop its recommendations
            log.exception("recommend failed for user %s; serving popularity", user_id)
            answer = self.pipeline.last_resort(user_id, k, ctx)
        return RecommendResponse(user_id=user_id, items=answer.items, model_version=self.version,
                                 request_id=uuid.uuid4().hex, variant=encode(answer.variants),
                                 variants=answer.variants, cold_start=answer.cold_start,
                                 fallbacks=answer.fallbacks)

    @bentoml.api
    def rank(self, user_id: UserId,
             item_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_LIST)]
             ) -> RankResponse:
        """Score the given candidates for ``user_id`` with the ranker, best first."""
        from serving.recommender import InvalidRequest

        try:
            items, fallbacks = self.pipeline.rank(user_id, item_ids)
        except InvalidRequest as err:
            raise self._bad_request(err) from err
        return RankResponse(user_id=user_id, items=items, model_version=self.version,
                            fallbacks=fallbacks)

    @bentoml.api
    def similar_items(self, item_id: Annotated[int, Field(ge=0, le=MAX_ID)],
                      k: K = 10) -> SimilarResponse:
        """The ``k`` items nearest to ``item_id`` in the two-tower item embedding space."""
        from serving.recommender import InvalidRequest
        from serving.similar import UnknownItem

        try:
            items = self.pipeline.similar(item_id, k)
        except InvalidRequest as err:
            raise self._bad_request(err) from err
        except UnknownItem as err:
            raise bentoml.exceptions.NotFound(str(err)) from err
        return SimilarResponse(item_id=item_id, items=items, model_version=self.version)

    @bentoml.api
    def feedback(self, events: Annotated[list[FeedbackEvent], Field(min_length=1,
                                                                    max_length=MAX_LIST)]
                 ) -> FeedbackResponse:
        """Store impressions, clicks, carts and purchases for the next training run."""
        from datetime import UTC, datetime

        from serving.experiments import assign, encode
        from serving.fallback import FEEDBACK
        from serving.feedback import InvalidFeedback, normalise, write_feedback

        now = datetime.now(UTC)
        layers = self.pipeline.layers
        try:
            frame = normalise([e.model_dump(exclude_none=True) for e in events], now,
                              lambda user: encode(assign(layers, user)[0]))
        except InvalidFeedback as err:
            raise self._bad_request(err) from err
        path = write_feedback(self.settings, frame, now)
        self.pipeline.purchases.add_frame(frame)
        for event_type, n in frame["event_type"].value_counts().items():
            self.counters.inc(FEEDBACK, float(n), event_type=str(event_type))
        return FeedbackResponse(stored=len(frame), file=str(path.relative_to(self.settings.home)),
                                event_ids=frame[EVENT_SCHEMA.key].tolist(),
                                online_push=self._push(frame, now))

    def _push(self, frame: Any, now: Any) -> str:
        """Refresh the users' online features from the new events (Feast push), or say why not.

        The events are already stored in the landing area, so a failed push loses nothing: the
        next pipeline run ingests them. It is counted as the ``push`` fallback.
        """
        from feature_repo.push import push_events
        from serving.fallback import FALLBACK
        from serving.feedback import feedback_dir

        try:
            report = push_events(self.settings, self.contract, self.store, frame, now=now,
                                 pending=(feedback_dir(self.settings),))
        except Exception as err:  # noqa: BLE001 - the events are stored; freshness can wait
            log.exception("online push of %d feedback events failed", len(frame))
            self.counters.inc(FALLBACK, reason="push")
            return f"not pushed ({type(err).__name__}: {err}); the next pipeline run ingests them"
        rows = {view: r["rows"] for view, r in report["views"].items()}
        # the push rewrote these items' online rows: the cached copies follow at once
        self._refresh_items(frame[EVENT_SCHEMA.column("item_id").name].to_numpy())
        return f"pushed {rows} in {report['seconds'] * 1000:.0f} ms"
