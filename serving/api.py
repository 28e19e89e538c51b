"""Typed request and response models of the ShopRec HTTP API (shown on the OpenAPI page).

Pydantic checks shapes and hard bounds before any work is done (BentoML answers a
``ValidationError`` with a 400 naming the field); :mod:`serving.pipeline` and
:mod:`serving.feedback` then apply the configured limits. The feedback event model is generated
from :data:`shoprec.contract.EVENT_SCHEMA` (types, lower bounds, allowed values, descriptions),
so the API cannot drift from the contract; ``event_id`` is assigned by the server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from serving.feedback import SERVER_DEFAULTS
from shoprec.contract import DEVICES, EVENT_SCHEMA

MAX_ID = 2**63 - 1
MAX_LIST = 1000
"""Hard cap on id lists at parse time; the configured limits (``serving.yaml``) are lower."""
Id = Annotated[int, Field(ge=0, le=MAX_ID)]
NAME_PATTERN = r"^[A-Za-z0-9_\-]+$"


class Context(BaseModel):
    """Where the recommendation is shown and what it must leave out."""

    model_config = ConfigDict(extra="forbid")

    device: Optional[Literal[DEVICES]] = Field(None, description="Client type.")  # noqa: UP045
    page: Optional[str] = Field(None, max_length=32, pattern=NAME_PATTERN,  # noqa: UP045
                                description="Page kind, one of serving.yaml `pages`.")
    categories: Optional[list[Id]] = Field(None, max_length=100,  # noqa: UP045
                                           description="Only items of these categories.")
    exclude: list[Id] = Field(default_factory=list, max_length=MAX_LIST,
                              description="Items not to recommend (in the cart, on screen).")


class Item(BaseModel):
    """One recommended item with the recall sources that proposed it."""

    item_id: int
    score: float = Field(description="Ranker score after re-ranking boosts (0: popularity fill).")
    sources: list[str] = Field(description="Recall sources: two_tower, popularity.")


class RecommendResponse(BaseModel):
    """Answer of ``/recommend``."""

    user_id: int
    items: list[Item]
    model_version: str = Field(description="Training run id of the served models.")
    request_id: str = Field(description="Send it back with feedback on these items.")
    variant: str = Field(description="A/B variants as 'layer:variant,...' (log with feedback).")
    variants: dict[str, str]
    cold_start: bool = Field(description="The user had no features: popularity was added.")
    fallbacks: list[str] = Field(description="Degraded steps of this answer, if any.")


class RankedItem(BaseModel):
    """One scored candidate (``score`` is null when the ranker was unavailable)."""

    item_id: int
    score: Optional[float]  # noqa: UP045


class RankResponse(BaseModel):
    """Answer of ``/rank``: the given candidates, best first."""

    user_id: int
    items: list[RankedItem]
    model_version: str
    fallbacks: list[str]


class Neighbour(BaseModel):
    """An item similar to the query item (inner product of item embeddings)."""

    item_id: int
    score: float


class SimilarResponse(BaseModel):
    """Answer of ``/similar_items``."""

    item_id: int
    items: list[Neighbour]
    model_version: str


class FeedbackResponse(BaseModel):
    """Answer of ``/feedback``."""

    stored: int = Field(description="Events written to the landing file.")
    file: str = Field(description="Landing file, relative to SHOPREC_HOME.")
    event_ids: list[str]
    online_push: str = Field(description="Whether the online store was refreshed, and why not.")


_PY_TYPES: dict[str, Any] = {"int64": int, "float64": float, "string": str,
                             "timestamp": datetime}


def _event_model() -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for col in EVENT_SCHEMA.columns:
        if col.name == EVENT_SCHEMA.key:
            continue
        kind: Any = Literal[col.allowed] if col.allowed else _PY_TYPES[col.dtype]
        bounds: dict[str, Any] = {}
        if col.min_value is not None:
            bounds["ge"] = col.min_value
        if col.dtype == "int64":
            bounds["le"] = MAX_ID
        if col.dtype == "float64":
            bounds["allow_inf_nan"] = False
        if col.dtype == "string" and not col.allowed:
            bounds["max_length"] = 128
        required = col.required and col.dtype != "timestamp" and col.name not in SERVER_DEFAULTS
        note = "" if required else (" Default: receipt time." if col.dtype == "timestamp" else
                                    f" Default: {SERVER_DEFAULTS.get(col.name)}.")
        fields[col.name] = (kind if required else Optional[kind],  # noqa: UP045
                            Field(... if required else None, description=col.description + note,
                                  **bounds))
    fields["variant"] = (Optional[str], Field(  # noqa: UP045
        None, max_length=256, description="The 'variant' of the /recommend answer (default: "
                                          "recomputed from user_id)."))
    fields["request_id"] = (Optional[str], Field(  # noqa: UP045
        None, max_length=64, pattern=NAME_PATTERN, description="The answer's request_id."))
    return create_model("FeedbackEvent", __config__=ConfigDict(extra="forbid"),
                        __doc__="One shop event about an item shown to a user.", **fields)


FeedbackEvent = _event_model()
