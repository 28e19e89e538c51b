"""The contract is the single source of names; its invariants are enforced on construction."""

from __future__ import annotations

import dataclasses

import pytest

from shoprec.contract import (
    CONTRACT,
    EVENT_SCHEMA,
    EVENT_TYPES,
    ITEM_TOWER,
    RANKER,
    USER_TOWER,
    Feature,
)
from shoprec.settings import Settings


def test_services_split_features_by_consumer() -> None:
    user = [f.name for f in CONTRACT.service_features(USER_TOWER)]
    item = [f.name for f in CONTRACT.service_features(ITEM_TOWER)]
    assert all(CONTRACT.view(CONTRACT.feature(n).view).entity == "user" for n in user)
    assert all(CONTRACT.view(CONTRACT.feature(n).view).entity == "item" for n in item)
    assert [e.join_key for e in CONTRACT.service_entities(RANKER)] == ["user_id", "item_id"]
    assert [e.join_key for e in CONTRACT.service_entities(USER_TOWER)] == ["user_id"]


def test_duplicate_feature_names_are_rejected() -> None:
    dup = dataclasses.replace(CONTRACT.features[0], view="item_stats")
    with pytest.raises(ValueError, match="repeated: \\['u_impressions_30d'\\]"):
        dataclasses.replace(CONTRACT, features=(*CONTRACT.features, dup))


def test_unknown_view_and_service_are_rejected() -> None:
    bad_view = Feature("x", "nope", "int64", "count", 0, frozenset({RANKER}))
    with pytest.raises(ValueError, match="unknown view 'nope'"):
        dataclasses.replace(CONTRACT, features=(*CONTRACT.features, bad_view))
    bad_service = Feature("x", "user_stats", "int64", "count", 0, frozenset({"ghost"}))
    with pytest.raises(ValueError, match="unknown services \\['ghost'\\]"):
        dataclasses.replace(CONTRACT, features=(*CONTRACT.features, bad_service))


def test_defaults_cover_every_feature_with_matching_types() -> None:
    defaults = CONTRACT.defaults()
    assert set(defaults) == {f.name for f in CONTRACT.features}
    for f in CONTRACT.features:
        expected = int if f.dtype == "int64" else float
        assert isinstance(defaults[f.name], expected), f.name


def test_event_schema_matches_funnel() -> None:
    assert EVENT_SCHEMA.column("event_type").allowed == EVENT_TYPES
    assert EVENT_SCHEMA.key == "event_id"
    with pytest.raises(KeyError, match="has no column 'nope'"):
        EVENT_SCHEMA.column("nope")


def test_settings_from_env_and_contract_loading(tmp_path) -> None:
    s = Settings.from_env({"SHOPREC_HOME": str(tmp_path)})
    assert s.home == tmp_path.resolve()
    assert s.events_dir == tmp_path / "events"
    assert s.load_contract() is CONTRACT
    with pytest.raises(ValueError, match="module:attribute"):
        dataclasses.replace(s, contract="shoprec.contract").load_contract()


def test_ratio_default_must_be_its_prior_mean() -> None:
    ctr = CONTRACT.feature("u_ctr_30d")
    wrong = dataclasses.replace(ctr, default=0.5)
    with pytest.raises(ValueError, match="defaults to 0.5, not its prior mean 0.05"):
        dataclasses.replace(CONTRACT, features=tuple(wrong if f is ctr else f
                                                     for f in CONTRACT.features))
