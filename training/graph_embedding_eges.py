"""EGES: skip-gram with negative sampling and side information, trained with TensorFlow.

For a centre item ``v`` with side values ``s_1(v) .. s_m(v)`` (here: category and shop), the
input vector is a per-item weighted mix of the id embedding and the side embeddings::

    H_v = Σ_{j=0..m} softmax(a_v)_j * W_j[s_j(v)]        (s_0(v) = v itself)

where ``a_v`` are learnt per-item attention logits (EGES, Wang et al. 2018, eq. 6). Unknown side
values are masked out of the softmax. Each context item ``c`` has an output vector ``Z_c``, and
the loss per (centre, context) pair with ``K`` noise items ``n_1..n_K`` drawn from the word2vec
noise distribution is the skip-gram negative-sampling loss::

    loss = -log σ(H_v · Z_c) - Σ_k log σ(-H_v · Z_{n_k})

averaged over the batch. Items that never occur in training get ``H`` from side values only
(their id weight is masked), which is how EGES handles cold-start items.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from shoprec.tf_runtime import tensorflow, tfrs
from training.recall_datasets import Interactions

if TYPE_CHECKING:
    from training.graph_embedding import GraphEmbeddingConfig

MASKED = -1e9


def side_indices(data: Interactions, use_side: bool) -> list[np.ndarray]:
    """Per side field (category, shop), each item's value remapped to ``1..V`` (0 = unknown).

    Fields with no known value at all are left out.
    """
    if not use_side:
        return []
    fields = []
    for raw in (data.item_category, data.item_shop):
        known = raw >= 0
        if not known.any():
            continue
        _, inv = np.unique(raw[known], return_inverse=True)
        idx = np.zeros(len(raw), dtype=np.int64)
        idx[known] = inv + 1
        fields.append(idx)
    return fields


@functools.cache
def eges_model_class() -> type:
    """The ``tfrs.Model`` subclass, defined on first use so importing stays TF-free."""
    tf = tensorflow()
    tfrs_mod = tfrs()

    class EGESModel(tfrs_mod.models.Model):
        """Item id + side-information embeddings mixed by per-item attention, trained by SGNS."""

        def __init__(self, n_items: int, side: list[np.ndarray], dim: int, seed: int) -> None:
            """Create the tables.

            Args:
                n_items: Catalogue size (dense item indices).
                side: Per side field, each item's value index (0 = unknown).
                dim: Embedding width.
                seed: Initialiser seed.
            """
            super().__init__()
            init = tf.keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim, seed=seed)
            self.id_table = tf.keras.layers.Embedding(n_items, dim, embeddings_initializer=init)
            self.side_lookup = [tf.constant(s, dtype=tf.int64) for s in side]
            self.side_tables = [
                tf.keras.layers.Embedding(int(s.max()) + 1, dim, embeddings_initializer=(
                    tf.keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim, seed=seed + j)))
                for j, s in enumerate(side, start=1)]
            self.attention = tf.keras.layers.Embedding(n_items, 1 + len(side),
                                                       embeddings_initializer="zeros")
            # word2vec starts output vectors at zero: the first gradients then come from the
            # (random) input vectors only, which avoids early symmetric updates.
            self.context_table = tf.keras.layers.Embedding(n_items, dim,
                                                           embeddings_initializer="zeros")

        def item_vectors(self, items: Any, id_known: Any = None) -> Any:
            """``H_v`` for a batch of item indices; ``id_known`` (bool) masks the id field."""
            parts = [self.id_table(items)]
            valid = [tf.ones_like(items, dtype=tf.bool) if id_known is None else id_known]
            for lookup, table in zip(self.side_lookup, self.side_tables, strict=True):
                values = tf.gather(lookup, items)
                parts.append(table(values))
                valid.append(values > 0)
            stacked = tf.stack(parts, axis=1)  # [B, fields, dim]
            logits = self.attention(items)  # [B, fields]
            logits = tf.where(tf.stack(valid, axis=1), logits, MASKED)
            weights = tf.nn.softmax(logits, axis=1)
            any_valid = tf.reduce_any(tf.stack(valid, axis=1), axis=1, keepdims=True)
            weights = tf.where(any_valid, weights, 0.0)
            return tf.reduce_sum(stacked * weights[..., None], axis=1)

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            """Mean skip-gram negative-sampling loss of the batch (see the module docstring)."""
            h = self.item_vectors(features["centre"])
            pos = tf.reduce_sum(h * self.context_table(features["context"]), axis=-1)
            neg = tf.einsum("bd,bkd->bk", h, self.context_table(features["negatives"]))
            loss = -tf.math.log_sigmoid(pos) - tf.reduce_sum(tf.math.log_sigmoid(-neg), axis=-1)
            return tf.reduce_mean(loss)

    return EGESModel


def _optimizer(cfg: GraphEmbeddingConfig) -> Any:
    """Adam, or sparse Adagrad (faster: it only touches the table rows in the batch).

    Adagrad gets a near-zero initial accumulator: the default 0.1 dwarfs the tiny gradients of a
    batch-mean loss and turns it into plain SGD that barely moves.
    """
    tf = tensorflow()
    if cfg.optimizer == "adam":
        return tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    if cfg.optimizer != "adagrad":
        raise ValueError(f"unknown EGES optimizer {cfg.optimizer!r}; use 'adagrad' or 'adam'")
    return tf.keras.optimizers.legacy.Adagrad(learning_rate=cfg.learning_rate,
                                              initial_accumulator_value=1e-6)


def train_eges(train: Interactions, centres: np.ndarray, contexts: np.ndarray,
               cfg: GraphEmbeddingConfig, *, history: list[float] | None = None) -> np.ndarray:
    """Train EGES on skip-gram pairs; return ``H`` for every item, ``[n_items, dim]`` float32.

    Args:
        train: Training interactions (catalogue size, side information, seen items).
        centres: Centre item per pair.
        contexts: Context item per pair.
        cfg: Hyper-parameters.
        history: When given, the mean loss of each epoch is appended (for tests and reports).
    """
    from training.graph_embedding import negative_distribution

    tf = tensorflow()
    n_items = train.n_items
    noise = negative_distribution(contexts, n_items)
    model = eges_model_class()(n_items, side_indices(train, cfg.side_info), cfg.dim, cfg.seed)
    model.compile(optimizer=_optimizer(cfg))
    rng = np.random.default_rng([cfg.seed, 7])
    cdf = np.cumsum(noise)
    for _ in range(cfg.epochs):
        perm = rng.permutation(len(centres))
        negs = np.minimum(np.searchsorted(cdf, rng.random((len(centres), cfg.negatives)) * cdf[-1],
                                          side="right"), n_items - 1)
        ds = tf.data.Dataset.from_tensor_slices({
            "centre": centres[perm], "context": contexts[perm], "negatives": negs})
        fit = model.fit(ds.batch(cfg.batch_size).prefetch(2), epochs=1, verbose=0)
        if history is not None:
            history.append(float(fit.history["loss"][-1]))
    seen = np.bincount(train.item, minlength=n_items) > 0
    items = tf.range(n_items, dtype=tf.int64)
    return model.item_vectors(items, tf.constant(seen)).numpy().astype(np.float32)
