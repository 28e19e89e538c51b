"""serving.ab_report: Wilson intervals and CTR/CVR per variant from real feedback files."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from serving import ab_report as ab
from serving.feedback import SIDE_COLUMNS, feedback_dir, normalise, write_feedback
from shoprec.contract import EVENT_SCHEMA
from shoprec.ingest_store import atomic_parquet
from shoprec.ingest_typing import arrow_schema
from shoprec.settings import Settings

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
A, B = "quota:x,ranker:a", "quota:x,ranker:b"


def ev(user: int, item: int, kind: str, variant: str, minute: int = 0) -> dict:
    return {"user_id": user, "item_id": item, "event_type": kind, "variant": variant,
            "event_ts": f"2026-03-04T10:{minute:02d}:00Z"}


def land(settings: Settings, events: list[dict], when: datetime = NOW) -> None:
    write_feedback(settings, normalise(events, when, lambda u: ""), when)


@pytest.fixture
def logged(settings: Settings) -> Settings:
    """ranker a: pairs (1,1) (1,2) (2,1) (2,3) shown; (1,1) clicked twice and bought, (2,3)
    clicked, (9,9) clicked unseen, (1,2) bought unclicked. ranker b: (3,1) (3,2) shown only."""
    land(settings, [ev(1, 1, "impression", A), ev(1, 2, "impression", A),
                    ev(2, 1, "impression", A), ev(2, 3, "impression", A)])
    land(settings, [ev(1, 1, "click", A, 1), ev(1, 1, "click", A, 2), ev(2, 3, "click", A),
                    ev(9, 9, "click", A), ev(1, 1, "purchase", A, 3), ev(1, 2, "purchase", A)])
    land(settings, [ev(3, 1, "impression", B), ev(3, 2, "impression", B)])
    return settings


def test_wilson_by_hand() -> None:
    # 2/4: centre 0.5, half = 1.96 * sqrt(.0625 + 1.96²/64) / (1 + 1.96²/4) = 0.34997
    assert ab.wilson(2, 4) == pytest.approx((0.15003, 0.84997), abs=1e-4)
    assert ab.wilson(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-4)
    lo, hi = ab.wilson(0, 2)
    assert lo == 0.0 and hi == pytest.approx(0.65762, abs=1e-4)
    assert ab.wilson(0, 0) is None


def test_ctr_and_cvr_per_variant(logged: Settings) -> None:
    report = ab.ab_report(logged, now=NOW)
    ranker = {r["variant"]: r for r in report["layers"]["ranker"]}
    a, b = ranker["a"], ranker["b"]
    assert (a["impressions"], a["clicks"], a["purchases"], a["users"]) == (4, 2, 1, 3)
    assert a["ctr"]["rate"] == 0.5 and a["ctr"]["ci95"] == pytest.approx([0.15003, 0.84997],
                                                                         abs=1e-4)
    assert a["cvr"]["rate"] == 0.5 and a["cvr"]["ci95"] == pytest.approx([0.09452, 0.90548],
                                                                         abs=1e-4)
    assert (b["impressions"], b["clicks"], b["purchases"]) == (2, 0, 0)
    assert b["ctr"]["rate"] == 0.0 and b["cvr"] == {"rate": None, "ci95": None}
    (quota,) = report["layers"]["quota"]
    assert (quota["variant"], quota["impressions"], quota["clicks"]) == ("x", 6, 2)
    assert report["events"] == 12 and report["unattributed_events"] == 0
    assert json.loads((logged.reports_dir / "ab" / "ab_report.json").read_text())["layers"] \
        == report["layers"]


def test_days_window_and_unreadable_variants(logged: Settings) -> None:
    old = datetime(2026, 2, 1, tzinfo=UTC)
    land(logged, [ev(4, 4, "impression", B)], when=old)
    rows = normalise([ev(5, 5, "impression", B)], NOW, lambda u: "")
    rows["variant"] = "not a variant"  # e.g. a file another tool wrote
    atomic_parquet(pa.Table.from_pandas(rows[[*EVENT_SCHEMA.names, *SIDE_COLUMNS]],
                                        schema=arrow_schema(EVENT_SCHEMA, SIDE_COLUMNS),
                                        preserve_index=False),
                   feedback_dir(logged) / "dt=2026-03-04" / "other.parquet")
    recent = ab.ab_report(logged, days=7, now=NOW)
    assert recent["events"] == 13 and recent["unattributed_events"] == 1
    everything = ab.ab_report(logged, now=NOW)
    b = {r["variant"]: r for r in everything["layers"]["ranker"]}["b"]
    assert everything["events"] == 14 and b["impressions"] == 3


def test_empty_report(settings: Settings) -> None:
    report = ab.ab_report(settings, now=NOW)
    assert report["layers"] == {} and report["events"] == 0
    assert "0 feedback events" in ab.format_table(report)


def test_command_prints_the_table(logged: Settings, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SHOPREC_HOME", str(logged.home))
    assert ab.main([]) == 0
    out = capsys.readouterr().out
    assert "ranker         a                     4       2 50.00% [15.00, 85.00]" in out
    assert "written to" in out
    assert ab.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"]["ranker"][0]["variant"] == "a"
