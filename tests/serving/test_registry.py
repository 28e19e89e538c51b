"""Champion registry, one-run bentos and the model-version check (real BentoML store)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from serving import registry, serve
from serving.package import find_bento, package, part_dirs, run_identity, save_models_subprocess
from serving.registry import ModelVersionMismatch, check_same_run
from shoprec.settings import Settings

# --- the model-version check (pure) ---------------------------------------------------------


def test_same_run_labels_give_the_run_id() -> None:
    assert check_same_run("r:1", {"run_id": "a"}, "k:1", {"run_id": "a"}) == "a"
    assert check_same_run("r:1", {"run_id": "a"}, "k:1", {"run_id": "a"}, "a") == "a"


def test_models_of_different_runs_refuse_to_start() -> None:
    with pytest.raises(ModelVersionMismatch, match=r"refusing to start: retrieval model "
                       r"shoprec_retrieval:v1 is from run a but ranker shoprec_ranker:v2 is "
                       r"from run b"):
        check_same_run("shoprec_retrieval:v1", {"run_id": "a"}, "shoprec_ranker:v2",
                       {"run_id": "b"})


@pytest.mark.parametrize("retr,rank", [({}, {"run_id": "a"}), ({"run_id": "a"}, {"run_id": ""})])
def test_models_without_run_id_refuse_to_start(retr: dict, rank: dict) -> None:
    with pytest.raises(ModelVersionMismatch, match="both need one"):
        check_same_run("r:1", retr, "k:1", rank)


def test_models_of_another_run_than_the_bento_refuse_to_start() -> None:
    with pytest.raises(ModelVersionMismatch, match="built for run b but its models are from "
                                                   "run a"):
        check_same_run("r:1", {"run_id": "a"}, "k:1", {"run_id": "a"}, "b")


# --- runs, bentos and the champion pointer --------------------------------------------------


def make_parts_run(models_dir: Path, flat_run: Path, run_id: str) -> Path:
    """A run in the two-part layout, from the small real SavedModels of tests/serving/models."""
    root = models_dir / run_id
    shutil.copytree(flat_run, root / "retrieval", ignore=shutil.ignore_patterns("ranker"))
    (root / "ranker").mkdir()
    shutil.copytree(flat_run / "ranker", root / "ranker" / "ranker")
    for part in ("retrieval", "ranker"):
        (root / part / "manifest.json").write_text(json.dumps({"run_id": run_id, "part": part}))
        (root / part / "metrics.json").write_text(json.dumps({part: {"auc": 0.7}}))
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, run_dir: Path) -> dict:
    """Two runs, each packaged into its own bento in one BentoML store."""
    settings = Settings(home=tmp_path_factory.mktemp("registry") / "home")
    runs = {r: make_parts_run(settings.models_dir, run_dir, r) for r in ("run-a", "run-b")}
    tags = {r: package(settings, path) for r, path in runs.items()}
    return {"settings": settings, "runs": runs, "tags": tags}


def _bento_yaml(settings: Settings, tag: str) -> dict:
    return registry.bento_info(settings, tag)


@pytest.mark.slow
def test_a_bento_is_pinned_to_one_runs_exact_models(store: dict) -> None:
    settings, tags = store["settings"], store["tags"]
    assert tags["run-a"] != tags["run-b"]
    for run_id, tag in tags.items():
        info = _bento_yaml(settings, tag)
        args = info["args"]
        assert args["run_id"] == run_id
        assert args["run_fingerprint"] == run_identity(store["runs"][run_id])[1]
        models = {m["tag"] for s in info["services"] for m in s["models"]}
        assert models == {args["retrieval_model"], args["ranker_model"]}
        for model_tag in models:  # both models carry the run's label
            name, version = model_tag.split(":")
            meta = (settings.bentoml_home / "models" / name / version / "model.yaml").read_text()
            assert f"run_id: {run_id}" in meta


@pytest.mark.slow
def test_packaging_the_same_run_again_changes_nothing(store: dict) -> None:
    settings = store["settings"]
    bentos = settings.bentoml_home / "bentos" / "shoprec"
    before = sorted(p.name for p in bentos.iterdir() if p.is_dir())
    assert package(settings, store["runs"]["run-a"]) == store["tags"]["run-a"]
    assert sorted(p.name for p in bentos.iterdir() if p.is_dir()) == before
    assert len(before) == 2
    assert find_bento(settings, "run-a", "0" * 32) is None


def test_parts_must_name_one_run(tmp_path: Path, run_dir: Path) -> None:
    root = make_parts_run(tmp_path, run_dir, "run-x")
    assert part_dirs(root) == (root / "retrieval", root / "ranker")
    assert part_dirs(run_dir) == (run_dir, run_dir)  # flat runs from before the split
    (root / "ranker" / "manifest.json").write_text(json.dumps({"run_id": "run-y"}))
    with pytest.raises(ValueError, match="both parts must come from one run"):
        run_identity(root)
    shutil.rmtree(root / "ranker" / "ranker")
    with pytest.raises(FileNotFoundError, match=r"ranker/ranker"):
        run_identity(root)


def test_no_champion_before_the_first_promotion(settings: Settings) -> None:
    assert registry.champion(settings) is None and registry.history(settings) == []
    assert serve.default_target(settings) == "shoprec:latest"
    with pytest.raises(FileNotFoundError, match="bento shoprec:nope is not in the store"):
        registry.promote(settings, "run-a", "shoprec:nope", {})
    with pytest.raises(ValueError, match="exact 'name:version'"):
        registry.promote(settings, "run-a", "shoprec:latest", {})
    assert registry.champion(settings) is None


@pytest.mark.slow
def test_promotion_keeps_history_and_is_idempotent(store: dict) -> None:
    settings, tags = store["settings"], store["tags"]
    with pytest.raises(ValueError, match="was built from run run-a, not run-b"):
        registry.promote(settings, "run-b", tags["run-a"], {})
    first = registry.promote(settings, "run-a", tags["run-a"], {"ranker": {"auc": 0.7}})
    assert first["previous"] is None and registry.champion(settings) == first
    assert serve.default_target(settings) == tags["run-a"]
    assert registry.promote(settings, "run-a", tags["run-a"], {}) == first  # rerun: no-op
    second = registry.promote(settings, "run-b", tags["run-b"], {"ranker": {"auc": 0.8}})
    assert second["previous"] == {k: first[k] for k in ("run_id", "bento_tag", "promoted_at")}
    assert registry.history(settings) == [first, second]
    assert serve.default_target(settings) == tags["run-b"]
    # A failed promotion (NaN is not strict JSON) leaves the champion and history untouched.
    with pytest.raises(ValueError, match="not strict JSON"):
        registry.promote(settings, "run-a", tags["run-a"], {"auc": float("nan")})
    assert registry.champion(settings) == second and len(registry.history(settings)) == 2
    assert sorted(p.name for p in registry.registry_dir(settings).iterdir()) == [
        ".lock", "champion.json", "history.jsonl"]


@pytest.mark.slow
def test_readers_never_see_a_half_written_champion(store: dict) -> None:
    settings, tags = store["settings"], store["tags"]
    path = registry.registry_dir(settings) / registry.CHAMPION_FILE
    registry.promote(settings, "run-a", tags["run-a"], {})
    stop, seen, errors = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            try:
                seen.add(json.loads(path.read_text())["run_id"])
            except Exception as err:  # noqa: BLE001 - any failure is what the test looks for
                errors.append(repr(err))

    def promote(order: list[str]) -> None:
        for run_id in order * 15:
            registry.promote(settings, run_id, tags[run_id], {"n": list(range(2000))})

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=promote, args=(o,))
               for o in (["run-b", "run-a"], ["run-a", "run-b"])]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == [] and seen == {"run-a", "run-b"}
    # Serialised by the lock: each history line's "previous" is the line before it.
    hist = registry.history(settings)
    for before, after in zip(hist, hist[1:], strict=False):
        assert after["previous"]["promoted_at"] == before["promoted_at"]
        assert after["previous"]["run_id"] == before["run_id"] != after["run_id"]


@pytest.mark.integration
@pytest.mark.slow
def test_serving_keeps_the_champion_when_newer_models_are_saved(store: dict) -> None:
    """BentoML resolves ``:latest`` at serve time; a pinned bento must not follow it."""
    import httpx

    from tests.conftest import free_port
    from tests.serving.feast_store import build_store
    from tests.serving.models import make_run_dir

    settings, tags = store["settings"], store["tags"]
    build_store(settings, settings.load_contract())
    registry.promote(settings, "run-a", tags["run-a"], {})
    newer = make_run_dir(settings.models_dir / "run-c", settings.load_contract(), run_id="run-c")
    save_models_subprocess(settings, newer)  # now shoprec_*:latest belong to run-c
    srv = serve.start(settings, port=free_port(), log_path=settings.home / "serve.log")
    try:
        serve.wait_ready(srv, timeout=300)
        resp = httpx.post(f"{srv.url}/recommend", json={"user_id": 7, "k": 3}, timeout=60)
        assert resp.status_code == 200, resp.text
        assert resp.json()["model_version"] == "run-a"
    finally:
        serve.stop(srv)
