"""`shoprec_ab_report` under `dag.test()`, on feedback logged through the `/feedback` code path.

Events are written with `serving.feedback.normalise` + `write_feedback` (what the endpoint
calls), for the two arms of the `recall_quota` layer, with click and impression counts chosen
so that every figure of the report can be checked by hand. The run is a scheduled-style run
(logical date 2026-10-05), so the report covers the `days` before that date: a file logged
long before the window must not count.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving.feedback import normalise, write_feedback
from shoprec.airflow_local import airflow_env, run_dag
from shoprec.settings import Settings

pytestmark = pytest.mark.integration

RUN_AT = "2026-10-05T00:00:00+00:00"
TWO_TOWER = "diversity:none,ranker:champion,recall_quota:two_tower"
POP_MIX = "diversity:none,ranker:champion,recall_quota:pop_mix"


def _log(settings: Settings, day: str, variant: str, kind: str,
         pairs: list[tuple[int, int]]) -> Path:
    """Log one /feedback request of ``kind`` events received on ``day`` (its dt= folder)."""
    when = datetime.fromisoformat(f"{day}T15:00:00").replace(tzinfo=UTC)
    events = [{"user_id": u, "item_id": i, "event_type": kind, "variant": variant,
               "event_ts": when.isoformat()} for u, i in pairs]
    return write_feedback(settings, normalise(events, when, lambda _user: ""), when)


@pytest.fixture
def logged(settings: Settings) -> Settings:
    """two_tower: 5 impressed pairs, 2 of them clicked (one clicked twice), 1 bought.
    pop_mix: 8 impressed pairs, 3 clicked, none bought, plus one click on a pair it never
    showed. An old file (2026-09-20, before the 3-day window) would double pop_mix's clicks, a
    later one (2026-10-05 15:00, after the window's end) would add two more."""
    _log(settings, "2026-10-02", TWO_TOWER, "impression",
         [(1, 10), (1, 11), (1, 12), (2, 10), (2, 13)])
    _log(settings, "2026-10-03", TWO_TOWER, "click", [(1, 10), (1, 10), (2, 13)])
    _log(settings, "2026-10-04", TWO_TOWER, "purchase", [(1, 10)])
    _log(settings, "2026-10-03", POP_MIX, "impression",
         [(3, 10), (3, 11), (4, 12), (4, 14), (5, 10), (5, 11), (5, 12), (5, 13)])
    _log(settings, "2026-10-04", POP_MIX, "click", [(3, 10), (4, 12), (5, 13), (6, 99)])
    _log(settings, "2026-09-20", POP_MIX, "impression", [(7, 1), (7, 2)])
    _log(settings, "2026-09-20", POP_MIX, "click", [(7, 1), (7, 2)])
    # Logged after the run's interval end: a re-run of this past day must not count it.
    _log(settings, "2026-10-05", POP_MIX, "click", [(3, 11), (4, 14)])
    return settings


def test_ab_report_dag_reports_hand_computed_ctr_per_arm(logged: Settings,
                                                         tmp_path: Path) -> None:
    log = tmp_path / "ab_dag.log"
    code = run_dag("shoprec_ab_report", airflow_env(logged.home), {"days": 3}, log=log,
                   logical_date=RUN_AT)
    text = log.read_text(errors="replace")
    assert code == 0, text[-4000:]
    assert "DAG_RUN manual__" in text and " success pid=" in text

    report = json.loads((logged.reports_dir / "ab" / "ab_report.json").read_text())
    assert report["generated_at"] == RUN_AT  # as of the run's interval end, not the clock
    assert report["since"] == "2026-10-02T00:00:00+00:00"
    assert report["until"] == RUN_AT
    # 5 + 3 + 1 + 8 + 4 rows inside the window; the 4 rows of 2026-09-20 and the 2 of
    # 2026-10-05 (after the interval end) are left out.
    assert report["events"] == 21 and report["unattributed_events"] == 0
    assert set(report["layers"]) == {"diversity", "ranker", "recall_quota"}

    arms = {row["variant"]: row for row in report["layers"]["recall_quota"]}
    assert set(arms) == {"two_tower", "pop_mix"}
    tt, pm = arms["two_tower"], arms["pop_mix"]
    assert (tt["impressions"], tt["clicks"], tt["purchases"], tt["users"]) == (5, 2, 1, 2)
    assert (pm["impressions"], pm["clicks"], pm["purchases"], pm["users"]) == (8, 3, 0, 4)
    # CTR 2/5 and 3/8; Wilson 95 % by hand, e.g. 2/5: centre (0.4 + z²/10) / (1 + z²/5)
    # = 0.44345, half-width z·sqrt(0.4·0.6/5 + z²/100) / (1 + z²/5) = 0.32583.
    assert tt["ctr"]["rate"] == 0.4 and pm["ctr"]["rate"] == 0.375
    assert tt["ctr"]["ci95"] == pytest.approx([0.11762, 0.76928], abs=1e-4)
    assert pm["ctr"]["ci95"] == pytest.approx([0.13684, 0.69425], abs=1e-4)
    assert tt["cvr"]["rate"] == 0.5 and pm["cvr"]["rate"] == 0.0
    # The other layers saw every event under one arm: 13 impressed pairs, 5 clicked.
    (ranker,) = report["layers"]["ranker"]
    assert (ranker["variant"], ranker["impressions"], ranker["clicks"]) == ("champion", 13, 5)
