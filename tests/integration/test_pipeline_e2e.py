"""The whole product on tiny generated data: `dag.test()` of the pipeline, then real HTTP.

One pipeline run is shared by the module (it takes a few minutes on 2 cores): the bento it
built is served and queried over HTTP, and then a bad batch is dropped into the landing folder
to show that a failing validation leaves the online store, the models and the bento store
exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pandas as pd
import pytest

from serving import serve
from shoprec.airflow_local import airflow_env, run_dag
from shoprec.settings import Settings
from tests.conftest import free_port
from tests.integration.conftest import fresh_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONF = {"epochs": 1, "batch_size": 256}


def _tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, tiny_landing: Path) -> Settings:
    """A SHOPREC_HOME after one successful `shoprec_pipeline` run."""
    tmp = tmp_path_factory.mktemp("e2e")
    settings = Settings(home=fresh_home(tmp, tiny_landing))
    log = tmp / "dag_test.log"
    code = run_dag("shoprec_pipeline", airflow_env(settings.home), CONF, log=log)
    assert code == 0, f"pipeline failed:\n{_tail(log)}"
    return settings


def _fingerprint(root: Path) -> dict[str, str]:
    """Content hash of every file under ``root`` (empty when it does not exist)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_pipeline_writes_every_stage_output(pipeline: Settings) -> None:
    runs = [p for p in pipeline.models_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1 and runs[0].name.startswith("manual__")  # keyed by the run id
    evaluation = json.loads((runs[0] / "evaluation.json").read_text())
    assert evaluation["champion_status"] == "none"  # the first run has nothing to beat
    assert evaluation["challenger"]["ranker"]["auc"] > 0.55
    assert json.loads((runs[0] / "gate.json").read_text())["promote"] is True
    ledgers = [json.loads(p.read_text()) for p in (pipeline.reports_dir / "ledger").glob("*.json")]
    events = [rec for rec in ledgers if rec.get("stored")]
    assert len(events) == 1, ledgers
    ledger = events[0]
    assert ledger["balanced"] is True and ledger["stored"] > 0
    assert ledger["read"] == ledger["stored"] + ledger["duplicates"] + \
        ledger["quarantined_ingest"] + ledger["quarantined_validation"]
    assert (pipeline.feast_dir / "online.db").exists()
    assert list((pipeline.bentoml_home / "bentos" / "shoprec").iterdir())
    from serving.registry import champion

    assert champion(pipeline)["run_id"] == runs[0].name


def test_a_worse_challenger_is_not_promoted(pipeline: Settings, tmp_path: Path) -> None:
    from serving.registry import champion

    before = champion(pipeline)
    assert before is not None
    bentos = sorted((pipeline.bentoml_home / "bentos" / "shoprec").iterdir())
    log = tmp_path / "worse.log"
    # 100 training rows and one epoch: a deliberately worse ranker and two-tower model.
    code = run_dag("shoprec_pipeline", airflow_env(pipeline.home),
                   {**CONF, "sample_size": 100}, log=log)
    assert code == 0, _tail(log)  # not promoting is the gate working, not a failure
    runs = sorted(p for p in pipeline.models_dir.iterdir() if p.name != before["run_id"])
    assert len(runs) == 1
    gate = json.loads((runs[0] / "gate.json").read_text())
    assert gate["promote"] is False
    assert any("ranker.auc" in r or "ranker.gauc" in r for r in gate["reasons"]), gate
    assert "not promoted" in _tail(log, 200_000)
    assert champion(pipeline) == before
    assert sorted((pipeline.bentoml_home / "bentos" / "shoprec").iterdir()) == bentos


def test_recommend_over_http_from_the_built_bento(pipeline: Settings) -> None:
    items = set(pd.read_parquet(pipeline.tables_dir / "items.parquet")["item_id"].tolist())
    users = pd.read_parquet(pipeline.events_dir, columns=["user_id"])["user_id"]
    user = int(users.value_counts().index[0])
    srv = serve.start(pipeline, port=free_port(), log_path=pipeline.home / "serve.log")
    try:
        serve.wait_ready(srv, timeout=300)
        resp = httpx.post(f"{srv.url}/recommend", json={"user_id": user, "k": 10}, timeout=60)
        assert resp.status_code == 200, resp.text
        got = resp.json()["items"]
        ids, scores = [it["item_id"] for it in got], [it["score"] for it in got]
        assert len(ids) == 10 and len(set(ids)) == 10
        assert set(ids) <= items
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)  # ranker outputs click probabilities
        from serving.registry import champion

        # The champion, not the worse challenger trained after it.
        assert resp.json()["model_version"] == champion(pipeline)["run_id"]
        _feedback_is_pushed_online(srv, pipeline, newcomer=int(users.max()) + 1000, item=ids[0])
    finally:
        serve.stop(srv)


