"""Load benchmark of the served Bento: /recommend with 500 candidates ranked and re-ranked.

    make pipeline && python benchmarks/bench_serving.py            # Redis online store
    python benchmarks/bench_serving.py --online-store sqlite --seconds 10

It serves the champion bento of ``--home`` (default ``$SHOPREC_HOME`` or ``./var``; train the
DIN ranker with ``python -m shoprec.airflow_local run-dag shoprec_pipeline --conf
'{"ranker": "din"}'``) from a copy of that home, so nothing of the original changes. With
``--online-store redis`` a throw-away ``redis-server`` is started and the copy's features are
materialized into it. Closed-loop clients (:mod:`benchmarks.load_clients`) on loopback then run:

1. 1 client, then 8 clients: p50, p99, throughput (targets: p99 <= 30 ms at 1 client;
   >= 150 requests/s with p99 <= 100 ms at 8 clients);
2. the naive design, in this process on the same store and models: fetch each candidate's
   features from the online store and predict item by item (target: ShopRec >= 20x faster);
3. twice the saturating concurrency (16 clients) for 60 s with the online store stopped half
   way (Redis: the server is stopped by PID; sqlite: its tables are renamed away, the same
   failure for Feast): 0 errors, answers continue through the fallback and
   ``shoprec_fallback_total{reason="feature_store"}`` rises.

Requests: random users of the feature snapshot (plus 5% unknown ones, the cold-start path),
k = 10, a random device. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import load_clients  # noqa: E402

FALLBACK = 'shoprec_fallback_total{reason="feature_store"}'


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def metric(url: str, name: str) -> float:
    """Sum of one Prometheus sample over the ``/metrics`` page (0 when absent)."""
    import httpx

    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name.rstrip("}") + ","):
            total += float(line.rsplit(" ", 1)[1])
    return total


def request_bodies(settings: Any, n: int, seed: int) -> list[dict]:
    """``n`` /recommend bodies: snapshot users (5% unknown ids), k = 10, a random device."""
    import pandas as pd

    from shoprec.contract import DEVICES

    users = pd.read_parquet(settings.features_dir / "user_stats.parquet",
                            columns=["user_id"])["user_id"].unique().tolist()
    rng = random.Random(seed)
    top = max(users) + 1
    return [{"user_id": rng.choice(users) if rng.random() >= 0.05 else top + rng.randrange(10**6),
             "k": 10, "context": {"device": rng.choice(DEVICES)}} for _ in range(n)]


def naive(settings: Any, run_dir: Path, bodies: list[dict], n_candidates: int,
          requests: int) -> dict[str, Any]:
    """The per-item design: one online read and one model call per candidate."""
    import numpy as np
    import pandas as pd

    from feature_repo.online import feast_fetcher, open_feature_store
    from serving.artifacts import load_artifacts
    from serving.recommender import Recommender, model_inputs
    from shoprec.contract import RANKER

    contract = settings.load_contract()
    artifacts = load_artifacts(run_dir / "retrieval", run_dir / "ranker")
    fetch = feast_fetcher(open_feature_store(settings), contract)
    rec = Recommender(artifacts, fetch, contract, n_candidates=n_candidates)
    rec.recommend(0, 1)  # warm: registry, traced signatures
    times, scored = [], 0
    for body in bodies[:requests]:
        user = body["user_id"]
        t0 = time.perf_counter()
        items = rec.candidates(user, n_candidates)
        scores = []
        for item in items:  # the usual pseudocode: for each candidate, get features, predict
            row = fetch(RANKER, pd.DataFrame({"user_id": [user], "item_id": [int(item)],
                                              "request_device": [body["context"]["device"]]}))
            inputs = model_inputs(row, ["user_id", "item_id"], contract, RANKER)
            scores.append(float(np.asarray(artifacts.ranker(inputs)["score"]).reshape(-1)[0]))
        np.argsort(-np.asarray(scores))[:body["k"]]
        times.append((time.perf_counter() - t0) * 1000)
        scored += len(items)
    return {"requests": len(times), "candidates": scored // max(len(times), 1),
            "mean_ms": round(float(np.mean(times)), 1), "p50_ms": round(float(np.median(times)), 1)}


def stop_redis_server(address: str) -> int:
    """Stop the redis-server answering on ``address`` by its PID (from INFO); return the PID."""
    import redis

    host, port = address.split(",")[0].split(":")
    pid = int(redis.Redis(host=host, port=int(port)).info("server")["process_id"])
    os.kill(pid, signal.SIGTERM)
    return pid


def stop_sqlite_store(settings: Any) -> list[str]:
    """Make the embedded sqlite store fail every read, as a stopped server would.

    A file has no server to stop; renaming its view tables is the same failure for Feast
    (``no such table``). Returns the renamed tables.
    """
    import sqlite3

    contract = settings.load_contract()
    tables = [f"{contract.project}_{v.name}" for v in contract.views]
    with sqlite3.connect(settings.feast_dir / "online.db") as db:
        for t in tables:
            db.execute(f'ALTER TABLE "{t}" RENAME TO "{t}_down"')
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path,
                        default=Path(os.environ.get("SHOPREC_HOME", REPO / "var")))
    parser.add_argument("--online-store", choices=("redis", "sqlite"), default="redis")
    parser.add_argument("--seconds", type=float, default=30.0, help="per 1- and 8-client phase")
    parser.add_argument("--saturation-seconds", type=float, default=60.0)
    parser.add_argument("--naive-requests", type=int, default=3)
    parser.add_argument("--as-is", action="store_true",
                        help="serve the champion bento as built (default: build a bento of this "
                             "source tree for the champion's run, in the copy)")
    parser.add_argument("--port", type=int, default=3917)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from contextlib import ExitStack

    from shoprec.settings import Settings

    source = Settings(home=args.home.resolve())
    record = source.home / "registry" / "champion.json"
    if not record.exists():
        why = (f"no champion in {source.home}: run `make pipeline` first (for DIN: python -m "
               "shoprec.airflow_local run-dag shoprec_pipeline --conf '{\"ranker\": \"din\"}')")
        print(f"SKIPPED: {why}")
        print(json.dumps({"bench": "serving", "skipped": why}))
        return 0
    champion = json.loads(record.read_text())
    run_dir = source.home / "models" / champion["run_id"]
    ranker = json.loads((run_dir / "ranker" / "manifest.json").read_text()).get("model", "dcn")
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    result: dict[str, Any] = {"bench": "serving", "ranker": ranker, "online_store":
                              args.online_store, "bento": champion["bento_tag"],
                              "load_start": load()}
    try:
        with ExitStack() as stack:
            result.update(run(args, source, run_dir, work, stack))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_end"] = load()
    print(json.dumps(result))
    return 0


def run(args: argparse.Namespace, source: Any, run_dir: Path, work: Path,
        stack: Any) -> dict[str, Any]:
    from feature_repo import store as fstore
    from serving import serve
    from serving.config import load_pipeline
    from shoprec.settings import Settings

    home = work / "home"
    shutil.copytree(source.home, home, ignore=shutil.ignore_patterns("airflow"))
    settings = Settings(home=home)
    fstore.write_config(settings)  # the copy's own online store and registry (paths are absolute)
    out: dict[str, Any] = {}
    if args.online_store == "redis":
        from tests.data.redis_fixture import running_redis

        address = stack.enter_context(running_redis(work / "redis"))
        settings = Settings(home=home, online_store="redis", redis=address)
        t0 = time.perf_counter()
        fstore.apply(settings, settings.load_contract())
        fstore.materialize(settings, fstore.open_store(settings), settings.load_contract())
        out["materialize_s"] = round(time.perf_counter() - t0, 1)
    config = load_pipeline(settings.load_contract())
    out["n_candidates"] = config.n_candidates
    bodies = request_bodies(settings, 5000, args.seed)
    target = str(json.loads((home / "registry" / "champion.json").read_text())["bento_tag"])
    if not args.as_is:  # the bento of this source tree, for the same run
        from serving.package import package

        shutil.rmtree(settings.bentoml_home / "bentos", ignore_errors=True)
        t0 = time.perf_counter()
        target = package(settings, home / "models" / run_dir.name)
        out["bento_built"] = {"tag": target, "seconds": round(time.perf_counter() - t0, 1)}
    server = serve.start(settings, target, port=args.port, log_path=work / "serve.log")
    stack.callback(serve.stop, server)
    out["ready_s"] = round(serve.wait_ready(server, timeout=300), 1)
    load_clients.run(server.url, "/recommend", bodies, 2, 5.0, seed=99)  # warm-up
    phases = {}
    for clients in (1, 8):
        phase = load_clients.run(server.url, "/recommend", bodies, clients, args.seconds,
                                 seed=clients)
        phases[f"{clients}_clients"] = {**phase.figures(), "errors": phase.errors,
                                        "load": load()}
    print(f"naive design: {args.naive_requests} requests, item by item ...", flush=True)
    out["naive"] = naive(settings, run_dir, bodies, config.n_candidates, args.naive_requests)
    out["naive_vs_shoprec_1_client"] = round(
        out["naive"]["mean_ms"] / phases["1_clients"]["mean_ms"], 1)
    before = metric(server.url, FALLBACK)
    half = args.saturation_seconds / 2
    import threading

    stop = (stop_redis_server, (settings.redis,)) if args.online_store == "redis" else \
        (stop_sqlite_store, (settings,))
    stopper = threading.Timer(half, stop[0], args=stop[1])
    stopper.start()
    t_start = time.monotonic()
    sat = load_clients.run(server.url, "/recommend", bodies, 16, args.saturation_seconds, seed=16)
    stopper.join()
    after = metric(server.url, FALLBACK)
    phases["16_clients_60s"] = {**sat.figures(), "errors": sat.errors, "load": load(),
                                "error_samples": sat.error_samples[:5]}
    phases["16_clients_60s"]["store_up"] = sat.figures((t_start, t_start + half))
    phases["16_clients_60s"]["store_stopped"] = sat.figures(
        (t_start + half, t_start + sat.seconds))
    out["fallback_counter"] = {"before": before, "after": after}
    out["answers_with_feature_store_fallback"] = sat.fallbacks.get("feature_store", 0)
    out["phases"] = phases
    table(out)
    return out


def table(out: dict[str, Any]) -> None:
    print(f"\n{'phase':<28} {'requests':>8} {'rps':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6}  load")
    rows = dict(out["phases"])
    sat = rows.get("16_clients_60s", {})
    for key in ("store_up", "store_stopped"):
        if key in sat:
            rows[f"  16 clients, {key}"] = {**sat[key], "errors": "", "load": ""}
    for name, r in rows.items():
        print(f"{name:<28} {r['requests']:>8} {r['rps']!s:>7} {r['p50_ms']!s:>8} "
              f"{r['p99_ms']!s:>8} {r['errors']!s:>6}  {r['load']}")
    n = out["naive"]
    print(f"naive item-by-item: {n['requests']} requests x {n['candidates']} candidates, mean "
          f"{n['mean_ms']} ms -> ShopRec is {out['naive_vs_shoprec_1_client']}x faster")
    print(f"fallback counter feature_store: {out['fallback_counter']['before']} -> "
          f"{out['fallback_counter']['after']}")


if __name__ == "__main__":
    raise SystemExit(main())
