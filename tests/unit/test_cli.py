"""The ``shoprec`` CLI: generate with presets and overrides, ingest through the real gate."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from shoprec.cli import PRESETS, main
from shoprec.contract import EVENT_SCHEMA
from shoprec.ingest import read_events
from shoprec.quarantine import read_quarantine
from shoprec.settings import ENV_HOME, Settings


@pytest.fixture
def home(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads SHOPREC_HOME: point it at the test's fresh home."""
    monkeypatch.setenv(ENV_HOME, str(settings.home))
    return settings


def _json_output(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_generate_tiny_preset_into_the_landing_folder(
        home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--preset", "tiny"]) == 0
    out = _json_output(capsys)
    assert out["config"]["n_users"] == PRESETS["tiny"]["n_users"]
    assert out["config"]["seed"] == home.seed
    summary = out["summary"]
    files = sorted((home.landing_dir / "events").glob("*.parquet"))
    assert [str(f.relative_to(home.landing_dir)) for f in files] == summary["files"]
    assert len(files) == PRESETS["tiny"]["days"]
    assert len(pd.read_parquet(home.landing_dir / "events")) == summary["total_events"]
    assert (home.landing_dir / "items.parquet").exists()


def test_overrides_seed_and_out(tmp_path: Path, home: Settings,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "elsewhere"
    assert main(["generate", "--preset", "tiny", "--set", "n_users=20", "--set",
                 "sessions_per_user_day=1.5", "--set", "start_date=2026-11-01", "--seed", "9",
                 "--out", str(out_dir)]) == 0
    config = _json_output(capsys)["config"]
    assert (config["n_users"], config["sessions_per_user_day"], config["seed"]) == (20, 1.5, 9)
    assert (out_dir / "events" / "events_2026-11-01.parquet").exists()
    assert not home.landing_dir.exists()
    users = pd.read_parquet(out_dir / "users.parquet")
    assert len(users) == 20


def test_unknown_override_names_the_known_fields(home: Settings) -> None:
    with pytest.raises(SystemExit, match="unknown generator setting 'n_usres'; known: .*n_users"):
        main(["generate", "--preset", "tiny", "--set", "n_usres=5"])


def test_if_empty_leaves_existing_landing_files_alone(
        home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--preset", "tiny", "--set", "days=2"]) == 0
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in home.landing_dir.rglob("*.parquet")}
    assert main(["generate", "--preset", "tiny", "--seed", "5", "--if-empty"]) == 0
    assert "already has event files; nothing generated" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in home.landing_dir.rglob("*.parquet")} == before


def test_ingest_of_a_missing_file_fails_clearly(home: Settings, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such file: .*ghost.csv"):
        main(["ingest", str(tmp_path / "ghost.csv"), "--batch-id", "b1"])
    assert not home.staging_dir.exists()


def _gate_available() -> None:
    pytest.importorskip("validation.gate", reason="validation.gate (GX gate) is not in the tree")


def test_ingest_stages_validates_and_commits(
        home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _gate_available()
    start = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()  # inside any sane window
    assert main(["generate", "--preset", "tiny", "--set", f"start_date={start}"]) == 0
    generated = _json_output(capsys)["summary"]["total_events"]
    files = sorted(str(p) for p in (home.landing_dir / "events").glob("*.parquet"))
    assert main(["ingest", *files, "--batch-id", "cli1"]) == 0
    out = capsys.readouterr().out
    assert f"read {generated} rows, staged {generated}, quarantined 0" in out
    assert (f"batch cli1: read {generated} = stored {generated} + duplicates 0 + quarantined 0 "
            "(ingest 0, validation 0)") in out
    assert len(read_events(home)) == generated
    # the same files again under a new batch id: all duplicates, still balanced
    assert main(["ingest", *files, "--batch-id", "cli2"]) == 0
    assert (f"batch cli2: read {generated} = stored 0 + duplicates {generated} + quarantined 0"
            in capsys.readouterr().out)


def test_ingest_stops_when_validation_fails(
        home: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _gate_available()
    ts = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    f = tmp_path / "shop.csv"
    with open(f, "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(EVENT_SCHEMA.names)
        for i, kind in enumerate(["click", "teleport", "teleport", "click", "bogus"]):
            w.writerow([f"e{i}", i + 1, 7, kind, ts, "s", "web", 1.0])
    assert main(["ingest", str(f), "--batch-id", "bad"]) == 1
    captured = capsys.readouterr()
    assert "validation failed, batch bad not committed" in captured.err
    assert not home.events_dir.exists()
    assert len(read_quarantine(home, "bad")) == 3
