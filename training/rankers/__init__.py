"""Ranker zoo: one factory builds any ranker by name; all are ``tfrs.Model`` in tf.keras.

Importing this package is cheap (no TensorFlow): the trainer, the DAGs and the CLI can list
:data:`RANKERS` at parse time. :func:`build_ranker_model` imports the chosen model's module.

Every model reads the same contract inputs (:class:`training.preprocessing.InputSpec`), including
behaviour histories: DIN/DIEN/DMR attend over them, the others use masked mean pooling.
Export with :func:`training.rankers.export.export_ranker_model`.
"""

from __future__ import annotations

import importlib
from typing import Any

from training.preprocessing import InputSpec, Stats
from training.rankers.config import (
    CLICK_TASK,
    CONVERSION_TASK,
    CTCVR,
    MULTI_TASK_RANKERS,
    RANKERS,
    RankerConfig,
    default_tasks,
)
from training.rankers.inputs import fit_ranker_stats

__all__ = ["CLICK_TASK", "CONVERSION_TASK", "CTCVR", "MULTI_TASK_RANKERS", "RANKERS",
           "RankerConfig", "build_ranker_model", "check_tasks", "default_tasks", "fit_ranker_stats"]


def check_tasks(name: str, tasks: tuple[str, ...]) -> tuple[str, ...]:
    """Validate the tasks asked of ranker ``name``; return them as a tuple.

    Single-task rankers learn exactly one task; MMoE learns two or more (the conversion task is
    trained on clicked rows when the click task is present); ESMM learns exactly
    (``ctr``, ``cvr``) and adds the ``ctcvr`` output.

    Raises:
        ValueError: naming the ranker, the tasks given and what it accepts.
    """
    if name not in RANKERS:
        raise ValueError(f"unknown ranker {name!r}; known: {list(RANKERS)}")
    tasks = tuple(tasks)
    if not tasks or len(set(tasks)) != len(tasks) or CTCVR in tasks:
        raise ValueError(f"tasks must be distinct names other than {CTCVR!r}, got {tasks}")
    if name == "esmm" and tasks != (CLICK_TASK, CONVERSION_TASK):
        raise ValueError(f"esmm learns exactly {(CLICK_TASK, CONVERSION_TASK)}, got {tasks}")
    if name == "mmoe" and len(tasks) < 2:
        raise ValueError(f"mmoe is multi-task: pass >= 2 tasks, e.g. {default_tasks(name)}; "
                         f"got {tasks}")
    if name not in MULTI_TASK_RANKERS and len(tasks) != 1:
        raise ValueError(f"{name} is single-task: pass tasks=({CLICK_TASK!r},); got {tasks} "
                         f"(multi-task rankers: {list(MULTI_TASK_RANKERS)})")
    return tasks


def build_ranker_model(name: str, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                       tasks: tuple[str, ...] = (CLICK_TASK,)) -> Any:
    """Build (not train) ranker ``name``, seeded with ``config.seed``.

    Args:
        name: One of :data:`RANKERS`.
        specs: Raw inputs (= the SavedModel signature, in order).
        stats: Train statistics (:func:`fit_ranker_stats`: counts, numerics, float histories).
        config: Hyper-parameters.
        tasks: What to learn (:func:`default_tasks` gives each ranker's usual tasks).

    Returns:
        A ``tfrs.Model``: ``model(features) -> {task: prob [B]}``, ``model.tasks``,
        ``model.compute_loss((features, labels), training)``.

    Raises:
        ValueError: unknown ranker, unacceptable tasks, or inputs it cannot encode.
        KeyError: a count/numeric/float-history input without train statistics.
    """
    tasks = check_tasks(name, tasks)
    from shoprec.tf_runtime import tensorflow

    # Seeding here makes "same config, same data" give the same initial weights wherever the
    # model is built (trainer, benchmark, test).
    tensorflow().keras.utils.set_random_seed(config.seed)
    module = importlib.import_module(f"training.rankers.{name}")
    return module.build(list(specs), stats, config, tasks)
