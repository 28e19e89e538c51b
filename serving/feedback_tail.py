"""Feedback landed by any worker of the service, seen by every worker at its next request.

The Bento runs several worker processes (two on the 2-core reference machine: the ranker's
model call and the Python around it then run side by side). ``/feedback`` reaches one of them;
it lands the events as a new file under ``landing/events/feedback/dt=YYYY-MM-DD/`` before it
answers. A purchase must hide the item from that user's next ``/recommend`` whichever worker
answers, so each worker tails that folder: :meth:`FeedbackTail.poll` costs two ``stat`` calls
when nothing changed, and otherwise reads only the purchase rows and item ids of the files it
has not seen (the files are written atomically, so a visible file is complete).

The items of those events are handed to ``on_items`` (the service re-reads them into its item
feature cache; the worker that took the request also re-reads them after its push).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from serving.feedback import PURCHASE, PurchaseMemory, feedback_dir
from shoprec.ingest_store import EVENT_TS
from shoprec.settings import Settings


class FeedbackTail:
    """Read feedback files this process has not seen yet (module docstring).

    Args:
        settings: Where the feedback lands.
        purchases: Memory the new purchases go to.
        on_items: Called with the item ids of new events (optional).
        clock: Current time (tests pass a fixed one); decides today's folder.
    """

    def __init__(self, settings: Settings, purchases: PurchaseMemory,
                 on_items: Callable[[np.ndarray], object] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Start by taking every file already landed as seen (``recent_purchases`` read them)."""
        self.root = feedback_dir(settings)
        self.purchases, self.on_items, self.clock = purchases, on_items, clock
        self._seen = set(self._files())
        self._stamp = self._stamps()
        self._lock = threading.Lock()

    def _day_dirs(self) -> list[Path]:
        today = self.clock().astimezone(UTC)
        return [self.root / f"dt={today:%Y-%m-%d}"]

    def _stamps(self) -> tuple[int, ...]:
        """Modification times of the root and today's folder (0 when absent)."""
        out = []
        for d in (self.root, *self._day_dirs()):
            try:
                out.append(os.stat(d).st_mtime_ns)
            except FileNotFoundError:
                out.append(0)
        return tuple(out)

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("dt=*/*.parquet")) if self.root.exists() else []

    def poll(self) -> int:
        """Take in the files landed since the last poll; return how many were new."""
        stamp = self._stamps()
        if stamp == self._stamp:
            return 0
        import pyarrow.parquet as pq

        with self._lock:
            self._stamp = stamp
            new = [f for f in self._files() if f not in self._seen]
            items = []
            for f in new:
                table = pq.read_table(f, columns=["user_id", "item_id", "event_type", EVENT_TS])
                frame = table.to_pandas()
                self.purchases.add_frame(frame[frame["event_type"] == PURCHASE])
                items.append(frame["item_id"].to_numpy(dtype=np.int64))
                self._seen.add(f)
        if items and self.on_items is not None:
            self.on_items(np.unique(np.concatenate(items)))
        return len(new)
