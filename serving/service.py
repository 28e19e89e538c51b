"""The ShopRec Bento service: ``POST /recommend``.

A thin HTTP wrapper over :class:`serving.recommender.Recommender`. The two BentoML models are
class attributes because BentoML collects model references from the class when it builds the
bento; a reference created in ``__init__`` would be left out. Their tags come from the bento's
build arguments (``serving.package`` passes the exact tags of one run), because BentoML
resolves a ``name:latest`` reference against the whole model store again at serve time: a bento
built with ``:latest`` would silently pick up models saved after it. Serving the source
(``serving.service:ShopRec``, no arguments) still means ``:latest``. Before loading anything
the service checks that both models carry the same ``run_id`` label and refuses to start
otherwise. This module is an entry point, so it is the one place in serving that reads
:meth:`Settings.from_env` (for the Feast store).
"""

from __future__ import annotations

from typing import Annotated

import bentoml
from pydantic import BaseModel, Field

from serving.recommender import MAX_K, InvalidRequest

RETRIEVAL_MODEL = "shoprec_retrieval"
RANKER_MODEL = "shoprec_ranker"


class BentoArgs(BaseModel):
    """Build arguments ``serving.package`` stores in the bento (defaults: serve from source)."""

    retrieval_model: str = f"{RETRIEVAL_MODEL}:latest"
    ranker_model: str = f"{RANKER_MODEL}:latest"
    run_id: str = ""
    run_fingerprint: str = ""


ARGS = bentoml.use_arguments(BentoArgs)


@bentoml.service(
    name="shoprec",
    workers=1,
    traffic={"timeout": 30},
    envs=[{"name": "TF_USE_LEGACY_KERAS", "value": "1"}],
)
class ShopRec:
    """Two-stage recommendations: two-tower retrieval over FAISS, DCN ranker re-scoring."""

    retrieval = bentoml.models.BentoModel(ARGS.retrieval_model)
    ranker = bentoml.models.BentoModel(ARGS.ranker_model)

    def __init__(self) -> None:
        """Load SavedModels and the index once per worker and open the Feast online store."""
        from feature_repo.online import feast_fetcher, open_feature_store
        from serving.artifacts import load_artifacts
        from serving.recommender import Recommender
        from serving.registry import check_same_run
        from shoprec.settings import Settings

        self.version = check_same_run(str(self.retrieval.tag), self.retrieval.info.labels,
                                      str(self.ranker.tag), self.ranker.info.labels,
                                      ARGS.run_id or None)
        settings = Settings.from_env()
        contract = settings.load_contract()
        artifacts = load_artifacts(self.retrieval.path, self.ranker.path)
        store = open_feature_store(settings)
        self.recommender = Recommender(artifacts, feast_fetcher(store, contract), contract)
        # Warm up before /readyz turns green: the first call traces TF functions and loads
        # the Feast registry (~1 s), and a missing online store should fail startup, not users.
        self.recommender.recommend(0, 1)

    @bentoml.api
    def recommend(
        self,
        user_id: Annotated[int, Field(ge=0, description="Shop user id.")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many items.")] = 10,
    ) -> dict:
        """Top ``k`` items for ``user_id``, best first: ``{user_id, items, model_version}``."""
        try:
            items = self.recommender.recommend(user_id, k)
        except InvalidRequest as err:
            raise bentoml.exceptions.InvalidArgument(str(err)) from err
        return {"user_id": user_id, "items": items, "model_version": self.version}
