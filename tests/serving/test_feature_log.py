"""The served-feature log: append-only date parts, the values the model got, clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from serving.fallback import DEFAULTED
from serving.feature_log import (
    DEFAULTED_COL,
    REQUEST_ID,
    TS,
    FeatureLog,
    LogError,
    join_keys,
    log_dir,
    read_feature_log,
    request_fields,
)
from shoprec.contract import CONTRACT, RANKER
from shoprec.settings import Settings
from tests.data.monitoring_fixtures import random_values

FEATURES = CONTRACT.service_features(RANKER)
NUMERIC = next(f for f in FEATURES if f.kind == "numeric")
COUNT = next(f for f in FEATURES if f.kind == "count")


def _ts(text: str) -> datetime:
    return pd.Timestamp(text, tz="UTC").to_pydatetime()


def _served(n: int, seed: int, user: int = 7) -> pd.DataFrame:
    """What the ranker fetch returns for ``n`` candidates of one user (any contract)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"user_id": np.full(n, user, np.int64),
                          "item_id": np.arange(100, 100 + n, dtype=np.int64)})
    for field in CONTRACT.service_request_fields(RANKER):
        frame[field.name] = pd.Timestamp("2025-06-01 20:00", tz="UTC") \
            if field.dtype == "timestamp" else "web"
    for feat in FEATURES:
        frame[feat.name] = random_values(feat, n, rng)
    return frame


def test_rows_are_logged_per_day_with_the_values_the_model_received(settings: Settings) -> None:
    log = FeatureLog(settings, CONTRACT)
    late, early = _served(3, 1), _served(2, 2, user=8)
    late.loc[1, NUMERIC.name] = None  # the model got the contract default for it
    early.attrs[DEFAULTED] = True  # the store was down: served from defaults
    assert log.append(late, _ts("2025-06-01 23:59:30"), request_id="r1") == "r1"
    generated = log.append(early, _ts("2025-06-02 00:00:30"))
    assert not log_dir(settings).exists()  # buffered until a flush
    parts = log.close()
    assert [p.parent.name for p in parts] == ["dt=2025-06-01", "dt=2025-06-02"]

    day1 = read_feature_log(settings, CONTRACT, _ts("2025-06-01"), _ts("2025-06-02"))
    assert day1[REQUEST_ID].tolist() == ["r1"] * 3
    assert (day1[TS] == pd.Timestamp("2025-06-01 23:59:30", tz="UTC")).all()
    assert day1[join_keys(CONTRACT, RANKER)].to_numpy().tolist() == [[7, 100], [7, 101], [7, 102]]
    assert not day1[DEFAULTED_COL].any()
    assert day1[NUMERIC.name].tolist() == [late[NUMERIC.name][0], NUMERIC.default,
                                           late[NUMERIC.name][2]]
    for feat in FEATURES:
        got = day1[feat.name].tolist()
        if feat.kind == "sequence":
            assert [list(v) for v in got] == [list(v) for v in late[feat.name]], feat.name
        elif feat.name != NUMERIC.name:
            assert got == late[feat.name].tolist(), feat.name
    for name in request_fields(CONTRACT, RANKER):
        assert day1[name].tolist() == late[name].tolist()

    day2 = read_feature_log(settings, CONTRACT, _ts("2025-06-02"), _ts("2025-06-03"))
    assert len(day2) == 2 and day2[REQUEST_ID].tolist() == [generated] * 2
    assert len(generated) == 32 and day2[DEFAULTED_COL].all()
    both = read_feature_log(settings, CONTRACT, _ts("2025-06-01 23:59:31"), _ts("2025-06-03"))
    assert len(both) == 2  # rows before the start instant are filtered, not only days


def _digests(settings: Settings) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in log_dir(settings).rglob("*.parquet")}


def test_buffer_flushes_by_rows_and_by_age_and_parts_are_never_rewritten(
        settings: Settings) -> None:
    now = [0.0]
    log = FeatureLog(settings, CONTRACT, max_rows=5, max_seconds=10.0, clock=lambda: now[0])
    when = _ts("2025-06-01 12:00")
    log.append(_served(3, 1), when)
    assert _digests(settings) == {}
    log.append(_served(3, 2), when)  # 6 >= 5 rows
    first = _digests(settings)
    assert len(first) == 1
    log.append(_served(1, 3), when)
    now[0] = 10.5
    log.append(_served(1, 4), when)  # the oldest buffered row is 10.5 s old
    second = _digests(settings)
    assert len(second) == 2 and {k: second[k] for k in first} == first
    assert log.flush() == []  # nothing buffered, nothing written
    day = read_feature_log(settings, CONTRACT, _ts("2025-06-01"), _ts("2025-06-02"))
    assert len(day) == 8


def test_a_bad_request_is_named_and_the_others_are_still_written(settings: Settings) -> None:
    log = FeatureLog(settings, CONTRACT)
    bad = _served(2, 1).astype({COUNT.name: object})
    bad.loc[0, COUNT.name] = "many"
    log.append(_served(3, 2), _ts("2025-06-01 10:00"), "good")
    log.append(bad, _ts("2025-06-01 10:01"), "bad")  # cheap: values are typed at write time
    with pytest.raises(LogError, match=f"request bad \\(2 rows\\): feature '{COUNT.name}'"):
        log.flush()
    day = read_feature_log(settings, CONTRACT, _ts("2025-06-01"), _ts("2025-06-02"))
    assert day[REQUEST_ID].tolist() == ["good"] * 3
    with pytest.raises(ValueError, match="timezone-aware"):
        log.append(_served(1, 1), datetime(2025, 6, 1))
    with pytest.raises(ValueError, match="lack join keys \\['item_id'\\]"):
        log.append(_served(1, 1).drop(columns=["item_id"]), _ts("2025-06-01"))
    with pytest.raises(ValueError, match="max_rows"):
        FeatureLog(settings, CONTRACT, max_rows=0)
    eager = FeatureLog(settings, CONTRACT, max_rows=1)
    assert eager.record(bad, _ts("2025-06-01")) is None and eager.errors == 1  # serving goes on
    assert eager.record(_served(1, 1), _ts("2025-06-01"), "ok") == "ok" and eager.errors == 1


def test_background_writes_finish_before_close_returns(settings: Settings) -> None:
    log = FeatureLog(settings, CONTRACT, max_rows=4, background=True)
    for n in range(5):
        log.append(_served(2, n), _ts("2025-06-01 09:00"), f"r{n}")
    log.close()
    day = read_feature_log(settings, CONTRACT, _ts("2025-06-01"), _ts("2025-06-02"))
    assert sorted(set(day[REQUEST_ID])) == [f"r{n}" for n in range(5)] and len(day) == 10
    assert log.errors == 0


def test_features_added_after_a_part_was_written_read_back_as_null(settings: Settings) -> None:
    older = dataclasses.replace(CONTRACT, features=tuple(
        f for f in CONTRACT.features if f.name != NUMERIC.name))
    log = FeatureLog(settings, older)
    log.append(_served(2, 1), _ts("2025-06-01 08:00"))
    log.close()
    rows = read_feature_log(settings, CONTRACT, _ts("2025-06-01"), _ts("2025-06-02"))
    assert rows[NUMERIC.name].isna().all() and rows[COUNT.name].notna().all()
    assert read_feature_log(settings, CONTRACT, _ts("2025-07-01"), _ts("2025-07-02")).empty
