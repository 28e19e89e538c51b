"""Sampling-bias correction (logQ) and mixed negatives for the two-tower in-batch softmax.

In-batch softmax uses the other rows' positive items as negatives, so an item is a negative in
proportion to its frequency ``p(j)`` in the training stream: popular items are pushed down far
more than the true softmax over the catalogue would, and items without training rows are never
negatives at all. Two remedies, each switchable in :class:`training.two_tower_options.
TwoTowerOptions`:

* **logQ correction** (Yi et al. 2019, "Sampling-Bias-Corrected Neural Modeling"): subtract
  ``log q(j)`` from candidate ``j``'s logit, ``q`` = the probability that one candidate draw is
  ``j``; that is what TFRS' ``Retrieval(candidate_sampling_probability=...)`` does (it clips
  ``q`` to ``[1e-6, 1]``).
* **mixed negatives** (Yang et al. 2020, "Mixed Negative Sampling for Learning Two-tower Neural
  Networks in Recommendations"): ``M`` extra items drawn uniformly from the whole catalogue join
  the ``B`` in-batch candidates; every row scores all ``B + M``.

With both, one candidate draw comes from the in-batch stream with probability ``B / (B + M)`` and
from the uniform catalogue otherwise, so :func:`candidate_probability` is the mixture
``q(j) = (B p(j) + M / N) / (B + M)``; a shift common to a row cancels in the softmax, so only
these ratios matter.

Item frequencies come from :class:`ItemFrequency`, a one-pass counter over chunks of item ids
(memory = distinct items, never the rows), so it can be fed from a stream of row groups.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from training.preprocessing import InputSpec


class ItemFrequency:
    """Streaming item counter: ``update`` chunk by chunk, then ``probability``.

    Counts are exact and merge associatively (two counters over halves of a stream equal one
    counter over the whole), so the estimate does not depend on how the data is chunked.
    """

    def __init__(self) -> None:
        self.ids = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)

    @classmethod
    def from_chunks(cls, chunks: Iterable[np.ndarray]) -> ItemFrequency:
        """Count every chunk of item ids (e.g. the ``item_id`` column of each row group)."""
        freq = cls()
        for chunk in chunks:
            freq.update(chunk)
        return freq

    @property
    def total(self) -> int:
        """Rows counted so far."""
        return int(self.counts.sum())

    def update(self, item_ids: np.ndarray) -> ItemFrequency:
        """Add one chunk of item ids (any order, repeats allowed); returns ``self``."""
        ids, counts = np.unique(np.asarray(item_ids, dtype=np.int64), return_counts=True)
        merged = np.concatenate([self.ids, ids])
        self.ids, where = np.unique(merged, return_inverse=True)
        self.counts = np.bincount(where, weights=np.concatenate([self.counts, counts]),
                                  minlength=len(self.ids)).astype(np.int64)
        return self

    def probability(self, item_ids: np.ndarray) -> np.ndarray:
        """``count(j) / total`` per id (0 for an id never counted).

        Raises:
            ValueError: if nothing was counted yet.
        """
        if self.total == 0:
            raise ValueError("ItemFrequency is empty: update it with training item ids first")
        ids = np.asarray(item_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        found = self.ids[pos] == ids
        return np.where(found, self.counts[pos], 0) / self.total


def candidate_probability(p: np.ndarray, batch_size: int, mixed_negatives: int,
                          catalogue_size: int) -> np.ndarray:
    """Probability that one candidate draw is item ``j`` (see the module docstring).

    Args:
        p: In-batch (stream) frequency ``p(j)`` of each candidate.
        batch_size: ``B``, in-batch candidates per step.
        mixed_negatives: ``M``, uniform catalogue draws per step (0 = in-batch only: ``q = p``).
        catalogue_size: ``N``, items the uniform draws come from.
    """
    p = np.asarray(p, dtype=np.float64)
    if mixed_negatives == 0:
        return p
    return (batch_size * p + mixed_negatives / catalogue_size) / (batch_size + mixed_negatives)


def catalogue_arrays(frame: pd.DataFrame, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """One row per distinct item of ``frame`` (its last row): the item tower's raw inputs.

    ``frame`` is the serving catalogue (every item with its ``two_tower_item`` features) when
    available, else the training rows, whose distinct items are then the catalogue.

    Raises:
        KeyError: naming the item-tower inputs ``frame`` lacks.
        ValueError: if ``frame`` has no rows.
    """
    from training.preprocessing import to_feature_dict

    if frame.empty:
        raise ValueError("the negative-sampling catalogue is empty")
    id_name = specs[0].name
    last = frame.drop_duplicates(subset=[id_name], keep="last")
    return to_feature_dict(last, specs)


@functools.cache
def candidate_sampler_class() -> type:
    """The sampler ``tf.Module``, defined on first use so importing this module stays TF-free."""
    from shoprec.tf_runtime import tensorflow

    tf = tensorflow()

    class CandidateSampler(tf.Module):
        """Builds the candidate set and its sampling probabilities for one training batch."""

        def __init__(self, frequency: ItemFrequency | None, catalogue: dict[str, np.ndarray],
                     mixed_negatives: int, logq_weight: float = 1.0, seed: int = 0) -> None:
            """Freeze the frequency table and the catalogue into constants.

            Args:
                frequency: Training item counts; ``None`` = no logQ correction.
                catalogue: Item-tower inputs of every catalogue item (:func:`catalogue_arrays`);
                    the first entry is the item id.
                mixed_negatives: ``M`` uniform draws per batch (0 = none).
                logq_weight: Exponent applied to ``q`` (``log q`` scaled).
                seed: Seed of the sampler's random generator.
            """
            super().__init__()
            self.mixed_negatives = int(mixed_negatives)
            self.logq_weight = float(logq_weight)
            self.id_name = next(iter(catalogue))
            self.catalogue = {k: tf.constant(v) for k, v in catalogue.items()}
            self.catalogue_size = len(catalogue[self.id_name])
            self.table = None
            if frequency is not None:
                probs = frequency.probability(frequency.ids).astype(np.float32)
                self.table = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(
                        tf.constant(frequency.ids), tf.constant(probs)), default_value=0.0)
            self.rng = tf.random.Generator.from_seed(seed)

        def sample_rows(self, count: int) -> Any:
            """``count`` catalogue rows drawn uniformly with replacement."""
            return self.rng.uniform([count], 0, self.catalogue_size, dtype=tf.int64)

        def __call__(self, item_emb: Any, item_ids: Any, item_tower: Any,
                     training: bool = False) -> tuple[Any, Any, Any]:
            """``(candidate embeddings [B+M, D], candidate ids [B+M], q [B+M] or None)``."""
            cand_emb, cand_ids = item_emb, item_ids
            if self.mixed_negatives:
                rows = self.sample_rows(self.mixed_negatives)
                feats = {k: tf.gather(v, rows) for k, v in self.catalogue.items()}
                cand_emb = tf.concat([item_emb, item_tower(feats, training=training)], axis=0)
                cand_ids = tf.concat([item_ids, feats[self.id_name]], axis=0)
            if self.table is None:
                return cand_emb, cand_ids, None
            p = self.table.lookup(cand_ids)
            if self.mixed_negatives:
                b = tf.cast(tf.shape(item_ids)[0], tf.float32)
                m = float(self.mixed_negatives)
                p = (b * p + m / self.catalogue_size) / (b + m)
            return cand_emb, cand_ids, tf.pow(p, self.logq_weight)

    return CandidateSampler
