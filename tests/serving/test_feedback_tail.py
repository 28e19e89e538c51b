"""FeedbackTail: files landed by another worker reach this worker's purchase memory and cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from serving.feedback import PurchaseMemory, normalise, write_feedback
from serving.feedback_tail import FeedbackTail
from shoprec.settings import Settings

NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)


def land(settings: Settings, user: int, item: int, kinds: list[str]) -> None:
    """What /feedback on another worker does: validate and land one file."""
    events = [{"user_id": user, "item_id": item, "event_type": kind,
               "event_ts": (NOW - timedelta(minutes=10 - n)).isoformat()}
              for n, kind in enumerate(kinds)]
    write_feedback(settings, normalise(events, NOW, lambda u: "ranker:champion"), NOW)


def test_new_files_of_other_workers_are_read_once(tmp_path):
    settings = Settings(home=tmp_path)
    land(settings, 1, 10, ["purchase"])  # before start: recent_purchases' job, not the tail's
    memory, seen_items = PurchaseMemory(30), []
    tail = FeedbackTail(settings, memory, on_items=seen_items.append, clock=lambda: NOW)
    assert tail.poll() == 0 and memory.items(1, NOW) == set()
    land(settings, 2, 20, ["impression", "click", "purchase"])
    land(settings, 3, 30, ["click"])
    assert tail.poll() == 2
    assert memory.items(2, NOW) == {20} and memory.items(3, NOW) == set()
    assert [a.tolist() for a in seen_items] == [[20, 30]]
    assert tail.poll() == 0  # nothing new: two stat calls, no read
    land(settings, 2, 21, ["purchase"])
    assert tail.poll() == 1 and memory.items(2, NOW) == {20, 21}


def test_no_feedback_folder_yet_is_not_an_error(tmp_path):
    tail = FeedbackTail(Settings(home=tmp_path), PurchaseMemory(30), clock=lambda: NOW)
    assert tail.poll() == 0


def test_purchase_rows_only_enter_the_memory(tmp_path):
    settings = Settings(home=tmp_path)
    memory = PurchaseMemory(30)
    tail = FeedbackTail(settings, memory, clock=lambda: NOW)
    land(settings, 5, 50, ["click", "cart"])
    assert tail.poll() == 1
    assert memory.items(5, NOW) == set()
    frame = pd.DataFrame({"user_id": [5], "item_id": [np.int64(51)], "event_type": ["purchase"],
                          "event_ts": [pd.Timestamp(NOW)]})
    memory.add_frame(frame)
    assert memory.items(5, NOW) == {51}
