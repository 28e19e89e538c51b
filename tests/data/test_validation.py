"""The GX data gate on small staged batches: real GX runs, real files, hand-checked values.

Every GX run here takes ~0.5 s; the ~10 s GX import is paid once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA
from shoprec.quarantine import ledger_path, read_quarantine, update_ledger
from shoprec.settings import Settings
from tests.conftest import REPO_ROOT
from tests.data.validation_cases import (
    ENUM,
    ITEM_KEY,
    KEY,
    NOW,
    OPTIONAL_ENUM,
    TS,
    WEIGHT,
    clean_events,
    write_items,
)
from validation.config import GateConfig
from validation.gate import ValidationFailed, summary_path, validate_batch

WINDOW = "[2015-03-04T12:00:00+00:00, 2025-03-01T12:10:00+00:00]"  # NOW - 3650 d, NOW + 10 min
IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"



def _utc(value: np.datetime64) -> pd.Timestamp:
    return pd.Timestamp(value).tz_localize("UTC")


# kind -> (row position, {column: bad value}, exact quarantine reason)
BAD_ROWS = {
    "event_type_not_in_set": (3, {ENUM.name: "view"},
                              f"{IN_SET}({ENUM.name}): 'view' not in {list(ENUM.allowed)}"),
    "device_not_in_set": (7, {OPTIONAL_ENUM.name: "tv"},
                          f"{IN_SET}({OPTIONAL_ENUM.name}): 'tv' not in "
                          f"{list(OPTIONAL_ENUM.allowed)}"),
    "negative_strength": (11, {WEIGHT.name: -0.5}, f"{BETWEEN}({WEIGHT.name}): -0.5 < min 0.0"),
    "missing_strength": (13, {WEIGHT.name: np.nan},
                         f"expect_column_values_to_not_be_null({WEIGHT.name}): null"),
    "negative_item_id": (17, {ITEM_KEY.name: -3}, f"{BETWEEN}({ITEM_KEY.name}): -3 < min 0.0"),
    # epoch milliseconds read as seconds: 1.7e12 s after 1970
    "milliseconds_as_seconds": (19, {TS.name: _utc(np.datetime64(1_700_000_000_000, "s"))},
                                f"{BETWEEN}({TS.name}): 55840-11-08T22:13:20+00:00 "
                                f"outside {WINDOW}"),
    "future_beyond_skew": (23, {TS.name: NOW + pd.Timedelta(hours=1)},
                           f"{BETWEEN}({TS.name}): 2025-03-01T13:00:00+00:00 outside {WINDOW}"),
    # epoch seconds read as milliseconds: 1.7e9 ms = 19.7 days after 1970
    "seconds_as_milliseconds": (29, {TS.name: _utc(np.datetime64(1_700_000_000, "ms"))},
                                f"{BETWEEN}({TS.name}): 1970-01-20T16:13:20+00:00 "
                                f"outside {WINDOW}"),
    "two_problems": (31, {ENUM.name: "view", WEIGHT.name: -1.0},
                     f"{IN_SET}({ENUM.name}): 'view' not in {list(ENUM.allowed)}; "
                     f"{BETWEEN}({WEIGHT.name}): -1.0 < min 0.0"),
}
STAGED, READ, QUARANTINED_INGEST = 49, 50, 1  # ingest read 50 lines, set 1 aside, staged 49


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    """One gate run over 49 staged rows, 9 of them bad, after ingest quarantined 1 of 50."""
    settings = Settings(home=tmp_path_factory.mktemp("bad") / "home")
    write_items(settings)
    df = clean_events(STAGED, unit="ms")  # ms resolution holds the year-55840 timestamp
    df.loc[21, KEY.name] = df.loc[20, KEY.name]  # a re-delivered event: not an error here
    for pos, changes, _ in BAD_ROWS.values():
        for column, value in changes.items():
            df.loc[pos, column] = value
    update_ledger(settings, "b-bad", read=READ, quarantined_ingest=QUARANTINED_INGEST)
    report = validate_batch(df, settings, "b-bad", now=NOW)
    return settings, df, report, read_quarantine(settings, "b-bad")


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_each_bad_row_is_quarantined_with_its_reason(bad_run, kind):
    _, df, _, quarantine = bad_run
    pos, _, reason = BAD_ROWS[kind]
    rows = quarantine[quarantine[KEY.name] == df.loc[pos, KEY.name]]
    assert rows["reason"].tolist() == [reason]
    assert rows["stage"].tolist() == ["validation"]
    assert rows["source_line"].tolist() == [str(pos + 2)]  # the original line travels along


def test_the_rest_passes_unchanged(bad_run):
    _, df, report, quarantine = bad_run
    bad = sorted(pos for pos, _, _ in BAD_ROWS.values())
    expected = df.drop(index=bad)
    pd.testing.assert_frame_equal(report.valid, expected)
    assert report.quarantined == len(quarantine) == 9
    assert report.failed_rows == {
        f"{IN_SET}({ENUM.name})": 2, f"{IN_SET}({OPTIONAL_ENUM.name})": 1,
        f"expect_column_values_to_not_be_null({WEIGHT.name})": 1,
        f"{BETWEEN}({WEIGHT.name})": 2, f"{BETWEEN}({ITEM_KEY.name})": 1,
        f"{BETWEEN}({TS.name})": 3}
    # (1 ingest + 9 validation) / 50 read = 0.2: the limit is inclusive, so the batch passes
    assert report.metrics["quarantine_share"] == pytest.approx(0.2)
    assert report.passed


def test_ledger_balances_with_ingest_counts(bad_run):
    settings, _, report, _ = bad_run
    record = json.loads(ledger_path(settings, "b-bad").read_text())
    assert record["quarantined_validation"] == 9 and record["validation_passed"] is True
    # what commit_batch will find: one duplicate event_id among the 40 valid rows
    duplicates = int(report.valid[KEY.name].duplicated().sum())
    assert (duplicates, len(report.valid)) == (1, 40)
    final = update_ledger(settings, "b-bad", duplicates=duplicates,
                          stored=len(report.valid) - duplicates)
    assert final["balanced"] is True  # 50 = 1 ingest + 9 validation + 1 duplicate + 39 stored


def test_docs_and_summary_are_written(bad_run):
    settings, _, report, _ = bad_run
    assert report.docs == settings.reports_dir / "data_docs" / "index.html"
    assert report.docs.is_file() and "b-bad" in report.docs.read_text()
    assert set(report.pages) == {"events_rows", "events_batch"}
    assert all(p.is_file() and settings.reports_dir in p.parents for p in report.pages.values())
    summary = json.loads(summary_path(settings, "b-bad").read_text())
    assert (summary["passed"], summary["rows"], summary["valid"]) == (True, 49, 40)
    assert summary["failed_rows"] == report.failed_rows
    assert summary["metrics"][f"unknown_{ITEM_SCHEMA.key}_share"] == 0.0


def test_clean_batch_passes(settings):
    write_items(settings)
    df = clean_events(30)
    report = validate_batch(df, settings, "b-clean", now=NOW)
    assert report.quarantined == 0 and report.failed_rows == {}
    pd.testing.assert_frame_equal(report.valid, df)
    assert report.metrics == {"quarantine_share": 0.0, f"unknown_{ITEM_SCHEMA.key}_share": 0.0}
    assert read_quarantine(settings, "b-clean").empty
    assert report.docs.is_file()
    assert "passed" in str(report) and "30 valid rows" in str(report)


def _reject(df: pd.DataFrame, settings: Settings, batch_id: str, **kw) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        validate_batch(df, settings, batch_id, now=kw.pop("now", NOW), **kw)
    exc = info.value
    assert exc.docs_path.is_file() and str(exc.docs_path) in str(exc)
    assert json.loads(summary_path(settings, batch_id).read_text())["passed"] is False
    assert json.loads(ledger_path(settings, batch_id).read_text())["validation_passed"] is False
    return exc


def test_zero_rows_rejected(settings):
    exc = _reject(clean_events(0), settings, "b-empty")
    assert exc.failed_expectations == [
        "expect_table_row_count_to_be_between: observed 0, limit >= 1"]
    assert "expect_table_row_count_to_be_between: observed 0, limit >= 1" in str(exc)


def test_too_many_quarantined_rejected(settings):
    df = clean_events(10)
    df.loc[[0, 4, 8], ENUM.name] = "view"
    exc = _reject(df, settings, "b-q")
    assert exc.failed_expectations == [
        "expect_column_max_to_be_between(quarantine_share): observed 0.3, limit <= 0.2"]
    assert len(read_quarantine(settings, "b-q")) == 3  # bad rows are kept even on rejection
    assert len(exc.report.valid) == 7


def test_ingest_quarantine_counts_towards_the_share(settings):
    # 2 of 17 staged rows bad is 12 %, but with 3 of 20 lines lost in ingest it is 25 %
    update_ledger(settings, "b-qi", read=20, quarantined_ingest=3)
    df = clean_events(17)
    df.loc[[1, 2], WEIGHT.name] = -1.0
    exc = _reject(df, settings, "b-qi")
    assert exc.failed_expectations == [
        "expect_column_max_to_be_between(quarantine_share): observed 0.25, limit <= 0.2"]


def test_ledger_contradicting_the_batch_is_an_error(settings):
    update_ledger(settings, "b-lie", read=5, quarantined_ingest=1)
    with pytest.raises(ValueError, match="read=5 but 10 staged rows"):
        validate_batch(clean_events(10), settings, "b-lie", now=NOW)


@pytest.mark.parametrize(("unknown", "share", "passes"), [(1, 0.05, True), (2, 0.1, False)])
def test_unknown_item_share(settings, unknown, share, passes):
    write_items(settings)
    df = clean_events(20)
    df.loc[: unknown - 1, ITEM_KEY.name] = 500  # not in the 10-item catalogue
    metric = f"unknown_{ITEM_SCHEMA.key}_share"
    if passes:
        report = validate_batch(df, settings, "b-items", now=NOW)
        assert report.metrics[metric] == share and report.quarantined == 0
    else:
        exc = _reject(df, settings, "b-items")
        assert exc.failed_expectations == [
            f"expect_column_max_to_be_between({metric}): observed {share}, limit <= 0.05"]
        assert len(exc.report.valid) == 20  # unknown items are a batch matter, not row errors


def test_freshness_is_off_by_default_and_enforced_when_set(settings):
    later = NOW + pd.Timedelta(days=3)  # newest event is 3 days + 1 minute old
    df = clean_events(5)
    assert validate_batch(df, settings, "b-old", now=later).passed
    exc = _reject(df, settings, "b-old", now=later, config=GateConfig(freshness_days=1))
    assert len(exc.failed_expectations) == 1
    assert exc.failed_expectations[0].startswith(
        f"expect_column_max_to_be_between(newest_{TS.name}_age_days): observed 3.0006")
    assert exc.failed_expectations[0].endswith("limit <= 1.0")


def test_missing_contract_column_rejected(settings):
    exc = _reject(clean_events(5).drop(columns=[WEIGHT.name]), settings, "b-cols")
    assert exc.failed_expectations[0].startswith("expect_table_columns_to_match_set: observed")
    assert any(m.startswith(f"expect_column_values_to_not_be_null({WEIGHT.name}): raised")
               for m in exc.failed_expectations)


def test_rerun_replaces_the_batch_outputs(settings):
    df = clean_events(12)
    df.loc[5, ENUM.name] = "view"
    for _ in range(2):
        report = validate_batch(df, settings, "b-again", now=NOW)
    validate_batch(clean_events(3), settings, "b-other", now=NOW)
    docs = settings.reports_dir / "data_docs"
    assert len(list(docs.glob("validations/*/b-again/*/*.html"))) == 2  # rows + batch, once
    assert len(read_quarantine(settings, "b-again")) == 1 == report.quarantined
    index = (docs / "index.html").read_text()
    assert "b-again" in index and "b-other" in index


def test_bad_batch_id_and_config_are_refused(settings):
    with pytest.raises(ValueError, match="batch_id"):
        validate_batch(clean_events(1), settings, "../escape", now=NOW)
    with pytest.raises(ValueError, match="max_quarantine_share"):
        GateConfig(max_quarantine_share=1.5)


def test_importing_the_gate_does_not_import_gx():
    code = ("import sys, validation.gate, validation.suite, validation.docs; "
            "assert 'great_expectations' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=Path(REPO_ROOT), check=True)


def test_suites_follow_the_contract():
    from validation.suite import row_expectations

    exps = row_expectations(EVENT_SCHEMA, GateConfig(), NOW)
    columns = {e.column for e in exps if hasattr(e, "column")}
    assert columns == {c.name for c in EVENT_SCHEMA.columns
                       if c.required or c.allowed or c.min_value is not None
                       or c.dtype == "timestamp"}
    in_set = {e.column: e.value_set for e in exps if e.expectation_type == IN_SET}
    assert in_set == {c.name: list(c.allowed) for c in EVENT_SCHEMA.columns if c.allowed}
