"""The ranker's item features in memory: read from the online store per refresh, not per request.

A ``/recommend`` call ranks hundreds of candidates. Reading their item rows from the online
store on every call costs more than the whole latency budget (measured: 350-450 ms p50 for one
user and 500 items through Feast, sqlite or Redis), yet those rows change once a day (the
materialized snapshot) or when ``/feedback`` pushes new events for an item. So the item part of
the ranker's FeatureService (``ranker@item``, :func:`shoprec.contract_model.service_part`) is
read through the same fetcher, in chunks, into one column array per feature:

* :meth:`ItemCache.load` when the service starts (every item of the index),
* :meth:`ItemCache.update` for the items a ``/feedback`` push just rewrote, and for an unknown
  item a ``/rank`` call names (read once, then cached),
* :meth:`ItemCache.refresh` every ``item_refresh_s`` seconds from a background thread, which
  picks up a new materialized day; rows the store could not give (defaults after a failure)
  are retried every ``retry_s``.

Readers never lock: a refresh builds a new immutable :class:`ItemTable` and swaps it in with
one assignment. Values go through :func:`serving.columns.feature_array`, the same fill and
cast the per-request read uses, so the model sees identical inputs (tested on real Feast).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from feature_repo.online import Fetch
from serving.columns import feature_array
from serving.fallback import DEFAULTED
from shoprec.contract import RANKER, Contract
from shoprec.contract_model import service_part

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemTable:
    """Item rows by sorted id: one array per feature (``[n]``, or ``[n, L]`` for sequences).

    Attributes:
        ids: Sorted distinct item ids.
        columns: Feature name -> values aligned with ``ids``.
        defaulted: True where the row holds contract defaults because the store failed.
        loaded_at: Monotonic time of the read.
    """

    ids: np.ndarray
    columns: dict[str, np.ndarray]
    defaulted: np.ndarray
    loaded_at: float

    def positions(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row of each id, whether it is present)``; absent ids point at row 0."""
        pos = np.searchsorted(self.ids, item_ids)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        hit = self.ids[pos] == item_ids if len(self.ids) else np.zeros(len(item_ids), bool)
        return np.where(hit, pos, 0), hit


