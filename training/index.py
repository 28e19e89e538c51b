"""Inner-product FAISS index over item-tower embeddings.

Embeddings are L2-normalised, so inner product = cosine. Small catalogues get an exact
``IndexFlatIP`` (brute force is fast and has perfect recall); large ones an HNSW graph, whose
``efSearch`` is stored in the file so serving needs no extra configuration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INDEX_FILE = "item_index.faiss"
IDS_FILE = "item_ids.npy"


def build_index(embeddings: np.ndarray, item_ids: np.ndarray, path: Path, *,
                hnsw_threshold: int = 200_000, hnsw_m: int = 32, ef_construction: int = 200,
                ef_search: int = 128) -> Path:
    """Build and write the index; row ``i`` of the index is item ``item_ids[i]``.

    Args:
        embeddings: ``[N, D]`` item embeddings (cast to contiguous float32 for FAISS).
        item_ids: ``[N]`` item ids, stored as int64 next to the index.
        path: Directory to write ``item_index.faiss`` and ``item_ids.npy`` into.
        hnsw_threshold: Use HNSW when ``N >= hnsw_threshold``, exact search below.
        hnsw_m: HNSW graph degree.
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW query-time beam width (persisted in the index file).

    Returns:
        Path of the written ``item_index.faiss``.

    Raises:
        ValueError: on shape mismatches or duplicate item ids (a duplicate would be returned
            twice in a top-k list).
    """
    import faiss

    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    ids = np.asarray(item_ids, dtype=np.int64)
    if emb.ndim != 2 or ids.ndim != 1 or emb.shape[0] != ids.shape[0]:
        raise ValueError(f"need [N, D] embeddings and [N] ids, got {emb.shape} and {ids.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("item_ids contains duplicates")
    dim = emb.shape[1]
    if emb.shape[0] >= hnsw_threshold:
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(emb)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(path / INDEX_FILE))
    np.save(path / IDS_FILE, ids)
    return path / INDEX_FILE


def load_index(path: Path) -> tuple[object, np.ndarray]:
    """Read ``(faiss_index, item_ids)`` written by :func:`build_index` from directory ``path``."""
    import faiss

    path = Path(path)
    return faiss.read_index(str(path / INDEX_FILE)), np.load(path / IDS_FILE)


def search(index: object, item_ids: np.ndarray, queries: np.ndarray,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items per query: ``(scores [Q, k], item ids [Q, k])``, best first.

    FAISS pads with row ``-1`` when the catalogue has fewer than ``k`` items; those slots get
    item id ``-1`` and score ``-inf``.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = max(1, int(k))
    scores, rows = index.search(q, k)  # type: ignore[attr-defined]
    ids = np.where(rows >= 0, item_ids[np.clip(rows, 0, None)], -1)
    return np.where(rows >= 0, scores, -np.inf), ids
