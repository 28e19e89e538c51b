"""Every zoo ranker, built on the contract's ``ranker`` inputs, is served alike.

For each of the 11 models: build it (small dims) on the exact inputs the ``ranker``
FeatureService feeds serving, export it, load it with the loader the Bento uses
(:func:`serving.artifacts.load_artifacts`) and score candidates through
:class:`serving.recommender.Recommender` (the ``/recommend`` and ``/rank`` path: online rows ->
raw model inputs, sequences padded by :func:`shoprec.sequences.pad_sequences`). The served
scores must equal the in-memory model's on the same rows: no model needs serving code of its
own, and export loses nothing (including the behaviour histories, which differ per user here).
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from serving.artifacts import load_artifacts
from serving.recommender import Recommender, model_inputs
from shoprec.contract import CONTRACT, RANKER
from shoprec.sequences import encode_lists
from shoprec.tf_runtime import tensorflow
from tests.serving.models import ITEM_IDS, TableFetcher, make_run_dir
from training.dcn import ranker_inputs
from training.rankers import RANKERS, RankerConfig, build_ranker_model, default_tasks
from training.rankers.export import export_ranker_model
from training.rankers.inputs import fit_ranker_stats

pytestmark = pytest.mark.slow

CONFIG = RankerConfig(embedding_dim=4, hidden_units=(8,), attention_units=(4,), gru_units=3,
                      n_experts=2, tower_units=(4,), projection_dim=2)
USERS = (7, 8, 50)


def fetcher() -> TableFetcher:
    """The in-memory store, with per-user histories and varied item categories and stock."""
    store = TableFetcher(CONTRACT)
    rng = np.random.default_rng(3)
    for f in (f for f in CONTRACT.service_features(RANKER) if f.kind == "sequence"):
        lengths = {7: 6, 8: 0, 50: 2}
        cells = []
        for uid in store.users["user_id"]:
            if f.dtype == "float64":
                cells.append(rng.gamma(2.0, 10.0, lengths[uid]).round(3).tolist())
            else:
                cells.append(rng.choice(ITEM_IDS if f.target == "item_id" else np.arange(3),
                                        lengths[uid]).tolist())
        store.users[f.name] = encode_lists(cells)  # the stored form, as Feast returns it
    store.items["i_category_id"] = np.arange(len(store.items)) % 3
    store.items["i_stock"] = np.arange(len(store.items)) % 5
    return store


@pytest.fixture(scope="module")
def served_rows():
    """``ranker`` rows of every user x 12 items, as serving fetches them, and their stats."""
    store = fetcher()
    rec = Recommender(None, store, CONTRACT)  # only the fetch is used here
    rows = pd.concat([rec.ranker_features(u, ITEM_IDS[:12]) for u in USERS], ignore_index=True)
    specs = ranker_inputs(CONTRACT)
    inputs = model_inputs(rows, ["user_id", "item_id"], CONTRACT, RANKER)
    seqs = [f for f in CONTRACT.service_features(RANKER) if f.kind == "sequence"]
    users = rows["user_id"].to_numpy()
    for f in seqs:  # the histories reach the inputs padded: user 7 has 6, user 8 none
        pad = inputs[f.name] != f.default
        assert pad[users == 7].sum(axis=1).tolist() == [6] * 12 and not pad[users == 8].any()
    frame = pd.DataFrame({k: list(v) if v.ndim == 2 else v for k, v in inputs.items()})
    return store, rows, inputs, specs, fit_ranker_stats(frame, specs)


@pytest.mark.parametrize("name", RANKERS)
def test_every_ranker_is_served_with_its_in_memory_scores(name, served_rows, tmp_path) -> None:
    tf = tensorflow()
    store, rows, inputs, specs, stats = served_rows
    tf.keras.utils.set_random_seed(0)
    model = build_ranker_model(name, specs, stats, CONFIG, default_tasks(name))
    probs = model({k: tf.constant(v) for k, v in inputs.items()}, training=False)
    primary = "ctr" if "ctr" in probs else next(iter(probs))
    want = probs[primary].numpy().reshape(-1)
    run = make_run_dir(tmp_path / "run", CONTRACT)
    shutil.rmtree(run / "ranker")  # the hand-built ranker makes way for the zoo model
    export_ranker_model(model, specs, run / "ranker")
    rec = Recommender(load_artifacts(run), store, CONTRACT)
    got = np.concatenate([rec.score(u, ITEM_IDS[:12]) for u in USERS])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.ptp(got) > 0  # the candidates are told apart, not all scored alike
