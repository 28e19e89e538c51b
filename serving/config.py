"""Serving configuration files: pipeline sizes, item-feature roles, re-ranking, experiments.

Three YAML files under ``serving/config/`` travel inside the bento (``bentofile.yaml`` must
include ``serving/config/*.yaml``) and are read once when the service starts:

* ``serving.yaml`` -> :class:`PipelineConfig`: candidate counts, limits, the feature store retry
  interval, and which contract features play the *roles* re-ranking needs (category, stock,
  age, popularity). Roles are checked against the contract: each must be an item feature served
  to the ranker, so it arrives with the ranker's one batched feature read.
* ``rerank.yaml`` -> :class:`serving.rerank.RerankConfig`.
* ``experiments.yaml`` -> layers of :mod:`serving.experiments`.

Unknown keys, wrong types and out-of-range values fail startup with the file and key named:
a typo in a rule must not silently switch it off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.experiments import Layer, Variant, check_layers
from serving.rerank import Promotion, RerankConfig
from shoprec.contract import RANKER, Contract

CONFIG_DIR = Path(__file__).resolve().parent / "config"
ROLES = ("category", "stock", "age_days", "popularity")
"""Item attributes the pipeline needs; ``serving.yaml`` names the contract feature of each."""


@dataclass(frozen=True)
class PipelineConfig:
    """Sizes and limits of the ``/recommend`` pipeline (see ``serving/config/serving.yaml``)."""

    roles: dict[str, str]
    n_candidates: int = 100
    popularity_candidates: int = 50
    cold_start_popularity_quota: int = 20
    retry_after_s: float = 5.0
    item_refresh_s: float = 300.0
    log_every: int = 1
    max_rank_items: int = 1000
    max_exclude: int = 500
    pages: tuple[str, ...] = field(default=())


def _read(path: Path) -> dict[str, Any]:
    import yaml

    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; a bento needs `serving/config/*.yaml` in "
                                "the include list of bentofile.yaml")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def _section(data: dict, where: str, spec: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """Check ``data``'s keys and value types against ``spec``; return the present values."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {data!r}")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(spec)}")
    for key, value in data.items():
        kinds = spec[key] if isinstance(spec[key], tuple) else (spec[key],)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and ok and not isinstance(value, bool | list):
            ok = math.isfinite(value)
        if not ok:
            names = "/".join(k.__name__ for k in kinds)
            raise ValueError(f"{where}.{key}: expected {names}, got {value!r}")
    return data


def load_pipeline(contract: Contract, path: Path | None = None) -> PipelineConfig:
    """Read ``serving.yaml`` and check its roles against ``contract``."""
    path = path or CONFIG_DIR / "serving.yaml"
    data = _section(_read(path), str(path), {"recall": dict, "item_features": dict,
                                             "feature_store": dict, "limits": dict,
                                             "pages": list, "feature_log": dict})
    recall = _section(data.get("recall", {}), f"{path}:recall", {
        "n_candidates": int, "popularity_candidates": int, "cold_start_popularity_quota": int})
    store = _section(data.get("feature_store", {}), f"{path}:feature_store",
                     {"retry_after_s": (int, float), "item_refresh_s": (int, float)})
    flog = _section(data.get("feature_log", {}), f"{path}:feature_log", {"every": int})
    limits = _section(data.get("limits", {}), f"{path}:limits",
                      {"max_rank_items": int, "max_exclude": int})
    roles = _section(data.get("item_features", {}), f"{path}:item_features",
                     dict.fromkeys(ROLES, str))
    missing = [r for r in ROLES if r not in roles]
    if missing:
        raise ValueError(f"{path}:item_features: missing role(s) {missing}")
    item_views = {v.name for v in contract.views if v.entity == "item"}
    ranker = {f.name for f in contract.service_features(RANKER)}
    for role, name in roles.items():
        if name not in ranker or contract.feature(name).view not in item_views:
            raise ValueError(f"{path}:item_features.{role}: {name!r} is not an item feature of "
                             f"the {RANKER!r} FeatureService")
    cfg = PipelineConfig(roles=dict(roles), **recall, **limits,
                         retry_after_s=float(store.get("retry_after_s", 5.0)),
                         item_refresh_s=float(store.get("item_refresh_s", 300.0)),
                         log_every=int(flog.get("every", 1)),
                         pages=tuple(str(p) for p in data.get("pages", [])))
    sizes = {k: getattr(cfg, k) for k in ("n_candidates", "popularity_candidates",
                                          "max_rank_items", "max_exclude", "log_every")}
    bad = {k: v for k, v in sizes.items() if v < 1}
    if (bad or cfg.cold_start_popularity_quota < 0 or cfg.retry_after_s < 0
            or cfg.item_refresh_s <= 0):
        raise ValueError(f"{path}: sizes must be >= 1 (got {bad or 'ok'}), the quota and "
                         f"retry_after_s >= 0, item_refresh_s > 0")
    return cfg


