"""The single place that imports TensorFlow.

TFRS refuses Keras 3, so ``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first
imported. Every module that needs TF calls :func:`tensorflow` instead of ``import tensorflow``;
that keeps the setting in exactly one place and keeps TF (about 10 s to import) out of
module import time, so DAG parsing and the CLI stay fast.
"""

from __future__ import annotations

import os
from types import ModuleType


def tensorflow() -> ModuleType:
    """Import and return ``tensorflow`` configured for tf.keras (Keras 2).

    Raises:
        RuntimeError: if TensorFlow was already imported with Keras 3 active, which would make
            TFRS fail later with a less clear message.
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if not tf.keras.__name__.startswith("tf_keras"):
        raise RuntimeError(
            "TensorFlow was imported before shoprec.tf_runtime.tensorflow() set "
            "TF_USE_LEGACY_KERAS=1; import TF only through this function"
        )
    return tf


def tfrs() -> ModuleType:
    """Import and return ``tensorflow_recommenders`` after configuring TF."""
    tensorflow()
    import tensorflow_recommenders as tfrs_mod

    return tfrs_mod