class ItemCache:
    """Item features of one service, in memory (module docstring).

    Args:
        fetch: The store reader (``serving.fallback.ResilientFetch`` in the service, so a
            failing store yields counted defaults instead of an exception).
        contract: Declares the features, dtypes and defaults.
        service: Whose item part to hold (the ranker's).
        chunk: Items per store read: bounds how long one read holds the store.
        clock: Monotonic clock (tests pass a fake one).
    """

    def __init__(self, fetch: Fetch, contract: Contract, service: str = RANKER,
                 chunk: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        """Start empty; nothing is read until :meth:`load`."""
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.fetch, self.contract, self.chunk, self.clock = fetch, contract, chunk, clock
        self.part = service_part(service, "item")
        self.features = [f.name for f in contract.service_features(self.part)]
        self.key = contract.entity("item").join_key
        self._table = self._empty()
        self._write = threading.Lock()  # one writer at a time; readers take self._table as is

    @property
    def table(self) -> ItemTable:
        """The current table (immutable; a refresh replaces it)."""
        return self._table

    def _empty(self) -> ItemTable:
        cols = {n: feature_array(pd.DataFrame({n: pd.Series([], dtype=object)}), n,
                                 self.contract) for n in self.features}
        return ItemTable(np.empty(0, np.int64), cols, np.empty(0, bool), self.clock())

    def read(self, item_ids: np.ndarray) -> ItemTable:
        """Read ``item_ids`` (sorted, distinct) from the store in chunks of ``chunk``."""
        parts: list[dict[str, np.ndarray]] = []
        flags: list[np.ndarray] = []
        for start in range(0, len(item_ids), self.chunk):
            ids = item_ids[start:start + self.chunk]
            got = self.fetch(self.part, pd.DataFrame({self.key: ids}))
            if len(got) != len(ids):
                raise RuntimeError(f"fetch({self.part!r}) returned {len(got)} rows for "
                                   f"{len(ids)} items")
            parts.append({n: feature_array(got, n, self.contract) for n in self.features})
            flags.append(np.full(len(ids), bool(got.attrs.get(DEFAULTED, False))))
        if not parts:
            return self._empty()
        cols = {n: np.concatenate([p[n] for p in parts]) for n in self.features}
        return ItemTable(item_ids, cols, np.concatenate(flags), self.clock())

    def load(self, item_ids: np.ndarray) -> ItemTable:
        """Replace the table by a fresh read of ``item_ids``; returns it.

        Rows the store could not give (defaults after a failure) keep their last good values:
        a refresh during an outage must not wipe the cache that lets serving ride it out.
        """
        ids = np.unique(np.asarray(item_ids, dtype=np.int64))
        with self._write:
            self._table = self._keep_good(self.read(ids), self._table)
        return self._table

    def _keep_good(self, fresh: ItemTable, old: ItemTable) -> ItemTable:
        """``fresh`` with its defaulted rows replaced by ``old``'s good rows of the same ids."""
        if not fresh.defaulted.any() or not len(old.ids):
            return fresh
        pos, hit = old.positions(fresh.ids)
        take = fresh.defaulted & hit & ~old.defaulted[pos]
        if not take.any():
            return fresh
        cols = {n: np.where(take.reshape(-1, *([1] * (fresh.columns[n].ndim - 1))),
                            old.columns[n][pos], fresh.columns[n]) for n in self.features}
        return ItemTable(fresh.ids, cols, fresh.defaulted & ~take, fresh.loaded_at)

    def update(self, item_ids: np.ndarray) -> int:
        """Re-read ``item_ids`` (cached or not) and merge them in; returns how many were read."""
        ids = np.unique(np.asarray(item_ids, dtype=np.int64))
        if not len(ids):
            return 0
        with self._write:
            old = self._table
            fresh = self._keep_good(self.read(ids), old)
            keep = ~np.isin(old.ids, ids)
            merged = np.concatenate([old.ids[keep], fresh.ids])
            order = np.argsort(merged, kind="stable")
            cols = {n: np.concatenate([old.columns[n][keep], fresh.columns[n]])[order]
                    for n in self.features}
            flags = np.concatenate([old.defaulted[keep], fresh.defaulted])[order]
            self._table = ItemTable(merged[order], cols, flags, old.loaded_at)
        return len(ids)

    def refresh(self) -> ItemTable:
        """Re-read every cached item (a new materialized day reaches serving this way)."""
        return self.load(self._table.ids)

    def retry_defaulted(self) -> int:
        """Re-read the rows that hold defaults after a store failure; returns how many."""
        t = self._table
        return self.update(t.ids[t.defaulted]) if t.defaulted.any() else 0

    def gather(self, item_ids: np.ndarray) -> tuple[dict[str, np.ndarray], bool]:
        """Feature columns of ``item_ids`` in that order, and whether any row is defaulted.

        Items not cached yet are read from the store first (then kept).
        """
        ids = np.asarray(item_ids, dtype=np.int64)
        table = self._table
        pos, hit = table.positions(ids)
        if not hit.all():
            self.update(ids[~hit])
            table = self._table
            pos, hit = table.positions(ids)
        return ({n: table.columns[n][pos] for n in self.features},
                bool(table.defaulted[pos].any()))

    def start(self, every_s: float, retry_s: float) -> Callable[[], None]:
        """Refresh in a daemon thread every ``every_s`` s (defaulted rows every ``retry_s``).

        Returns:
            A function that stops the thread and waits for it.
        """
        if not (every_s > 0 and retry_s > 0):
            raise ValueError(f"refresh intervals must be > 0, got {every_s} / {retry_s}")
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(min(every_s, retry_s)):
                try:
                    if self.clock() - self._table.loaded_at >= every_s:
                        self.refresh()
                    else:
                        self.retry_defaulted()
                except Exception:  # noqa: BLE001 - keep serving the last good table
                    log.exception("item feature refresh failed; keeping the cached rows")

        thread = threading.Thread(target=loop, name="item-cache-refresh", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=30)

        return halt
