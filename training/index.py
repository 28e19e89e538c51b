"""Inner-product FAISS index over item-tower embeddings: exact, HNSW or IVF.

Embeddings are L2-normalised, so inner product = cosine. Small catalogues get an exact
``IndexFlatIP`` (brute force is fast and has perfect recall); large ones an approximate index.
The query-time knobs (HNSW ``efSearch``, IVF ``nprobe``) are stored in the index file, so serving
needs no extra configuration. The defaults below were chosen with ``benchmarks/bench_ann.py`` so
that recall@100 against exact search stays >= 0.98 on clustered unit vectors
(``tests/model/test_index.py`` checks it on 20k items x 64 dims).

Kinds (``build_index(kind=...)``):

* ``flat`` — exact; cost per query grows linearly with the catalogue;
* ``hnsw`` — graph search (``IndexHNSWFlat``): best recall per query time, slow to build
  (``ef_construction``), memory ``~ N * (4 D + 8 M)`` bytes;
* ``ivf`` — inverted lists (``IndexIVFFlat``): ``nlist`` k-means cells (default ``4 sqrt(N)``),
  each query scans the ``nprobe`` nearest cells; builds in seconds, no graph memory;
* ``auto`` — chosen by catalogue size (:func:`choose_kind`, the pipeline's behaviour):
  ``flat`` below ``hnsw_threshold`` items, ``hnsw`` up to ``ivf_threshold``, ``ivf`` beyond
  (where the HNSW graph's build time and memory stop paying off).

A multi-interest user tower emits ``K`` vectors per user; :func:`search_multi` runs the ``K``
searches and keeps each item's best score.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

INDEX_FILE = "item_index.faiss"
IDS_FILE = "item_ids.npy"
KINDS = ("auto", "flat", "hnsw", "ivf")
DEFAULT_EF_SEARCH = 256
"""HNSW query beam width; must be well above k (top-100 needs ~2.5 k for recall >= 0.98)."""
DEFAULT_NPROBE = 128
"""IVF cells scanned per query, of ``4 sqrt(N)`` cells: ~23% of them at 20k items, ~10% at 100k."""
IVF_POINTS_PER_CELL = 39
"""FAISS' k-means wants at least 39 training points per centroid; fewer cells otherwise."""


