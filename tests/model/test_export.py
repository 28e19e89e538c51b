"""SavedModel round trip: raw contract-typed inputs in, identical outputs out."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.contract import CONTRACT
from shoprec.tf_runtime import tensorflow
from training.config import ModelConfig
from training.dcn import build_ranker, ranker_inputs
from training.export import export_ranker, export_tower, verify_export
from training.preprocessing import to_feature_dict
from training.two_tower import build_two_tower, item_inputs, user_inputs


@pytest.fixture(scope="module")
def exported(toy_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    tt = build_two_tower(CONTRACT, toy_data.retrieval, ModelConfig())
    rk = build_ranker(CONTRACT, toy_data.ranker, ModelConfig())
    cases = {"user_tower": (tt.user_tower, user_inputs(CONTRACT), toy_data.retrieval, export_tower),
             "item_tower": (tt.item_tower, item_inputs(CONTRACT), toy_data.retrieval, export_tower),
             "ranker": (rk, ranker_inputs(CONTRACT), toy_data.ranker, export_ranker)}
    out = {}
    for name, (model, specs, df, exporter) in cases.items():
        exporter(model, specs, root / name)
        out[name] = (root / name, model, specs, df)
    return out


@pytest.mark.parametrize("name,output,rank", [("user_tower", "embedding", 2),
                                              ("item_tower", "embedding", 2),
                                              ("ranker", "score", 1)])
def test_round_trip_identical_outputs_and_flat_signature(exported, name, output, rank) -> None:
    tf = tensorflow()
    path, model, specs, df = exported[name]
    raw = df.sample(50, random_state=0)
    inputs = to_feature_dict(raw, specs)
    reference = model(inputs, training=False).numpy()
    assert verify_export(path, reference, inputs, atol=1e-5) <= 1e-5

    sig = tf.saved_model.load(str(path)).signatures["serving_default"]
    _, kwargs = sig.structured_input_signature
    want = {s.name: s.dtype for s in specs}
    assert {k: v.dtype.name for k, v in kwargs.items()} == want  # names AND contract dtypes
    out = sig(**{k: tf.constant(v) for k, v in inputs.items()})
    assert list(out) == [output]
    assert out[output].dtype == tf.float32 and len(out[output].shape) == rank
    np.testing.assert_allclose(out[output].numpy(), reference, atol=1e-5)


def test_contract_dtypes_are_int64_and_float64() -> None:
    feats = {s.name: s.dtype for s in ranker_inputs(CONTRACT)}
    assert feats["user_id"] == feats["item_id"] == "int64"
    for f in CONTRACT.service_features("ranker"):
        assert feats[f.name] == f.dtype
