"""Wide & Deep (Cheng et al., 2016): the baseline ranker.

The wide part is a logistic regression on one-hot (hashed) ids and categories plus hashed
pairwise crosses of the categorical inputs (e.g. "user's top category x item category"), which
*memorises* frequent co-occurrences; the deep MLP over all embeddings *generalises* to unseen
ones. Their logits add up and are trained jointly.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats
from training.rankers.base import ranker_base_class, squeeze_logit
from training.rankers.config import RankerConfig
from training.rankers.layers import linear, logit_head, mlp


@functools.cache
def model_class() -> type:
    """``WideDeep``, defined on first use (no TF at import)."""
    tf = tensorflow()

    class WideDeep(ranker_base_class()):
        """Wide (linear + crosses) + deep (MLP) logits, summed."""

        def __init__(self, specs: list[InputSpec], stats: Stats, config: RankerConfig,
                     tasks: tuple[str, ...]) -> None:
            """Create the wide tables, the crosses and the deep tower."""
            super().__init__(specs, stats, config, tasks, name="wide_deep")
            self.wide = linear(self.encoder, config, name="wide")
            cats = [s.name for s in self.encoder.cat_specs if s.kind == "categorical"]
            self.cross_pairs = list(itertools.combinations(cats, 2))
            self.crossing = tf.keras.layers.HashedCrossing(config.wide_cross_bins)
            self.cross_weights = [
                tf.keras.layers.Embedding(config.wide_cross_bins, 1,
                                          embeddings_initializer="zeros")
                for _ in self.cross_pairs]
            self.deep = mlp(config.hidden_units, config, name="deep")
            self.head = logit_head()

        def heads(self, enc: Any, features: Any, training: bool) -> tuple[dict[str, Any], Any]:
            """One logit: wide + crosses + deep."""
            wide = self.wide(enc.buckets, enc.dense)
            for (a, b), table in zip(self.cross_pairs, self.cross_weights, strict=True):
                crossed = self.crossing((features[a], features[b]))
                wide += squeeze_logit(table(crossed))
            deep = squeeze_logit(self.head(self.deep(enc.flat(), training=training)))
            return {self.tasks[0]: wide + deep}, None

    return WideDeep


def build(specs: list[InputSpec], stats: Stats, config: RankerConfig,
          tasks: tuple[str, ...]) -> Any:
    """Build a Wide & Deep ranker (called by :func:`training.rankers.build_ranker_model`)."""
    return model_class()(specs, stats, config, tasks)
