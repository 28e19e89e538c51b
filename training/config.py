"""Hyper-parameters of the training stage, passed as arguments (never read from the environment).

Kept in one small module so the model builders, the pipeline and the tests share one set of
defaults without importing each other (and without importing TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and optimisation settings for both models.

    Attributes:
        embedding_dim: Size of the L2-normalised two-tower embeddings (and of the FAISS index).
        id_embedding_dim: Embedding width for the hashed ``user_id`` / ``item_id`` inputs.
        cat_embedding_dim: Embedding width for hashed categorical features.
        tower_units: Hidden ReLU layers of each tower, before the projection to ``embedding_dim``.
        temperature: Softmax temperature of the in-batch retrieval loss. Embeddings are unit
            vectors, so logits lie in [-1, 1]; a temperature well below 1 is needed for the
            softmax to be peaked enough to learn.
        deep_units: Hidden ReLU layers of the DCN deep part (stacked after the cross layers).
        cross_layers: Number of ``tfrs.layers.dcn.Cross`` layers.
        learning_rate: Adam learning rate (dense layers; everything when ``optimizer="adam"``).
        optimizer: ``composite`` = sparse Adagrad for embedding tables + Adam for the rest
            (several times faster with large hashed-id tables); ``adam`` = Adam everywhere.
        embedding_learning_rate: Adagrad learning rate for embedding tables (``composite``).
        retrieval_topk_metrics: Compute FactorizedTopK metrics during evaluation in ``fit``;
            off by default because it scores every candidate per batch (slow).
        hnsw_threshold: Catalogues with at least this many items get an HNSW index; smaller ones
            an exact ``IndexFlatIP``.
        ivf_threshold: Catalogues with at least this many items get an IVF index instead of
            HNSW (build time and graph memory; :func:`training.index.choose_kind`).
        shuffle_buffer: tf.data shuffle buffer (rows).
    """

    embedding_dim: int = 32
    id_embedding_dim: int = 32
    cat_embedding_dim: int = 16
    tower_units: tuple[int, ...] = (64,)
    temperature: float = 0.1
    deep_units: tuple[int, ...] = (128, 64)
    cross_layers: int = 2
    learning_rate: float = 0.01
    optimizer: str = "composite"
    embedding_learning_rate: float = 0.2
    retrieval_topk_metrics: bool = False
    hnsw_threshold: int = 200_000
    ivf_threshold: int = 2_000_000
    shuffle_buffer: int = 100_000
