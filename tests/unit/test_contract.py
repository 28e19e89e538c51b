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


def test_sequence_features_need_history_recipe_and_length() -> None:
    hist = CONTRACT.feature("u_hist_item_ids")
    assert (hist.kind, hist.dtype, hist.max_len, hist.default, hist.target) == (
        "sequence", "int64", 50, -1, "item_id")
    assert CONTRACT.feature("u_hist_category_ids").target == "i_category_id"
    gaps = CONTRACT.feature("u_hist_gap_hours")
    assert (gaps.dtype, gaps.default, gaps.target) == ("float64", 0.0, "")
    for bad, message in ((dataclasses.replace(hist, max_len=0), "needs a History recipe and "
                                                                "max_len > 0"),
                         (dataclasses.replace(hist, target="nope"), "targets unknown input"),
                         (dataclasses.replace(hist, dtype="string"), "element dtype")):
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(CONTRACT, features=tuple(bad if f is hist else f
                                                         for f in CONTRACT.features))


def test_request_features_are_on_request_views_only() -> None:
    ctx = CONTRACT.feature("ctx_device")
    assert CONTRACT.is_request_view(ctx.view) and ctx.used_by == frozenset({RANKER})
    assert [r.name for r in CONTRACT.service_request_fields(RANKER)] == ["request_ts",
                                                                         "request_device"]
    assert CONTRACT.service_request_fields(USER_TOWER) == []
    assert [r.event_column for r in CONTRACT.request_fields] == ["event_ts", "device"]
    moved = dataclasses.replace(ctx, view="user_stats")
    with pytest.raises(ValueError, match="RequestPart recipes belong to request views"):
        dataclasses.replace(CONTRACT, features=tuple(moved if f is ctx else f
                                                     for f in CONTRACT.features))
    with pytest.raises(ValueError, match="unknown request field 'request_device'"):
        dataclasses.replace(CONTRACT, request_fields=CONTRACT.request_fields[:1])


def test_task_labels_name_distinct_label_columns() -> None:
    assert dict(CONTRACT.task_labels) == {"ctr": "label", "cvr": "label_purchase"}
    assert CONTRACT.task_labels["ctr"] == CONTRACT.label
    with pytest.raises(TypeError):
        CONTRACT.task_labels["x"] = "y"  # read-only
    for bad in ({"ctr": "label", "cvr": "label"}, {"ctr": "label", "cvr": "u_ctr_30d"},
                {"ctr": "clicked"}):
        with pytest.raises(ValueError, match="task_labels"):
            dataclasses.replace(CONTRACT, task_labels=bad)


def test_service_parts_split_a_service_by_entity_and_request():
    from shoprec.contract import RANKER, USER_TOWER
    from shoprec.contract_model import service_part

    whole = [f.name for f in CONTRACT.service_features(RANKER)]
    parts = {p: [f.name for f in CONTRACT.service_features(service_part(RANKER, p))]
             for p in ("user", "item", "request")}
    assert sorted(sum(parts.values(), [])) == sorted(whole)  # a partition, nothing lost
    assert parts["request"] == ["ctx_hour", "ctx_weekday", "ctx_device"]
    assert "u_hist_item_ids" in parts["user"] and "i_price" in parts["item"]
    assert all(CONTRACT.view(CONTRACT.feature(n).view).entity == "item" for n in parts["item"])
    assert service_part(RANKER, "user") == "ranker@user"
    assert CONTRACT.service_request_fields("ranker@user") == []
    assert [e.name for e in CONTRACT.service_entities("ranker@item")] == ["item"]
    tower = {f.name for f in CONTRACT.service_features(USER_TOWER)}
    assert tower <= set(parts["user"])  # serving reads both with one user read


def test_unknown_service_part_names_the_problem():
    with pytest.raises(KeyError, match="unknown entity 'shop'"):
        CONTRACT.service_features("ranker@shop")
    with pytest.raises(KeyError, match="unknown FeatureService 'rankr'"):
        CONTRACT.service_features("rankr@user")