def ivf_nlist(n: int) -> int:
    """Default cell count: ``4 sqrt(N)`` (FAISS' guideline), at most ``N / 39``, at least 1."""
    return max(1, min(int(4 * math.sqrt(n)), n // IVF_POINTS_PER_CELL))


def choose_kind(n: int, hnsw_threshold: int = 200_000, ivf_threshold: int = 2_000_000) -> str:
    """Index family for a catalogue of ``n`` items (see ``auto`` in the module docstring).

    Raises:
        ValueError: if the thresholds are not ``1 <= hnsw_threshold <= ivf_threshold``.
    """
    if not 1 <= hnsw_threshold <= ivf_threshold:
        raise ValueError(f"need 1 <= hnsw_threshold <= ivf_threshold, got {hnsw_threshold} "
                         f"and {ivf_threshold}")
    if n < hnsw_threshold:
        return "flat"
    return "hnsw" if n < ivf_threshold else "ivf"


def make_index(embeddings: np.ndarray, kind: str = "flat", *, hnsw_m: int = 32,
               ef_construction: int = 100, ef_search: int = DEFAULT_EF_SEARCH,
               nlist: int | None = None, nprobe: int = DEFAULT_NPROBE, seed: int = 0) -> object:
    """Build an in-memory inner-product index of ``kind`` (``flat``, ``hnsw`` or ``ivf``).

    Args:
        embeddings: ``[N, D]`` float32 (contiguous) item embeddings.
        kind: Index family, see the module docstring.
        hnsw_m: HNSW graph degree.
        ef_construction: HNSW build-time beam width (build time grows linearly with it).
        ef_search: HNSW query-time beam width (persisted in the index file).
        nlist: IVF cell count; ``None`` = :func:`ivf_nlist`.
        nprobe: IVF cells scanned per query (persisted; capped at ``nlist``).
        seed: k-means seed of the IVF training, so a rebuild gives the same cells.

    Raises:
        ValueError: for an unknown kind or a non-positive parameter.
    """
    import faiss

    n, dim = embeddings.shape
    if min(hnsw_m, ef_construction, ef_search, nprobe) < 1 or (nlist is not None and nlist < 1):
        raise ValueError("hnsw_m, ef_construction, ef_search, nlist and nprobe must be >= 1")
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        cells = min(nlist or ivf_nlist(n), max(1, n))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.min_points_per_centroid = 1  # small catalogues: no "too few points" warning
        index.train(embeddings)
        index.nprobe = min(nprobe, cells)
    else:
        raise ValueError(f"unknown index kind {kind!r}; choose from {KINDS[1:]}")
    index.add(embeddings)
    return index


def build_index(embeddings: np.ndarray, item_ids: np.ndarray, path: Path, *,
                kind: str = "auto", hnsw_threshold: int = 200_000,
                ivf_threshold: int = 2_000_000, hnsw_m: int = 32,
                ef_construction: int = 100, ef_search: int = DEFAULT_EF_SEARCH,
                nlist: int | None = None, nprobe: int = DEFAULT_NPROBE) -> Path:
    """Build and write the index; row ``i`` of the index is item ``item_ids[i]``.

    Args:
        embeddings: ``[N, D]`` item embeddings (cast to contiguous float32 for FAISS).
        item_ids: ``[N]`` item ids, stored as int64 next to the index.
        path: Directory to write ``item_index.faiss`` and ``item_ids.npy`` into.
        kind: ``auto`` (:func:`choose_kind`), ``flat``, ``hnsw`` or ``ivf``.
        hnsw_threshold: For ``auto``: use HNSW when ``N >= hnsw_threshold``.
        ivf_threshold: For ``auto``: use IVF when ``N >= ivf_threshold``.
        hnsw_m: HNSW graph degree (as :func:`make_index`).
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW query-time beam width (persisted).
        nlist: IVF cell count (``None`` = :func:`ivf_nlist`).
        nprobe: IVF cells scanned per query (persisted).

    Returns:
        Path of the written ``item_index.faiss``.

    Raises:
        ValueError: on shape mismatches, duplicate item ids (a duplicate would be returned twice
            in a top-k list) or an unknown kind.
    """
    import faiss

    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    ids = np.asarray(item_ids, dtype=np.int64)
    if emb.ndim != 2 or ids.ndim != 1 or emb.shape[0] != ids.shape[0]:
        raise ValueError(f"need [N, D] embeddings and [N] ids, got {emb.shape} and {ids.shape}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("item_ids contains duplicates")
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose from {KINDS}")
    if kind == "auto":
        kind = choose_kind(emb.shape[0], hnsw_threshold, ivf_threshold)
    index = make_index(emb, kind, hnsw_m=hnsw_m, ef_construction=ef_construction,
                       ef_search=ef_search, nlist=nlist, nprobe=nprobe)
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


def search_multi(index: object, item_ids: np.ndarray, queries: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items for multi-interest queries ``[Q, K, D]``: an item's score is its max.

    Serving a multi-interest user tower (``[B, K, D]`` output): one index search per interest
    (all ``Q * K`` vectors in one FAISS call), then per user the union of the ``K`` lists with
    each item's best score, cut to ``k``. The result equals exact max-over-interests top-k
    whenever each interest's own top-k is exact, because an item in the true top-k is in the
    top-k of the interest that scores it highest.

    Returns:
        ``(scores [Q, k], item ids [Q, k])``, best first (ties: lower item id); ``-1``/-inf pad.

    Raises:
        ValueError: if ``queries`` is not 3-D.
    """
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim != 3:
        raise ValueError(f"multi-interest queries must be [Q, K, D], got shape {q.shape}")
    n_q, n_k, dim = q.shape
    k = max(1, int(k))
    scores, ids = search(index, item_ids, q.reshape(n_q * n_k, dim), k)
    scores, ids = scores.reshape(n_q, n_k * k), ids.reshape(n_q, n_k * k)
    out_s = np.full((n_q, k), -np.inf)
    out_i = np.full((n_q, k), -1, dtype=np.int64)
    for row in range(n_q):
        ok = ids[row] >= 0
        s, i = scores[row][ok], ids[row][ok]
        order = np.lexsort((i, -s))  # best score first, then lower id
        s, i = s[order], i[order]
        _, first = np.unique(i, return_index=True)  # first = best occurrence of each item
        keep = np.sort(first)[:k]
        out_s[row, :len(keep)], out_i[row, :len(keep)] = s[keep], i[keep]
    return out_s, out_i
