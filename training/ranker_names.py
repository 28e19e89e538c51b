"""The ranker zoo's names, importable for nothing: the pipeline DAG lists them at parse time.

``training.rankers`` itself pulls in pandas through the preprocessing module (~2.5 s), too slow
for a DAG file the scheduler re-parses every few seconds, so the names live here and
:mod:`training.rankers.config` re-exports them.
"""

from __future__ import annotations

RANKERS: tuple[str, ...] = ("wide_deep", "deepfm", "dcn", "din", "dien", "dmr", "pnn", "nfm",
                            "deep_resnet", "mmoe", "esmm")
"""Every ranker :func:`training.rankers.build_ranker_model` can build, by name."""

MULTI_TASK_RANKERS: tuple[str, ...] = ("mmoe", "esmm")
"""Rankers that learn click and conversion together; the others learn one task."""

DEFAULT_RANKER = "dcn"
"""What the pipeline trains unless the run's ``ranker`` Param says otherwise."""
