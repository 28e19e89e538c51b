"""DCN-v2 (Wang et al., 2021): cross layers ``x_{l+1} = x0 * (W x_l + b) + x_l`` then an MLP.

Each cross layer raises the polynomial degree of explicit feature interactions by one, cheaply;
the deep MLP on top adds implicit ones (the "stacked" structure of the paper, as in
``training/dcn.py``). ``projection_dim`` makes ``W = V U`` low-rank (the paper's cost-saving
option for wide inputs): ``x0 * (V (U x) + b) + x``. Input ``x0`` is all embeddings, pooled
histories and dense values, concatenated.
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow, tfrs
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import RankerConfig
from training.rankers.layers import logit_head, mlp, regularizer


@functools.cache
def model_class() -> type:
    """``DCN``, defined on first use (no TF at import)."""
    tensorflow()
    cross_cls = tfrs().layers.dcn.Cross

    class DCN(ranker_base_class()):
        """Stacked DCN-v2: cross network → deep network → logit."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Create ``cross_layers`` cross layers (low-rank when ``projection_dim``)."""
            super().__init__(specs, stats, config, tasks, name="dcn")
            self.crosses = [cross_cls(projection_dim=config.projection_dim,
                                      kernel_regularizer=regularizer(config.l2),
                                      name=f"cross{i}") for i in range(config.cross_layers)]
            self.deep = mlp(config.hidden_units, config, name="deep")
            self.head = logit_head()

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit."""
            x0 = x = enc.flat()
            for cross in self.crosses:
                x = cross(x0, x)
            return {self.tasks[0]: squeeze_logit(self.head(self.deep(x, training=training)))}, None

    return DCN


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build a DCN-v2 ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
