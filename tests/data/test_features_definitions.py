"""Feast definitions derived from the contract, and the feast-CLI entry files."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from feature_repo.definitions import feast_objects, request_source_name, source_name
from feature_repo.push_sources import push_source_name, pushable_views
from shoprec.contract import CONTRACT, RANKER, USER_TOWER
from shoprec.settings import Settings
from tests.conftest import REPO_ROOT

FEATURE_REPO = REPO_ROOT / "feature_repo"
CLI_FILES = {"entities.py", "sources.py", "views.py", "services.py"}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("defs") / "home")


@pytest.fixture(scope="module")
def objs(home):
    return feast_objects(CONTRACT, home)


def service_refs(service) -> list[tuple[str, str]]:
    return [(p.name, f.name) for p in service.feature_view_projections for f in p.features]


def test_entities_have_join_key_and_int64_type(objs):
    from feast.value_type import ValueType

    assert set(objs.entities) == {e.name for e in CONTRACT.entities}
    for e in CONTRACT.entities:
        ent = objs.entities[e.name]
        assert ent.join_key == e.join_key and ent.value_type == ValueType.INT64
        assert ent.description == e.description


def test_views_follow_the_contract(objs, home):
    for spec in CONTRACT.views:
        fv = objs.views[spec.name]
        assert fv.ttl == timedelta(days=spec.ttl_days)
        assert fv.entities == [spec.entity] and fv.description == spec.description
        assert [f.name for f in fv.features] == [f.name for f in CONTRACT.view_features(spec.name)]
        for field, feat in zip(fv.features, CONTRACT.view_features(spec.name), strict=True):
            # a sequence is stored as its string encoding; element dtype and length are tags
            want = "string" if feat.kind == "sequence" else feat.dtype
            assert str(field.dtype).lower() == want.lower(), (field.dtype, feat.dtype)
            if feat.kind == "sequence":
                assert field.tags["max_len"] == str(feat.max_len) and feat.dtype in (
                    "int64", "float64")
            assert field.description == feat.description
            assert field.tags["default"] == str(feat.default)
        src = objs.sources[spec.name]
        assert src.name == source_name(spec.name) and fv.batch_source is src
        assert src.path == str(home.features_dir / f"{spec.name}.parquet")
        assert src.timestamp_field == CONTRACT.timestamp_field


def test_request_view_is_a_python_on_demand_view_of_the_shared_function(objs):
    from feast import RequestSource

    (spec,) = CONTRACT.request_views
    odfv = objs.on_demand_views[spec.name]
    assert odfv.mode == "python" and [f.name for f in odfv.features] == [
        f.name for f in CONTRACT.view_features(spec.name)]
    assert "from feature_repo.request_context import compute" in odfv.udf_string
    (source,) = odfv.source_request_sources.values()
    assert isinstance(source, RequestSource) and source is objs.sources[spec.name]
    assert [f.name for f in source.schema] == [r.name for r in CONTRACT.request_fields]
    assert spec.name not in objs.views  # nothing to snapshot or materialize


def test_every_service_serves_exactly_the_contract_features(objs):
    assert set(objs.services) == set(CONTRACT.services)
    for name in CONTRACT.services:
        want = [(f.view, f.name) for f in CONTRACT.service_features(name)]
        assert sorted(service_refs(objs.services[name])) == sorted(want)
        assert len(service_refs(objs.services[name])) == len(want)


def test_dropping_a_feature_changes_the_service(home):
    dropped = CONTRACT.service_features(USER_TOWER)[-1]
    contract = dataclasses.replace(
        CONTRACT, features=tuple(f for f in CONTRACT.features if f is not dropped))
    objs = feast_objects(contract, home)
    for svc in (USER_TOWER, RANKER):
        assert (dropped.view, dropped.name) not in service_refs(objs.services[svc])
    assert dropped.name not in [f.name for f in objs.views[dropped.view].features]


def test_feastignore_leaves_only_the_definition_files():
    from feast.repo_operations import get_repo_files

    assert {p.name for p in get_repo_files(FEATURE_REPO)} == CLI_FILES


def test_cli_files_expose_every_object_once(home, monkeypatch):
    """What ``feast plan/apply`` discovers: the contract's objects, each exactly once."""
    from feast.repo_operations import parse_repo

    from feature_repo.definitions import repo_objects

    monkeypatch.setenv("SHOPREC_HOME", str(home.home))
    monkeypatch.chdir(FEATURE_REPO)
    monkeypatch.syspath_prepend(str(FEATURE_REPO))
    repo_objects.cache_clear()
    try:
        repo = parse_repo(FEATURE_REPO)
    finally:
        for mod in (p.removesuffix(".py") for p in CLI_FILES):
            sys.modules.pop(mod, None)
        repo_objects.cache_clear()
    from feast.feature_view import DUMMY_ENTITY_NAME

    found = sorted(e.name for e in repo.entities if e.name != DUMMY_ENTITY_NAME)  # feast adds it
    assert found == sorted(e.name for e in CONTRACT.entities)
    assert sorted(v.name for v in repo.feature_views) == sorted(v.name for v in CONTRACT.views)
    assert sorted(v.name for v in repo.on_demand_feature_views) == sorted(
        v.name for v in CONTRACT.request_views)
    assert sorted(s.name for s in repo.feature_services) == sorted(CONTRACT.services)
    assert sorted(d.name for d in repo.data_sources) == sorted(
        [*(source_name(v.name) for v in CONTRACT.views),
         *(request_source_name(v.name) for v in CONTRACT.request_views),
         *(push_source_name(v) for v in pushable_views(CONTRACT))])
    assert all(str(home.features_dir) in d.path for d in repo.data_sources
               if d.name.endswith("_source"))


@pytest.mark.integration
def test_feast_cli_plan_runs(home):
    """The real ``feast plan`` CLI (about 12 s) parses the repo and lists every view."""
    from feature_repo.store import write_config

    write_config(home, CONTRACT)
    yaml = home.feast_dir / "feature_store.yaml"
    feast = Path(sys.executable).parent / "feast"
    proc = subprocess.run([str(feast), "-c", str(FEATURE_REPO), "-f", str(yaml), "plan"],
                          env={**os.environ, **home.env(), "FEAST_USAGE": "False"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for spec in CONTRACT.views:
        assert f"Created feature view {spec.name}" in proc.stdout
    for name in CONTRACT.services:
        assert f"Created feature service {name}" in proc.stdout
