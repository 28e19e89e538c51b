"""Ranker checkpoints and warm start: continue from yesterday's weights only when they fit.

Every ranker training writes ``checkpoints/`` (a ``tf.train.CheckpointManager`` holding the best
epoch so far) and ``ranker_spec.json`` (model name, tasks, input specs, model config) into its
output folder. The next day's run can warm-start from that folder: the spec must match exactly,
because a checkpoint restored into a model with another input (new contract feature, changed
hash-bucket count, other tasks) would either fail on a shape deep inside TensorFlow or, worse,
silently map weights onto the wrong inputs. A mismatch raises :class:`WarmStartMismatch` that
names every difference, so an operator sees "input i_price was removed", not a shape error.

Normalisation statistics are NOT part of the spec: they are refitted on each day's data, and
the restored weights fine-tune to the slight shift (that is what the incremental epochs do).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from training.preprocessing import InputSpec

SPEC_FILE = "ranker_spec.json"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = "best"


class WarmStartMismatch(ValueError):
    """The previous run's checkpoint cannot initialise this model (the message says why)."""


def config_dict(config: Any) -> dict[str, Any] | None:
    """A model config as plain JSON values (dataclass fields; tuples become lists)."""
    if config is None:
        return None
    raw = asdict(config) if is_dataclass(config) else dict(vars(config))
    return json.loads(json.dumps(raw, default=str))


def ranker_spec(name: str, specs: Sequence[InputSpec], tasks: Sequence[str],
                config: Any) -> dict[str, Any]:
    """What must be equal for a checkpoint to be reusable."""
    return {"model": name, "tasks": list(tasks), "inputs": [asdict(s) for s in specs],
            "config": config_dict(config)}


def write_spec(folder: Path, spec: dict[str, Any]) -> Path:
    """Write ``ranker_spec.json`` into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SPEC_FILE
    path.write_text(json.dumps(spec, indent=2, sort_keys=True))
    return path


def spec_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two specs (empty when they match)."""
    out = []
    for key in ("model", "tasks", "config"):
        if old.get(key) != new.get(key):
            out.append(f"{key}: was {old.get(key)!r}, now {new.get(key)!r}")
    before = {s["name"]: s for s in old.get("inputs", [])}
    after = {s["name"]: s for s in new.get("inputs", [])}
    out += [f"input {n} was removed" for n in before if n not in after]
    out += [f"input {n} is new" for n in after if n not in before]
    for n in before.keys() & after.keys():
        changed = {k: (before[n].get(k), v) for k, v in after[n].items() if before[n].get(k) != v}
        out += [f"input {n}: {k} was {a!r}, now {b!r}" for k, (a, b) in sorted(changed.items())]
    if not out and [s["name"] for s in old.get("inputs", [])] != list(after):
        out.append("inputs are in another order")
    return out


def latest_checkpoint(folder: Path) -> str | None:
    """Path prefix of the newest checkpoint under ``folder/checkpoints``, if any."""
    from shoprec.tf_runtime import tensorflow

    return tensorflow().train.latest_checkpoint(str(folder / CHECKPOINT_DIR))


def check_warm_start(previous: Path, spec: dict[str, Any]) -> str:
    """The checkpoint to warm-start from; raise when there is none or it does not fit.

    Args:
        previous: The earlier training's output folder (holds ``ranker_spec.json`` and
            ``checkpoints/``).
        spec: This training's :func:`ranker_spec`.

    Raises:
        WarmStartMismatch: naming the missing file or every spec difference.
    """
    spec_path = previous / SPEC_FILE
    if not spec_path.is_file():
        raise WarmStartMismatch(f"cannot warm-start from {previous}: it has no {SPEC_FILE} "
                                "(not trained by training.ranker_train, or missing)")
    diffs = spec_differences(json.loads(spec_path.read_text()), spec)
    if diffs:
        raise WarmStartMismatch(f"cannot warm-start from {previous}: its model differs: "
                                + "; ".join(diffs))
    checkpoint = latest_checkpoint(previous)
    if checkpoint is None:
        raise WarmStartMismatch(f"cannot warm-start from {previous}: no checkpoint under "
                                f"{previous / CHECKPOINT_DIR}")
    return checkpoint


def restore_weights(model: Any, checkpoint: str) -> None:
    """Load ``model``'s weights from ``checkpoint`` (the model's variables must exist).

    Raises:
        WarmStartMismatch: if a variable of the model has no value in the checkpoint.
    """
    from shoprec.tf_runtime import tensorflow

    status = tensorflow().train.Checkpoint(model=model).restore(checkpoint)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as err:
        raise WarmStartMismatch(f"checkpoint {checkpoint} does not cover this model: "
                                f"{str(err)[:500]}") from err
    status.expect_partial()  # training-only state (metrics) need not be restored
