"""``shoprec drift`` / ``shoprec skew``: the monitoring checks from the command line."""

from __future__ import annotations

import json

import pytest

from shoprec.cli import main
from shoprec.contract import CONTRACT
from shoprec.settings import ENV_HOME, Settings
from tests.data.monitoring_fixtures import write_snapshots


@pytest.fixture
def home(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv(ENV_HOME, str(settings.home))
    return settings


def test_drift_prints_alerts_and_strict_fails_on_them(home: Settings,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    target = next(f for f in CONTRACT.features if f.kind == "count")
    last = write_snapshots(home, CONTRACT, 4, 200, target, lambda f, v: v + 4)
    day = last.strftime("%Y-%m-%d")
    assert main(["drift", "--date-from", day]) == 0
    out = capsys.readouterr().out
    assert f"alerts ({day}, threshold 0.2): {target.name}\n" in out
    assert main(["drift", "--strict"]) == 1  # no dates: the newest snapshot day, same result
    saved = json.loads((home.reports_dir / "drift" / day / "drift.json").read_text())
    assert saved["alerts"] == [target.name]
    assert main(["drift", "--date-from", day, "--threshold", "1000", "--strict"]) == 0


def test_bad_input_is_a_clear_error(home: Settings) -> None:
    with pytest.raises(SystemExit, match="run the features stage"):
        main(["skew"])
    write_snapshots(home, CONTRACT, 2, 20)
    with pytest.raises(SystemExit, match="dates must be YYYY-MM-DD"):
        main(["drift", "--date-from", "2025-13-01"])
    with pytest.raises(SystemExit, match="no served 'ranker' feature vectors are logged"):
        main(["skew", "--date-from", "2025-06-02"])
    with pytest.raises(SystemExit, match="threshold must be > 0"):
        main(["drift", "--threshold", "0"])
