"""Graceful degradation: counted fallbacks, a feature fetch that never fails, a popularity list.

Three failures must not take ``/recommend`` down (see :mod:`serving.pipeline` for where each is
used), and every time one is absorbed it is counted in :class:`CounterLog` (exported to
Prometheus on ``/metrics`` by :mod:`serving.metrics`):

* the online feature store fails -> :class:`ResilientFetch` returns the contract defaults (the
  values training fills for a missing row) and stops calling the store for ``retry_after_s``
  seconds, so an outage costs one failed call per interval, not one timeout per request;
* the ranker fails -> the recall order is kept (in the pipeline);
* nothing else yields items -> the :class:`Catalogue` popularity list is the last resort.

The popularity list is computed when the service starts, from the newest daily snapshot of the
feature view that owns the configured popularity feature (``i_clicks_30d`` by default, see
``serving/config/serving.yaml``) under ``$SHOPREC_HOME/features/``, restricted to items of the
FAISS index. The same snapshot gives the item attributes re-ranking needs while the online
store is down. Without a snapshot the catalogue is empty and the last resort is the index order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from feature_repo.online import Fetch, conform
from shoprec.contract import Contract

log = logging.getLogger(__name__)

FALLBACK = "fallback"
"""Counter of absorbed failures and degraded paths, label ``reason``."""
VARIANT = "variant"
"""Counter of experiment assignments, labels ``layer`` and ``variant``."""
FEEDBACK = "feedback"
"""Counter of stored feedback events, label ``event_type``."""
METRICS: dict[str, tuple[str, ...]] = {FALLBACK: ("reason",), VARIANT: ("layer", "variant"),
                                       FEEDBACK: ("event_type",)}
DEFAULTED = "defaulted"
"""``DataFrame.attrs`` key: True when the frame holds contract defaults, not store values."""

Sink = Callable[[str, Mapping[str, str], float], None]


class CounterLog:
    """Thread-safe counters by metric and labels, optionally mirrored to a sink (Prometheus).

    The in-process values let tests and the pipeline read what happened; the sink exports the
    same increments on ``/metrics``.
    """

    def __init__(self, sink: Sink | None = None) -> None:
        """Start every counter at 0."""
        self._counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        self._sink = sink

    def inc(self, metric: str, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to ``metric`` with exactly its declared labels."""
        if metric not in METRICS or set(labels) != set(METRICS[metric]):
            raise ValueError(f"metric {metric!r} takes labels {METRICS.get(metric)}, "
                             f"got {sorted(labels)}")
        key = (metric, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + amount
        if self._sink is not None:
            self._sink(metric, labels, amount)

    def get(self, metric: str, **labels: str) -> float:
        """Current value (0 if never incremented)."""
        return self._counts.get((metric, tuple(sorted(labels.items()))), 0.0)

    def snapshot(self) -> dict[str, float]:
        """``{"metric{label=value,...}": value}`` for logs and tests."""
        with self._lock:
            return {f"{m}{{{','.join(f'{k}={v}' for k, v in labels)}}}": n
                    for (m, labels), n in sorted(self._counts.items())}


def default_features(entity_df: pd.DataFrame, contract: Contract, service: str) -> pd.DataFrame:
    """The rows a missing feature store would give: keys plus every feature at its default."""
    out = conform(entity_df.reset_index(drop=True), contract, service)
    out.attrs[DEFAULTED] = True
    return out


class ResilientFetch:
    """A :data:`Fetch` that answers with contract defaults when the store fails.

    After a failure the store is not called again for ``retry_after_s`` seconds (a simple
    circuit breaker); every defaulted answer increments ``fallback{reason="feature_store"}``.
    Frames carry ``attrs["defaulted"]`` so callers know which answer they got.
    """

    def __init__(self, fetch: Fetch, contract: Contract, counters: CounterLog,
                 retry_after_s: float = 5.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        """Wrap ``fetch``; nothing is called until the first request."""
        self.fetch, self.contract, self.counters = fetch, contract, counters
        self.retry_after_s, self.clock = retry_after_s, clock
        self._closed_until = float("-inf")
        self._lock = threading.Lock()

    def __call__(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        """Store features for ``entity_df``, or defaults if the store is failing."""
        if self.clock() >= self._closed_until:
            try:
                got = self.fetch(service, entity_df)
                if len(got) != len(entity_df):
                    raise RuntimeError(f"store returned {len(got)} rows for {len(entity_df)}")
                got.attrs[DEFAULTED] = False
                return got
            except Exception as err:  # noqa: BLE001 - any store failure degrades the same way
                log.warning("online feature store failed (%s: %s); serving contract defaults "
                            "for %.0f s", type(err).__name__, err, self.retry_after_s)
                with self._lock:
                    self._closed_until = self.clock() + self.retry_after_s
        self.counters.inc(FALLBACK, reason="feature_store")
        return default_features(entity_df, self.contract, service)


@dataclass
class Catalogue:
    """Item attributes and popularity from the newest feature snapshot (see module docstring).

    Attributes:
        table: One row per known item (index ``item_id``), one float column per role.
        popular: Item ids by descending popularity (ties by ascending id).
    """

    table: pd.DataFrame
    popular: np.ndarray

    @classmethod
    def empty(cls, roles: Mapping[str, str]) -> Catalogue:
        """A catalogue that knows nothing (every attribute NaN, no popularity)."""
        return cls(pd.DataFrame({r: pd.Series(dtype=np.float64) for r in roles}),
                   np.empty(0, dtype=np.int64))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, roles: Mapping[str, str], popularity_role: str,
                   key: str = "item_id") -> Catalogue:
        """Build from the ``key`` column plus feature columns (the last row per item wins).

        Only items whose popularity is known enter the popularity list.
        """
        table = pd.DataFrame({role: frame[feat].astype(np.float64).to_numpy()
                              for role, feat in roles.items()},
                             index=pd.Index(frame[key].astype(np.int64), name=key))
        table = table[~table.index.duplicated(keep="last")]
        known = table[table[popularity_role].notna()]
        order = np.lexsort((known.index.to_numpy(), -known[popularity_role].to_numpy()))
        return cls(table, known.index.to_numpy()[order])

    def attributes(self, item_ids: np.ndarray) -> pd.DataFrame:
        """Role columns for ``item_ids`` in that order (NaN for unknown items)."""
        return self.table.reindex(pd.Index(np.asarray(item_ids, dtype=np.int64)))

    def popularity_list(self, n: int, role: str) -> list[tuple[int, float]]:
        """The ``n`` most popular items as ``(item_id, popularity)``."""
        top = self.popular[:n]
        return list(zip(top.tolist(), self.table.loc[top, role].astype(float).tolist(),
                        strict=True))


def load_catalogue(features_dir: Path, contract: Contract, roles: Mapping[str, str],
                   popularity_role: str, item_ids: np.ndarray) -> Catalogue:
    """Read the newest snapshot row per item of the views owning the role features.

    Missing snapshot files leave those attributes unknown (logged, not fatal: the service can
    still answer from the models).
    """
    key = contract.entity("item").join_key
    ts = contract.timestamp_field
    frame = pd.DataFrame({key: np.unique(np.asarray(item_ids, dtype=np.int64))})
    for view in dict.fromkeys(contract.feature(f).view for f in roles.values()):
        path = Path(features_dir) / f"{view}.parquet"
        cols = [f for f in roles.values() if contract.feature(f).view == view]
        if not path.exists():
            log.warning("no feature snapshot %s: %s unknown to the popularity fallback", path,
                        cols)
            frame[cols] = np.nan
            continue
        snap = pd.read_parquet(path, columns=[key, ts, *cols])
        snap = snap.sort_values([key, ts]).drop_duplicates(key, keep="last")
        frame = frame.merge(snap[[key, *cols]], on=key, how="left")
    return Catalogue.from_frame(frame, roles, popularity_role, key)
