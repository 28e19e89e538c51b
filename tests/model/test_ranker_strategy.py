"""The multi-device path on two logical CPU devices, in a fresh process.

Logical devices can only be configured before TensorFlow initialises its devices, so the check
runs in a subprocess (it would otherwise fail, or change the devices of every later test). It
prints one JSON line that the test reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

SCRIPT = r'''
import json, sys, tempfile
from pathlib import Path

import numpy as np

from training.ranker_strategy import configure_cpu_devices, pick_strategy

plan = pick_strategy(cpu_devices=2)  # before any other TensorFlow work
out = {"kind": plan.kind, "replicas": plan.replicas, "devices": plan.devices}
try:
    configure_cpu_devices(3)
except RuntimeError as err:
    out["late_error"] = str(err)

from shoprec.tf_runtime import tensorflow
from tests.model.test_ranker_train import LABELS, pick_specs, ranker_frame, tiny_build, write_set
from training.preprocessing import fit_stats, to_feature_dict
from training.ranker_strategy import DevicePlan
from training.ranker_train import TrainConfig, fit_ranker, trainer_class

tf = tensorflow()
specs = pick_specs()
df = ranker_frame(specs, n_users=60)
batch = (to_feature_dict(df.head(64), specs),
         {t: df[c].head(64).to_numpy(np.float32) for t, c in LABELS.items()})
stats = fit_stats(df, specs)

def one_step(p, inputs):
    with p.building():
        model = trainer_class()(tiny_build("tiny", inputs, stats, None, tasks=tuple(LABELS)))
        model(batch[0])
        model.compile(optimizer=tf.keras.optimizers.SGD(0.5))
    return model

def step_pair(reference_plan, other_plan, inputs):
    """One SGD step of the same batch from the same weights under two plans."""
    ref, other = one_step(reference_plan, inputs), one_step(other_plan, inputs)
    initial = ref.get_weights()
    other.set_weights(initial)
    data = tf.data.Dataset.from_tensors(batch)
    for m in (ref, other):
        m.fit(data, epochs=1, verbose=0)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ref.get_weights(),
                                                            other.get_weights()))
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(ref.get_weights(), initial))
    return diff, moved, other

default = DevicePlan(tf.distribute.get_strategy(), False)
out["max_weight_diff"], out["weights_moved"], _ = step_pair(default, plan, specs)
# Zoo models whose losses once used Keras' default reduction (refused in a replica context):
# one Adam step under 2 replicas must move the weights exactly like on one device.
from tests.model.test_rankers_models import CONFIG, STATS, tiny_batch, tiny_specs
from training.rankers import build_ranker_model, default_tasks

zoo_feats, zoo_labels = tiny_batch(rows=16)

def zoo_model(p, name):
    with p.building():
        m = trainer_class()(build_ranker_model(name, tiny_specs(), STATS, CONFIG,
                                               default_tasks(name)))
        m(zoo_feats)
        m.compile(optimizer=tf.keras.optimizers.SGD(0.5))
    return m

out["zoo"] = {}
for name in ("din", "esmm"):
    ref, other = zoo_model(default, name), zoo_model(plan, name)
    initial = ref.get_weights()
    other.set_weights(initial)
    data = tf.data.Dataset.from_tensors((zoo_feats, {t: zoo_labels[t] for t in
                                                     default_tasks(name)}))
    for m in (ref, other):
        m.fit(data, epochs=1, verbose=0)
    out["zoo"][name] = {
        "diff": max(float(np.max(np.abs(a - b))) for a, b in zip(ref.get_weights(),
                                                                  other.get_weights())),
        "moved": max(float(np.max(np.abs(a - b))) for a, b in zip(ref.get_weights(), initial))}
tmp = Path(tempfile.mkdtemp())
train, val = write_set(tmp, ranker_frame(specs, n_users=60))
fit = fit_ranker("tiny", specs, train, val, LABELS, tmp / "fit", build=tiny_build, plan=plan,
                 config=TrainConfig(epochs=1, batch_size=64, learning_rate=0.01))
out["fit"] = {"devices": fit.devices, "val_auc": fit.best["val_auc"],
              "checkpoint": Path(fit.checkpoint).name}
print("RESULT " + json.dumps(out))
'''


def test_two_logical_cpu_devices_train_like_one() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    res = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    lines = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    assert res.returncode == 0 and lines, res.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert (out["kind"], out["replicas"]) == ("cpu-mirrored", 2)
    assert [d.rsplit(":", 1)[-1] for d in out["devices"]] == ["0", "1"]
    assert "already initialised 2" in out["late_error"]
    # one SGD step of the global batch split over 2 replicas == the same step on one device
    assert out["weights_moved"] > 1e-3
    assert out["max_weight_diff"] < 1e-5
    # the whole fit path (streaming input, validation, checkpoint) on two replicas
    assert out["fit"]["devices"] == {"kind": "cpu-mirrored", "replicas": 2,
                                     "devices": out["devices"], "mixed_precision": False}
    assert 0.5 < out["fit"]["val_auc"] <= 1.0
    assert out["fit"]["checkpoint"] == "best-1"
    # zoo models (own loss mean, Reduction.NONE) under 2 replicas == one device
    for name, got in out["zoo"].items():
        assert got["moved"] > 1e-3 and got["diff"] < 1e-5, (name, got)
