"""Ranker training loop: early stopping on validation, best-epoch checkpoint, warm start.

The model is a tiny ``tfrs.Model`` written here with the zoo's API (``model(features)`` →
``{task: probability}``, ``model.tasks``, ``compute_loss((features, labels), training)``), so
the trainer is tested on its own; the inputs, data and Parquet files are real.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shoprec.contract import CONTRACT, RANKER, Contract
from shoprec.recipes import SmoothedRatio
from training.dcn import ranker_inputs
from training.preprocessing import InputSpec
from training.ranker_checkpoint import SPEC_FILE, WarmStartMismatch
from training.ranker_data import ParquetSource
from training.runs import time_cutoff

LABELS = {"ctr": "label", "cvr": "label_purchase"}


def pick_specs() -> list[InputSpec]:
    """ids, one user/item categorical, a user count and numeric, an id and a float history.

    Chosen by kind from the contract (no feature name typed): the category history and the
    item categorical it targets, so a planted "category seen before" effect is learnable.
    """
    specs = ranker_inputs(CONTRACT)
    views = {v.name: v.entity for v in CONTRACT.views}
    entity = {f.name: views.get(f.view) for f in CONTRACT.service_features(RANKER)}
    seq = next(s for s in specs if s.kind == "sequence" and s.dtype == "int64"
               and any(t.name == s.target and t.kind == "categorical" for t in specs))
    gaps = next(s for s in specs if s.kind == "sequence" and s.dtype == "float64")
    user = [next(s for s in specs if s.kind == k and entity.get(s.name) == "user")
            for k in ("categorical", "count", "numeric")]
    item_cat = next(s for s in specs if s.name == seq.target)
    chosen = {s.name for s in [*user, item_cat, seq, gaps]}
    return [s for s in specs if s.kind == "id" or s.name in chosen]


def ranker_frame(specs: list[InputSpec], n_users: int = 200, per_user: int = 15,
                 n_cats: int = 6, seed: int = 0, noise: list[InputSpec] = ()) -> pd.DataFrame:
    """Impressions over 10 days with a planted click model.

    logit = -1.5 + 1.5 z(user numeric) + 1.0 [user category = item category]
            + 1.0 [item category in the user's history]; a purchase is a click × 0.4.
    Inputs in ``noise`` but not in ``specs`` get random values of their kind.
    """
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    users = np.repeat(np.arange(n_users), per_user)
    by_kind = {k: [s for s in specs if s.kind == k] for k in ("categorical", "count",
                                                                "numeric", "sequence")}
    seq = next(s for s in by_kind["sequence"] if s.dtype == "int64")
    gaps = next(s for s in by_kind["sequence"] if s.dtype == "float64")
    user_cat = next(s for s in by_kind["categorical"] if s.name != seq.target)
    ucat = rng.integers(0, n_cats, n_users)[users]
    icat = np.where(rng.random(n) < 0.4, ucat, rng.integers(0, n_cats, n))
    hist = [rng.integers(0, n_cats, rng.integers(0, 8)).tolist() for _ in range(n)]
    df = pd.DataFrame({
        "user_id": users + 1000, "item_id": rng.integers(1, 400, n),
        "event_ts": pd.Timestamp("2026-01-01", tz="UTC")
        + pd.to_timedelta(np.sort(rng.uniform(0, 10 * 86400, n)), unit="s"),
        user_cat.name: ucat, seq.target: icat, seq.name: hist,
        gaps.name: [rng.uniform(0.5, 50, len(h)).tolist() for h in hist]})
    for s in by_kind["count"]:
        df[s.name] = rng.poisson(5, n)
    for s in by_kind["numeric"]:
        df[s.name] = rng.gamma(2.0, 3.0, n)
    for s in (s for s in noise if s.name not in df):
        if s.kind == "sequence":
            df[s.name] = [rng.integers(0, 50, rng.integers(0, 4)).astype(s.dtype).tolist()
                          for _ in range(n)]
        else:
            df[s.name] = rng.poisson(3, n).astype(s.dtype)
    z = (df[by_kind["numeric"][0].name].to_numpy() - 6.0) / 4.2
    seen = np.array([c in h for c, h in zip(icat, hist, strict=True)])
    p = 1 / (1 + np.exp(-(-1.5 + 1.5 * z + 1.0 * (ucat == icat) + 1.0 * seen)))
    df["label"] = (rng.random(n) < p).astype(np.int64)
    df["label_purchase"] = df["label"] * (rng.random(n) < 0.4).astype(np.int64)
    return df


def tiny_build(name: str, specs: list[InputSpec], stats: dict, config: Any,
               tasks: tuple[str, ...] = ("ctr",)) -> Any:
    """A small multi-head MLP over ``training.preprocessing.encode`` with the zoo's API."""
    from shoprec.tf_runtime import tensorflow, tfrs
    from training.preprocessing import encode, keras_inputs

    tf = tensorflow()
    width = getattr(config, "width", 8)

    class Tiny(tfrs().models.Model):
        def __init__(self) -> None:
            super().__init__()
            self.tasks = tuple(tasks)
            inputs = keras_inputs(specs)
            x = encode(inputs, specs, stats, id_dim=4, cat_dim=4, prefix="tiny")
            h = tf.keras.layers.Dense(width, activation="relu")(x)
            out = {t: tf.keras.layers.Reshape(())(tf.keras.layers.Dense(1)(h)) for t in tasks}
            self.net = tf.keras.Model(inputs, out)

        def logits(self, features: Any, training: bool) -> dict[str, Any]:
            feats = {n: features[n] for n in self.net.input_names}
            return {t: tf.cast(v, tf.float32) for t, v in self.net(feats, training).items()}

        def call(self, features: Any, training: bool = False) -> dict[str, Any]:
            return {t: tf.sigmoid(v) for t, v in self.logits(features, training).items()}

        def compute_loss(self, inputs: Any, training: bool = False) -> Any:
            features, labels = inputs
            logits = self.logits(features, training)
            return tf.add_n([tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.cast(labels[t], tf.float32), logits=logits[t])) for t in self.tasks])

    return Tiny()


