"""Skew check against a real Feast store: served vectors logged from the online store match the
offline point-in-time join exactly, and a planted skew is flagged at exactly its planted rate."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from serving.feature_log import REQUEST_ID, log_dir
from shoprec.cli import main
from shoprec.contract import RANKER
from shoprec.intervals import resolve
from shoprec.settings import ENV_CONTRACT, ENV_HOME, Settings
from tests.data.monitoring_fixtures import SERVED_AT, SNAPSHOT_CONTRACT, UNKNOWN, served_home
from validation.skew import NoServedVectors, SkewConfig, served_rows, skew_report

pytestmark = pytest.mark.integration

CONTRACT = SNAPSHOT_CONTRACT
DAY = resolve(SERVED_AT.floor("D").to_pydatetime(),
              (SERVED_AT.floor("D") + pd.Timedelta(days=1)).to_pydatetime())
FEATURES = CONTRACT.service_features(RANKER)
PLANTED = next(f for f in FEATURES if f.kind == "numeric")
NOISE = next(f for f in FEATURES if f.kind == "numeric" and f.name != PLANTED.name)
PLANTED_ROWS = [1, 4, 9, 13, 14]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[Settings, object, int]:
    settings = Settings(home=tmp_path_factory.mktemp("skew") / "home")
    store, rows = served_home(settings, CONTRACT)
    return settings, store, rows


def test_vectors_served_by_the_online_store_show_no_skew(served) -> None:
    settings, store, rows = served
    report = skew_report(settings, CONTRACT, DAY, store)
    assert rows == 16  # 4 users (one unknown) x 4 items (one unknown)
    assert (report.rows_logged, report.rows_checked, report.defaulted_rows) == (16, 16, 0)
    assert [f["feature"] for f in report.features] == [f.name for f in FEATURES]
    assert all(f["checked"] == 16 and f["mismatched"] == 0 and f["rate"] == 0.0
               for f in report.features), report.features
    assert report.flagged == []
    # the unknown user and item are cold starts on both sides, repaired offline
    assert report.offline["rows"] == 16 and report.offline["nan_filled"] > 0


def test_a_planted_skew_is_flagged_at_exactly_its_rate(served) -> None:
    settings, store, _ = served
    (part,) = sorted(log_dir(settings).rglob("*.parquet"))
    original = pq.read_table(part)
    frame = original.to_pandas()
    assert frame[REQUEST_ID].nunique() == 4 and UNKNOWN in frame["user_id"].tolist()
    try:
        was = frame.loc[PLANTED_ROWS, PLANTED.name].to_numpy()
        frame.loc[PLANTED_ROWS, PLANTED.name] = was * 1.001 + 0.5  # a real skew
        frame[NOISE.name] = frame[NOISE.name] * (1 + 1e-9)  # serialization-size noise
        frame.to_parquet(part, index=False, schema=original.schema)
        report = skew_report(settings, CONTRACT, DAY, store, SkewConfig(max_rows=None))
    finally:
        pq.write_table(original, part)
    assert report.flagged == [PLANTED.name]
    by_name = {f["feature"]: f for f in report.features}
    planted = by_name[PLANTED.name]
    assert (planted["checked"], planted["mismatched"]) == (16, len(PLANTED_ROWS))
    assert planted["rate"] == len(PLANTED_ROWS) / 16
    example = planted["example"]
    first = PLANTED_ROWS[0]
    assert example["user_id"] == int(frame["user_id"][first])
    assert example["item_id"] == int(frame["item_id"][first])
    assert example["served"] == pytest.approx(was[0] * 1.001 + 0.5, rel=1e-12)
    assert example["offline"] == pytest.approx(was[0], rel=1e-12)
    for name, row in by_name.items():
        if name != PLANTED.name:
            assert (row["mismatched"], row["rate"], row["flagged"]) == (0, 0.0, False), name
    saved = json.loads((settings.reports_dir / "skew" / DAY.key / "skew.json").read_text())
    assert saved["flagged"] == [PLANTED.name] and saved["rows_checked"] == 16
    page = (settings.reports_dir / "skew" / DAY.key / "skew.html").read_text()
    assert page.count('<tr class="alert">') == 1


def test_sampling_is_seeded_and_an_empty_interval_is_a_clear_error(served) -> None:
    settings, store, _ = served
    config = SkewConfig(max_rows=5)
    report = skew_report(settings, CONTRACT, DAY, store, config)
    assert (report.rows_logged, report.rows_checked) == (16, 5)
    assert all(f["checked"] == 5 for f in report.features)
    first, total = served_rows(settings, CONTRACT, DAY, config)
    again, _ = served_rows(settings, CONTRACT, DAY, config)
    assert total == 16 and len(first) == 5
    pd.testing.assert_frame_equal(first, again)  # the same rows every run
    other = resolve(None, None, "2025-04-12")
    with pytest.raises(NoServedVectors, match="no served 'ranker' feature vectors .* 2025-04-12"):
        skew_report(settings, CONTRACT, other, store)


def test_the_cli_runs_the_same_check(served, monkeypatch, capsys) -> None:
    settings, _, _ = served
    monkeypatch.setenv(ENV_HOME, str(settings.home))
    monkeypatch.setenv(ENV_CONTRACT, "tests.data.monitoring_fixtures:SNAPSHOT_CONTRACT")
    assert main(["skew", "--date-from", DAY.key, "--strict"]) == 0
    out = capsys.readouterr().out
    assert f"flagged ({DAY.key}, 16 of 16 rows): none\n" in out
    assert f"{PLANTED.name:<36} {16:>8} {0:>10} {'0.0000':>8}\n" in out