def load_rerank(path: Path | None = None) -> RerankConfig:
    """Read ``rerank.yaml`` into a :class:`RerankConfig`."""
    path = path or CONFIG_DIR / "rerank.yaml"
    data = _section(_read(path), str(path), {"filters": dict, "freshness": dict,
                                             "promotions": list, "diversity": dict})
    filters = _section(data.get("filters", {}), f"{path}:filters", {
        "out_of_stock": bool, "min_stock": int, "already_purchased": bool,
        "purchase_window_days": int})
    fresh = _section(data.get("freshness", {}), f"{path}:freshness",
                     {"boost": (int, float), "max_age_days": (int, float)})
    div = _section(data.get("diversity", {}), f"{path}:diversity",
                   {"method": str, "category_cap": int, "mmr_lambda": (int, float)})
    promotions = []
    for n, raw in enumerate(data.get("promotions") or []):
        p = _section(raw, f"{path}:promotions[{n}]",
                     {"multiplier": (int, float), "items": list, "categories": list})
        ids = {k: frozenset(p.get(k, [])) for k in ("items", "categories")}
        if any(isinstance(i, bool) or not isinstance(i, int) for s in ids.values() for i in s):
            raise ValueError(f"{path}:promotions[{n}]: items and categories must be integers")
        try:
            promotions.append(Promotion(float(p.get("multiplier", 1.0)), **ids))
        except ValueError as err:
            raise ValueError(f"{path}:promotions[{n}]: {err}") from err
    try:
        return RerankConfig(
            **filters, freshness_boost=float(fresh.get("boost", 0.0)),
            freshness_max_age_days=float(fresh.get("max_age_days", 14.0)),
            promotions=tuple(promotions), diversity=div.get("method", "none"),
            category_cap=div.get("category_cap", 3), mmr_lambda=float(div.get("mmr_lambda", 0.7)))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def load_experiments(path: Path | None = None) -> tuple[Layer, ...]:
    """Read ``experiments.yaml`` into checked, independent layers (sorted by name)."""
    path = path or CONFIG_DIR / "experiments.yaml"
    data = _section(_read(path), str(path), {"layers": list})
    layers = []
    for n, raw in enumerate(data.get("layers") or []):
        where = f"{path}:layers[{n}]"
        layer = _section(raw, where, {"name": str, "salt": str, "variants": list})
        variants = []
        for m, v in enumerate(layer.get("variants", [])):
            v = _section(v, f"{where}.variants[{m}]", {"name": str, "weight": (int, float),
                                                       "params": dict})
            try:
                variants.append(Variant(v.get("name", ""), v.get("weight", 0),
                                        dict(v.get("params") or {})))
            except ValueError as err:
                raise ValueError(f"{where}.variants[{m}]: {err}") from err
        try:
            layers.append(Layer(layer.get("name", ""), layer.get("salt", ""), tuple(variants)))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
    try:
        return check_layers(layers)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