def write_set(tmp: Path, df: pd.DataFrame) -> tuple[ParquetSource, ParquetSource]:
    """The frame as Parquet, split at 80% of its time span like the pipeline (train, held-out)."""
    path = tmp / "ranker.parquet"
    df.to_parquet(path)
    cutoff = time_cutoff([df["event_ts"]], 0.2)
    return (ParquetSource(path, end=cutoff, read_rows=1000),
            ParquetSource(path, start=cutoff, read_rows=1000))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from training.ranker_train import TrainConfig, fit_ranker

    tmp = tmp_path_factory.mktemp("ranker")
    specs = pick_specs()
    train, val = write_set(tmp, ranker_frame(specs))
    cfg = TrainConfig(epochs=8, batch_size=64, learning_rate=0.01, patience=1,
                      shuffle_buffer=1500)
    fit = fit_ranker("tiny", specs, train, val, LABELS, tmp / "first", config=cfg,
                     build=tiny_build)
    return {"fit": fit, "specs": specs, "train": train, "val": val, "cfg": cfg, "tmp": tmp}


def test_early_stopping_keeps_the_best_epoch(trained: dict[str, Any]) -> None:
    from training.ranker_train import validation_metrics

    fit, specs = trained["fit"], trained["specs"]
    aucs = [h["val_auc"] for h in fit.history]
    assert fit.stopped_early and len(aucs) < 8
    assert aucs[-1] <= max(aucs[:-1])  # patience 1: stopped after one epoch without gain
    assert fit.best_epoch == int(np.argmax(aucs)) + 1
    assert max(aucs) > 0.70  # planted signal: oracle AUC ~0.78 on this data
    # the returned model holds the best epoch's weights, not the last epoch's
    again = validation_metrics(fit.model, trained["val"], specs, LABELS, 4096)
    assert again["ctr"]["auc"] == pytest.approx(max(aucs), abs=1e-6)
    assert fit.best["val_cvr_auc"] == pytest.approx(again["cvr"]["auc"], abs=1e-6)
    assert fit.validation_rows + fit.train_rows == 3000
    out = trained["tmp"] / "first"
    assert (out / "checkpoints" / "checkpoint").is_file()
    assert not list(out.glob(".stream-cache-*"))  # the run's scratch stream cache is gone
    assert fit.cache_seconds > 0  # it was filled before the first step
    spec = json.loads((out / SPEC_FILE).read_text())
    assert spec["tasks"] == ["ctr", "cvr"] and [i["name"] for i in spec["inputs"]] == [
        s.name for s in specs]


