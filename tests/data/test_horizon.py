"""The feature horizon: shared feature state only moves forward, whatever order runs finish in."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from feature_repo.build import build_snapshots
from feature_repo.horizon import effective_until, horizon_path, read_horizon, record_horizon
from shoprec.contract import CONTRACT
from shoprec.settings import Settings
from tests.data.feature_fixtures import write_tiny

DAY2, DAY3, DAY4 = (pd.Timestamp(d, tz="UTC") for d in ("2025-03-02", "2025-03-03", "2025-03-04"))


def test_first_run_builds_to_its_own_end(settings):
    assert read_horizon(settings) is None
    assert effective_until(settings, DAY3) == DAY3


def test_horizon_only_moves_forward(settings):
    record_horizon(settings, DAY4)
    assert effective_until(settings, DAY2) == DAY4  # an old interval re-run keeps the newest
    record_horizon(settings, DAY4)
    later = pd.Timestamp("2025-03-09", tz="UTC")
    assert effective_until(settings, later) == later
    assert json.loads(horizon_path(settings).read_text()) == {"until": DAY4.isoformat()}


def test_naive_interval_end_is_read_as_utc(settings):
    record_horizon(settings, DAY3)
    assert effective_until(settings, pd.Timestamp("2025-03-04")) == DAY4


def test_unbounded_run_builds_everything_and_records_nothing(settings):
    record_horizon(settings, DAY3)
    assert effective_until(settings, None) is None
    record_horizon(settings, None)
    assert read_horizon(settings) == DAY3


def test_corrupt_record_is_a_clear_error(settings):
    horizon_path(settings).parent.mkdir(parents=True)
    horizon_path(settings).write_text('{"until": "yesterday-ish"}')
    with pytest.raises(ValueError, match="horizon.json is not a feature horizon record"):
        effective_until(settings, DAY2)


def _run_intervals(settings: Settings, ends: list[pd.Timestamp]) -> dict[str, bytes]:
    """What the pipeline's features task does per run, in the given completion order."""
    for end in ends:
        until = effective_until(settings, end)
        build_snapshots(settings, CONTRACT, until=until)
        record_horizon(settings, until)
    return {p.name: p.read_bytes() for p in sorted(settings.features_dir.glob("*"))}


def test_any_run_order_leaves_identical_snapshots(tmp_path):
    """Backfill runs finish in any order; re-processing them must change nothing."""
    homes = [Settings(home=tmp_path / name) for name in ("in_order", "shuffled", "again")]
    for home in homes:
        write_tiny(home)
    in_order = _run_intervals(homes[0], [DAY2, DAY3, DAY4])
    shuffled = _run_intervals(homes[1], [DAY4, DAY2, DAY3])
    assert shuffled == in_order
    assert _run_intervals(homes[0], [DAY3, DAY2]) == in_order  # a re-process of old days
    newest = build_snapshots(homes[2], CONTRACT, until=DAY4)
    for view, path in newest.items():
        pd.testing.assert_frame_equal(pd.read_parquet(homes[0].features_dir / path.name),
                                      pd.read_parquet(path), obj=view)
    # Without the horizon the last run to finish would have decided the state:
    assert pd.read_parquet(build_snapshots(homes[2], CONTRACT, until=DAY2)["user_stats"])[
        CONTRACT.timestamp_field].max() == DAY2