def _feedback_is_pushed_online(srv, settings: Settings, newcomer: int, item: int) -> None:
    """/feedback: a never-seen user's click is in its online features at once (Feast push)."""
    from datetime import UTC, datetime, timedelta

    from feature_repo.store import online_features, open_store
    from shoprec.contract import CONTRACT, USER_TOWER
    from shoprec.recipes import Count

    when = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0).isoformat()
    resp = httpx.post(f"{srv.url}/feedback", timeout=60, json={"events": [
        {"user_id": newcomer, "item_id": item, "event_type": t, "event_ts": when}
        for t in ("impression", "click")]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["online_push"].startswith("pushed"), resp.json()["online_push"]
    feats = online_features(open_store(settings), CONTRACT, USER_TOWER,
                            pd.DataFrame({"user_id": [newcomer]}))
    user_feats = CONTRACT.service_features(USER_TOWER)
    clicks = [f.name for f in user_feats if f.recipe == Count(("click",), 30)]
    history = [f for f in user_feats if f.kind == "sequence" and f.target == "item_id"]
    assert clicks and history
    assert feats.loc[0, clicks[0]] == 1  # a cold user a moment ago
    seq = feats.loc[0, history[0].name].tolist()  # as models see it: left-padded, newest last
    assert seq == [history[0].default] * (history[0].max_len - 1) + [item]


def test_failing_batch_leaves_online_store_and_models_unchanged(pipeline: Settings,
                                                                tmp_path: Path) -> None:
    watched = {"feast": pipeline.feast_dir, "features": pipeline.features_dir,
               "models": pipeline.models_dir, "datasets": pipeline.datasets_dir,
               "bentoml": pipeline.bentoml_home, "events": pipeline.events_dir,
               "registry": pipeline.home / "registry"}
    before = {name: _fingerprint(path) for name, path in watched.items()}
    assert before["feast"] and before["models"] and before["bentoml"]
    # A shop sends a file whose timestamps are milliseconds (year ~50000): every row fails the
    # timestamp-window expectation, far above the allowed quarantine share.
    landed = sorted((pipeline.landing_dir / "events").glob("*.parquet"))
    bad = pd.concat([pd.read_parquet(p) for p in landed], ignore_index=True)
    bad["event_id"] = "bad-" + bad["event_id"].astype(str)
    bad["event_ts"] = bad["event_ts"].astype("int64") // 1000  # epoch ms read as seconds
    bad_path = pipeline.landing_dir / "events" / "zz_bad_batch.csv"
    bad.to_csv(bad_path, index=False)
    log = tmp_path / "bad_run.log"
    code = run_dag("shoprec_pipeline", airflow_env(pipeline.home), CONF, log=log)
    text = _tail(log, 200_000)
    assert code != 0, "a batch with only bad timestamps must fail the run"
    assert "ValidationFailed" in text or "validation failed" in text.lower(), text[-3000:]
    after = {name: _fingerprint(path) for name, path in watched.items()}
    for name in watched:
        assert after[name] == before[name], f"{name} changed although validation failed"
    quarantined = pd.concat([pd.read_parquet(p) for p in
                             pipeline.quarantine_dir.rglob("*.parquet")], ignore_index=True)
    assert quarantined["event_id"].str.startswith("bad-").sum() == len(bad)
    bad_path.unlink()


def test_features_dag_materializes_only_what_is_new(pipeline: Settings, tmp_path: Path) -> None:
    state_file = pipeline.feast_dir / "materialized.json"
    before = json.loads(state_file.read_text())
    log = tmp_path / "features.log"
    code = run_dag("shoprec_features", airflow_env(pipeline.home), log=log)
    assert code == 0, _tail(log)
    # The pipeline already materialized every snapshot day: the hourly run loads nothing new
    # and leaves the recorded ends where they were.
    assert json.loads(state_file.read_text()) == before, _tail(log)
    assert "Done. Returned value was" in _tail(log, 200_000)
