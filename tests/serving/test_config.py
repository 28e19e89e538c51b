"""serving.config: the shipped YAML files load, and every mistake is named with its file/key."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.config import load_experiments, load_pipeline, load_rerank
from serving.experiments import assign
from serving.rerank import Promotion
from shoprec.contract import CONTRACT


def test_shipped_configs_load() -> None:
    cfg = load_pipeline(CONTRACT)
    assert set(cfg.roles) == {"category", "stock", "age_days", "popularity"}
    assert cfg.n_candidates == 500 and "home" in cfg.pages
    assert cfg.item_refresh_s == 300.0 and cfg.log_every == 50
    rules = load_rerank()
    assert rules.out_of_stock and rules.already_purchased and rules.diversity == "none"
    assert rules.freshness_boost == 0.0 and rules.promotions == ()
    layers = load_experiments()
    assert [x.name for x in layers] == ["diversity", "ranker", "recall_quota"]
    variants, params = assign(layers, 7)
    assert variants["ranker"] == "champion" and params["use_ranker"] is True
    assert variants["diversity"] == "none" and params["diversity"] == "none"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,message", [
    ("recall: {n_candidates: 10}\n", r"missing role\(s\)"),
    ("recal: {}\n", r"unknown key\(s\) \['recal'\]"),
    ("recall: {n_candidates: ten}\n", "recall.n_candidates: expected int, got 'ten'"),
    ("recall: {n_candidates: 0}\nitem_features: {category: i_category_id, stock: i_stock, "
     "age_days: i_age_days, popularity: i_clicks_30d}\n", "sizes must be >= 1"),
    ("item_features: {category: u_top_category, stock: i_stock, age_days: i_age_days, "
     "popularity: i_clicks_30d}\n",
     "item_features.category: 'u_top_category' is not an item feature of the 'ranker'"),
    ("- a\n", "expected a mapping at the top level"),
    ("feature_log: {every: 0}\nitem_features: {category: i_category_id, stock: i_stock, "
     "age_days: i_age_days, popularity: i_clicks_30d}\n", r"'log_every': 0"),
    ("feature_log: {sample: 0.1}\n", r"feature_log: unknown key\(s\) \['sample'\]"),
    ("feature_store: {item_refresh_s: 0}\nitem_features: {category: i_category_id, "
     "stock: i_stock, age_days: i_age_days, popularity: i_clicks_30d}\n", "item_refresh_s > 0"),
])
def test_bad_pipeline_config_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_pipeline(CONTRACT, write(tmp_path, "serving.yaml", text))


def test_missing_file_says_what_to_include(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"serving/config/\*\.yaml"):
        load_rerank(tmp_path / "rerank.yaml")


def test_rerank_promotions_and_errors(tmp_path: Path) -> None:
    ok = load_rerank(write(tmp_path, "a.yaml", "promotions:\n  - {multiplier: 2, items: [5]}\n"
                                                "diversity: {method: mmr, mmr_lambda: 0.5}\n"))
    assert ok.promotions == (Promotion(2.0, items=frozenset({5})),) and ok.diversity == "mmr"
    for text, message in [
        ("filters: {out_of_stock: yes please}\n", "filters.out_of_stock: expected bool"),
        ("filters: {min_stock: true}\n", "filters.min_stock: expected int, got True"),
        ("diversity: {method: shuffle}\n", "diversity must be one of"),
        ("promotions:\n  - {multiplier: 2}\n", r"promotions\[0\]: a promotion must name"),
        ("promotions:\n  - {multiplier: 2, items: [a]}\n", "must be integers"),
        ("freshness: {boost: .nan}\n", "freshness.boost: expected int/float"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_rerank(write(tmp_path, "b.yaml", text))


def test_bad_experiments_are_named(tmp_path: Path) -> None:
    text = ("layers:\n  - {name: a, salt: s, variants: [{name: x, weight: 1, params: "
            "{use_ranker: 1}}]}\n")
    with pytest.raises(ValueError, match=r"layers\[0\].variants\[0\]: .*use_ranker must be a "
                                         "bool"):
        load_experiments(write(tmp_path, "e.yaml", text))
    with pytest.raises(ValueError, match=r"layers\[0\]: unknown key\(s\) \['weight'\]"):
        load_experiments(write(tmp_path, "e.yaml", "layers:\n  - {name: a, weight: 1}\n"))
