"""Assemble the ranker's inputs for one user and many items from three parts, without pandas.

The ranker's FeatureService splits by what keys its views (:func:`service_part`):

* ``ranker@user``: one store read per request, the row repeated for every candidate;
* ``ranker@item``: the cached item rows (:class:`serving.item_cache.ItemCache`);
* ``ranker@request``: computed once per request by
  :func:`feature_repo.request_context.compute`, the function Feast's on-demand view runs
  offline and online, from the request fields (missing ones as a live request means them:
  the current time, an unknown device, like ``feature_repo.online.with_request_fields``).

Only NumPy happens per request; a DataFrame is built only when the served-feature log samples
the request (:meth:`RankerRows.frame`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.request_context import compute, view_spec
from serving.columns import Columns, frame_of
from serving.fallback import DEFAULTED
from shoprec.contract import RANKER, USER_TOWER, Contract
from shoprec.contract_model import REQUEST_PART, service_part

KEYS = ("user_id", "item_id")


@dataclass
class RankerRows:
    """Ranker inputs of ``n`` (user, item) pairs.

    Attributes:
        columns: ``user_id``, ``item_id`` and every ranker feature: ``[n]`` arrays, ``[n, L]``
            for sequences.
        request: The request field values the request features were computed from.
        user_defaulted: The user row holds contract defaults (the store failed).
        items_defaulted: Some item row holds contract defaults (the store failed).
    """

    columns: dict[str, np.ndarray]
    request: dict[str, Any]
    user_defaulted: bool
    items_defaulted: bool

    def __len__(self) -> int:
        return len(self.columns["item_id"])

    @property
    def defaulted(self) -> bool:
        """Whether any part holds defaults instead of store values."""
        return self.user_defaulted or self.items_defaulted

    def model_inputs(self) -> dict[str, np.ndarray]:
        """The arrays the ranker signature takes (keys and features)."""
        return self.columns

    def take(self, order: np.ndarray) -> RankerRows:
        """The rows in ``order`` (a permutation or a subset)."""
        return RankerRows({k: v[order] for k, v in self.columns.items()}, self.request,
                          self.user_defaulted, self.items_defaulted)

    def frame(self) -> pd.DataFrame:
        """Keys, request fields and features as one frame (what the feature log takes)."""
        out = frame_of(self.columns)
        for name, value in self.request.items():
            out[name] = [value] * len(out)
        return out


class RankerInputs:
    """How one contract's ranker inputs are assembled (module docstring)."""

    def __init__(self, contract: Contract, service: str = RANKER) -> None:
        """Split ``service``'s features into parts; raise if a feature belongs to none."""
        self.contract = contract
        self.user_part = service_part(service, "user")
        self.item_part = service_part(service, "item")
        self.user_names = [f.name for f in contract.service_features(self.user_part)]
        self.item_names = [f.name for f in contract.service_features(self.item_part)]
        request = contract.service_features(service_part(service, REQUEST_PART))
        self.specs = [view_spec(contract, v) for v in dict.fromkeys(f.view for f in request)]
        self.fields = contract.service_request_fields(service)
        self.names = [f.name for f in contract.service_features(service)]
        parted = {*self.user_names, *self.item_names, *(f.name for f in request)}
        if set(self.names) - parted:
            raise ValueError(f"{service} features keyed by neither user nor item: "
                             f"{sorted(set(self.names) - parted)}")
        owned = set(self.user_names)
        self.tower_apart = any(f.name not in owned
                               for f in contract.service_features(USER_TOWER))

    def request_values(self, request: Mapping[str, Any],
                       now: datetime | None = None) -> dict[str, Any]:
        """Every request field: given ones as they are, a missing time = now, others None."""
        stamp = pd.Timestamp(now or datetime.now(UTC))
        return {r.name: request.get(r.name, stamp if r.dtype == "timestamp" else None)
                for r in self.fields}

    def rows(self, user: pd.DataFrame | Columns, item_ids: np.ndarray,
             items: Mapping[str, np.ndarray], request: Mapping[str, Any],
             items_defaulted: bool = False) -> RankerRows:
        """The inputs of ``user`` (one row) against ``item_ids`` (with their cached rows)."""
        n = len(item_ids)
        user = user if isinstance(user, Columns) else Columns(user, self.contract)
        user_id = int(user.df["user_id"].iloc[0])
        cols: dict[str, np.ndarray] = {"user_id": np.full(n, user_id, dtype=np.int64),
                                       "item_id": np.asarray(item_ids, dtype=np.int64)}
        for name in self.user_names:
            cols[name] = np.repeat(user(name)[:1], n, axis=0)
        cols.update({name: items[name] for name in self.item_names})
        values = self.request_values(request)
        for spec in self.specs:
            for name, got in compute({k: [v] for k, v in values.items()}, spec).items():
                cols[name] = np.full(n, got[0], dtype=np.int64)
        ordered = {k: cols[k] for k in (*KEYS, *self.names)}
        return RankerRows(ordered, values, bool(user.attrs.get(DEFAULTED, False)),
                          items_defaulted)