def test_warm_start_restores_the_previous_weights(trained: dict[str, Any]) -> None:
    from training.ranker_train import fit_ranker

    # a vanishing learning rate: after one epoch the weights are still the restored ones
    kept = trained["tmp"] / "stream-cache"
    cfg = replace(trained["cfg"], epochs=1, learning_rate=1e-12, stream_cache_dir=str(kept))
    fit = fit_ranker("tiny", trained["specs"], trained["train"], trained["val"], LABELS,
                     trained["tmp"] / "second", config=cfg, build=tiny_build,
                     warm_start=trained["tmp"] / "first")
    best = trained["fit"].best_epoch
    assert fit.warm_start is not None and fit.warm_start.endswith(f"best-{best}")
    before = trained["fit"].model.get_weights()
    after = fit.model.get_weights()
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert fit.history[0]["val_auc"] == pytest.approx(trained["fit"].best["val_auc"], abs=1e-4)
    # a named stream cache outlives the run: one entry per window, every row of it
    metas = [json.loads(p.read_text()) for p in kept.glob("*/meta.json")]
    assert sorted(m["rows"] for m in metas) == sorted([fit.train_rows, fit.validation_rows])


def test_warm_start_is_refused_when_the_model_changed(trained: dict[str, Any]) -> None:
    from training.ranker_train import fit_ranker

    specs, tmp = trained["specs"], trained["tmp"]
    dropped = specs[-1]
    args = (trained["train"], trained["val"])
    with pytest.raises(WarmStartMismatch, match=f"input {dropped.name} was removed"):
        fit_ranker("tiny", specs[:-1], *args, LABELS, tmp / "x", build=tiny_build,
                   warm_start=tmp / "first")
    with pytest.raises(WarmStartMismatch, match=r"tasks: was \['ctr', 'cvr'\], now \['ctr'\]"):
        fit_ranker("tiny", specs, *args, {"ctr": "label"}, tmp / "y", build=tiny_build,
                   warm_start=tmp / "first")
    with pytest.raises(WarmStartMismatch, match="has no ranker_spec.json"):
        fit_ranker("tiny", specs, *args, LABELS, tmp / "z", build=tiny_build,
                   warm_start=tmp / "nothing-here")
    assert not (tmp / "x").exists()  # refused before anything was written


def small_contract() -> Contract:
    """The contract cut down to the inputs of :func:`pick_specs` (+ what their recipes need)."""
    keep = {s.name for s in pick_specs()}
    for f in CONTRACT.features:
        if f.name in keep and isinstance(f.recipe, SmoothedRatio):
            keep |= {f.recipe.numerator, f.recipe.denominator}
    return replace(CONTRACT, features=tuple(f for f in CONTRACT.features if f.name in keep))


def test_train_ranker_part_writes_a_servable_part_with_a_real_zoo_model(settings) -> None:
    from training.ranker_run import SAVED_MODEL, train_ranker_part
    from training.rankers import RankerConfig
    from training.runs import dataset_cutoff, run_dir

    contract = small_contract()
    df = ranker_frame(pick_specs(), n_users=60, noise=ranker_inputs(contract))
    settings.datasets_dir.mkdir(parents=True)
    df.to_parquet(settings.datasets_dir / "ranker.parquet")
    df[["user_id", "item_id", "event_ts"]].to_parquet(settings.datasets_dir / "retrieval.parquet")
    small = RankerConfig(embedding_dim=4, hidden_units=(8,))
    part = train_ranker_part(settings, contract, "run-1", "wide_deep", epochs=1, batch_size=128,
                             ranker_config=small)
    assert part == run_dir(settings, "run-1") / "ranker"
    assert {p.name for p in part.iterdir()} == {SAVED_MODEL, "checkpoints", SPEC_FILE,
                                                "metrics.json", "manifest.json"}
    metrics = json.loads((part / "metrics.json").read_text())
    held = int((df["event_ts"] >= dataset_cutoff(settings)).sum())
    assert metrics["validation_rows"] == held and metrics["train_rows"] == len(df) - held
    assert 0.0 <= metrics["ranker"]["auc"] <= 1.0 and metrics["ranker"] == metrics["tasks"]["ctr"]
    manifest = json.loads((part / "manifest.json").read_text())
    assert (manifest["model"], manifest["tasks"]) == ("wide_deep", ["ctr"])
    # the next day's run may not start from a checkpoint of another model
    with pytest.raises(WarmStartMismatch, match="model: was 'wide_deep', now 'dcn'"):
        train_ranker_part(settings, contract, "run-2", "dcn", epochs=1, batch_size=128,
                          ranker_config=small, warm_start_run="run-1")
    assert not (run_dir(settings, "run-2") / "ranker").exists()
