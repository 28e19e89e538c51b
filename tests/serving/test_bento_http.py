"""End to end: models into a tmp BentoML store, ``bentoml build``, ``bentoml serve``, real HTTP.

The online store is a real Feast sqlite store (tests/serving/feast_store.py); the models are the
small real SavedModels of tests/serving/models.py, so the served ranking is hand-computable.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from serving import serve
from serving.package import package
from shoprec.contract import CONTRACT
from shoprec.settings import Settings
from tests.conftest import free_port
from tests.serving.feast_store import build_store
from tests.serving.models import N_ITEMS, item_id, item_price

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("serving") / "home")
    build_store(settings, CONTRACT)
    return settings


@pytest.fixture(scope="module")
def bento_tag(home: Settings, run_dir: Path) -> str:
    return package(home, run_dir)


@pytest.fixture(scope="module")
def server(home: Settings, bento_tag: str):
    srv = serve.start(home, bento_tag, port=free_port(), log_path=home.home / "serve.log")
    try:
        serve.wait_ready(srv, timeout=240)
        yield srv
    finally:
        serve.stop(srv)


def expected_top(k: int, clicks: int) -> list[tuple[int, float]]:
    """All 36 items are retrieved (n_candidates=100), so the order is the price order."""
    prices = sorted(((item_price(i), item_id(i)) for i in range(N_ITEMS)), reverse=True)
    return [(iid, 0.01 * p + 0.001 * clicks) for p, iid in prices[:k]]


def test_feast_fetcher_fills_defaults_from_real_online_store(home: Settings):
    from feature_repo.online import feast_fetcher, open_feature_store

    fetch = feast_fetcher(open_feature_store(home), CONTRACT)
    df = fetch("ranker", pd.DataFrame({"user_id": [7, 7], "item_id": [item_id(2), 5]}))
    assert df["item_id"].tolist() == [item_id(2), 5]
    assert df["i_price"].tolist() == [item_price(2), 0.0]  # unknown item -> default
    assert df["u_clicks_30d"].tolist() == [3, 3] and df["u_clicks_30d"].dtype == "int64"
    assert df["i_ctr_30d"].tolist()[1] == 0.05


def test_bento_contains_both_models(home: Settings, bento_tag: str):
    import yaml

    name, version = bento_tag.split(":")
    meta = yaml.safe_load((home.bentoml_home / "bentos" / name / version / "bento.yaml")
                          .read_text())
    models = {m["tag"].split(":")[0] for s in meta["services"] for m in s["models"]}
    assert name == "shoprec" and models == {"shoprec_retrieval", "shoprec_ranker"}


def test_recommend_over_http(server: serve.Server):
    resp = httpx.post(f"{server.url}/recommend", json={"user_id": 7, "k": 5}, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user_id"] == 7 and body["model_version"] == "run-1"
    got = [(it["item_id"], it["score"]) for it in body["items"]]
    ids, scores = [g[0] for g in got], [g[1] for g in got]
    assert len(set(ids)) == 5 and scores == sorted(scores, reverse=True)
    assert ids == [e[0] for e in expected_top(5, clicks=3)]
    assert scores == pytest.approx([e[1] for e in expected_top(5, clicks=3)], abs=1e-5)


def test_default_k_and_cold_start_user(server: serve.Server):
    resp = httpx.post(f"{server.url}/recommend", json={"user_id": 424242}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert [it["item_id"] for it in resp.json()["items"]] == [
        e[0] for e in expected_top(10, clicks=0)]


@pytest.mark.parametrize("payload", [{"user_id": 7, "k": 0}, {"user_id": 7, "k": 101},
                                     {"user_id": -1, "k": 3}, {"user_id": "x", "k": 3}, {}])
def test_bad_requests_are_4xx(server: serve.Server, payload: dict):
    resp = httpx.post(f"{server.url}/recommend", json=payload, timeout=30)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)


def test_latency_p50(server: serve.Server, home: Settings):
    lat = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(55):
            t0 = time.perf_counter()
            r = client.post("/recommend", json={"user_id": i, "k": 10})
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200
    lat = sorted(lat[5:])  # first calls warm up TF and the Feast registry cache
    figures = {"n": len(lat), "p50_ms": 1000 * statistics.median(lat),
               "p90_ms": 1000 * lat[int(0.9 * len(lat)) - 1], "max_ms": 1000 * lat[-1]}
    print("recommend latency", json.dumps(figures))
    (home.reports_dir).mkdir(parents=True, exist_ok=True)
    (home.reports_dir / "serving_latency.json").write_text(json.dumps(figures))
    assert figures["p50_ms"] < 1000


def test_concurrent_requests(server: serve.Server):
    from concurrent.futures import ThreadPoolExecutor

    def call(user_id: int) -> int:
        r = httpx.post(f"{server.url}/recommend", json={"user_id": user_id, "k": 3}, timeout=30)
        return r.status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, range(64)))
    assert codes == [200] * 64


def test_stop_ends_server_and_workers(server: serve.Server):
    workers = serve.descendants(server.pid)
    assert workers, "expected at least one bentoml worker process"
    t0 = time.monotonic()
    code = serve.stop(server)
    took = time.monotonic() - t0
    assert server.process.poll() is not None and code == 0
    assert not [p for p in [server.pid, *workers] if serve.alive(p)], "processes outlived stop"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/readyz", timeout=2)
    print(f"stopped in {took:.1f} s")
