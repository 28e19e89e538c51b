"""Small but real SavedModels, FAISS index and feature tables with hand-computable behaviour.

The user tower puts a user on the unit circle at angle ``user_id + sum(feature - default)``
degrees over its scalar features (a cold user, all defaults, sits at ``user_id`` degrees
whatever the contract's defaults are); item ``i`` of the index sits at ``10 * i`` degrees, so
FAISS inner-product retrieval returns the items nearest in angle. The ranker's score is
``0.01 * i_price + 0.001 * u_clicks_30d`` (every other input, sequences included, is accepted
and multiplied by zero), so the final order is the price order.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.contract import RANKER, USER_TOWER, Contract
from shoprec.tf_runtime import tensorflow

N_ITEMS = 36


def item_id(i: int) -> int:
    """Item ids are sparse on purpose, so row numbers and ids cannot be confused."""
    return 1000 + 3 * i


def item_price(i: int) -> float:
    return float((i * 37) % 100)


ITEM_IDS = np.array([item_id(i) for i in range(N_ITEMS)], dtype=np.int64)


def _specs(tf, contract: Contract, service: str, keys: list[str]) -> dict:
    specs = {k: tf.TensorSpec([None], tf.int64, name=k) for k in keys}
    for f in contract.service_features(service):
        shape = [None, f.max_len] if f.kind == "sequence" else [None]
        specs[f.name] = tf.TensorSpec(shape, tf.as_dtype(f.dtype), name=f.name)
    return specs


def _rows(tf, inputs: dict, contract: Contract, centred: bool) -> list:
    """Each input as a float64 ``[B]`` term: sequences summed and zeroed; scalars minus their
    default when ``centred``."""
    terms = []
    for name, v in inputs.items():
        x = tf.cast(v, tf.float64)
        if len(v.shape) == 2:
            terms.append(tf.reduce_sum(x, axis=1) * 0.0)
        elif centred and name != "user_id":
            terms.append(x - float(contract.feature(name).default))
        else:
            terms.append(x)
    return terms


def save_user_tower(path: Path, contract: Contract) -> None:
    tf = tensorflow()
    specs = _specs(tf, contract, USER_TOWER, ["user_id"])

    class UserTower(tf.Module):
        @tf.function(input_signature=[specs])
        def serve(self, inputs):
            deg = tf.add_n(_rows(tf, inputs, contract, centred=True))
            rad = deg * (math.pi / 180.0)
            emb = tf.stack([tf.cos(rad), tf.sin(rad)], axis=1)
            return {"embedding": tf.cast(emb, tf.float32)}

    m = UserTower()
    sig = m.serve.get_concrete_function()
    tf.saved_model.save(m, str(path), signatures={"serving_default": sig})


def save_ranker(path: Path, contract: Contract) -> None:
    tf = tensorflow()
    specs = _specs(tf, contract, RANKER, ["user_id", "item_id"])

    class Ranker(tf.Module):
        @tf.function(input_signature=[specs])
        def serve(self, inputs):
            zero = tf.add_n(_rows(tf, inputs, contract, centred=False)) * 0.0
            s = 0.01 * inputs["i_price"] + 0.001 * tf.cast(inputs["u_clicks_30d"], tf.float64)
            return {"score": tf.cast(s + zero, tf.float32)}

    m = Ranker()
    sig = m.serve.get_concrete_function()
    tf.saved_model.save(m, str(path), signatures={"serving_default": sig})


def save_index(run_dir: Path) -> None:
    import faiss

    rad = np.deg2rad(10.0 * np.arange(N_ITEMS))
    emb = np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)
    index = faiss.IndexFlatIP(2)
    index.add(emb)
    faiss.write_index(index, str(run_dir / "item_index.faiss"))
    np.save(run_dir / "item_ids.npy", ITEM_IDS)


def make_run_dir(run_dir: Path, contract: Contract, run_id: str = "test-run") -> Path:
    """A run folder laid out like the training stage's (item tower omitted: not served)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_user_tower(run_dir / "user_tower", contract)
    save_ranker(run_dir / "ranker", contract)
    save_index(run_dir)
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": run_id}))
    (run_dir / "metrics.json").write_text(json.dumps({"recall_at_100": 0.5, "auc": 0.75}))
    return run_dir


def user_table(contract: Contract) -> pd.DataFrame:
    """Users 7, 8, 50: defaults except clicks 3, purchases 1, ctr 0.5 and top category 2, i.e.
    3 + 1 + 0.45 + 3 = 7.45 from the defaults: user 7 sits at 14.45 degrees. Users >= 100: no
    row. No behaviour sequences (the user_sequence view is left empty)."""
    rows = []
    for uid in (7, 8, 50):
        row: dict = {"user_id": uid}
        for f in contract.view_features("user_stats"):
            row[f.name] = f.default
        row.update(u_clicks_30d=3, u_purchases_30d=1, u_ctr_30d=0.5, u_top_category=2)
        rows.append(row)
    return pd.DataFrame(rows)


def item_table(contract: Contract) -> pd.DataFrame:
    rows = []
    for i in range(N_ITEMS):
        row: dict = {"item_id": item_id(i)}
        for view in ("item_stats", "item_profile"):
            for f in contract.view_features(view):
                row[f.name] = 1.0 if f.dtype == "float64" else 1
        row["i_price"] = item_price(i)
        rows.append(row)
    return pd.DataFrame(rows)


class TableFetcher:
    """A real in-memory online store: left-joins entity rows to feature tables, logs calls."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.users = user_table(contract)
        self.items = item_table(contract)
        self.calls: list[tuple[str, pd.DataFrame]] = []

    def __call__(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        self.calls.append((service, entity_df.copy()))
        names = [f.name for f in self.contract.service_features(service)]
        out = entity_df.reset_index(drop=True)
        if "user_id" in out:
            out = out.merge(self.users, on="user_id", how="left")
        if "item_id" in out:
            out = out.merge(self.items, on="item_id", how="left")
        return out[[c for c in out.columns if c in names or c in entity_df.columns]]
