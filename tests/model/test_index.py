"""FAISS index: exact top-k equals numpy brute force; HNSW/IVF defaults near exact; files."""

from __future__ import annotations

import numpy as np
import pytest

from training.index import (
    DEFAULT_EF_SEARCH,
    DEFAULT_NPROBE,
    IDS_FILE,
    INDEX_FILE,
    build_index,
    choose_kind,
    ivf_nlist,
    load_index,
    search,
    search_multi,
)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_index_top_k_equals_brute_force(tmp_path) -> None:
    rng = np.random.default_rng(1)
    items, queries = _unit(rng, 500, 16), _unit(rng, 40, 16)
    ids = rng.permutation(10_000)[:500].astype(np.int64)
    build_index(items, ids, tmp_path)
    assert (tmp_path / INDEX_FILE).exists() and (tmp_path / IDS_FILE).exists()
    index, loaded_ids = load_index(tmp_path)
    assert type(index).__name__ == "IndexFlatIP"
    np.testing.assert_array_equal(loaded_ids, ids)

    scores, top = search(index, loaded_ids, queries, k=10)
    brute = queries @ items.T
    want_rows = np.argsort(-brute, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(top, ids[want_rows])
    np.testing.assert_allclose(scores, np.take_along_axis(brute, want_rows, 1), rtol=1e-5)


def test_hnsw_above_threshold_is_near_exact_and_keeps_ef_search(tmp_path) -> None:
    rng = np.random.default_rng(2)
    items, queries = _unit(rng, 2000, 16), _unit(rng, 50, 16)
    ids = np.arange(2000, dtype=np.int64) + 7
    build_index(items, ids, tmp_path, hnsw_threshold=1000, ef_search=256)
    index, loaded_ids = load_index(tmp_path)
    assert type(index).__name__ == "IndexHNSWFlat"
    assert index.hnsw.efSearch == 256  # persisted: serving needs no extra config
    _, top = search(index, loaded_ids, queries, k=10)
    want = ids[np.argsort(-(queries @ items.T), axis=1)[:, :10]]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, want, strict=True)])
    assert recall >= 0.98


def test_k_larger_than_catalogue_pads_with_minus_one(tmp_path) -> None:
    rng = np.random.default_rng(3)
    build_index(_unit(rng, 3, 4), np.array([5, 6, 7]), tmp_path)
    index, ids = load_index(tmp_path)
    scores, top = search(index, ids, _unit(rng, 2, 4), k=5)
    assert (top[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert set(top[0, :3]) == {5, 6, 7}


def test_rejects_duplicate_ids_and_bad_shapes(tmp_path) -> None:
    with pytest.raises(ValueError, match="duplicates"):
        build_index(np.zeros((2, 4)), np.array([1, 1]), tmp_path)
    with pytest.raises(ValueError, match="need"):
        build_index(np.zeros((2, 4)), np.array([1, 2, 3]), tmp_path)


def _clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Unit vectors around random centres (cosine to the centre ~0.7), like item embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact,
                                                                        strict=True)]))


@pytest.fixture(scope="module")
def clustered_set():
    """20k items x 64 dims + 200 queries, and the exact top-100 of each query."""
    data = _clustered(20_200, 64, 200, seed=5)
    queries, items = data[:200], data[200:]
    exact = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :100]
    return items, queries, exact


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_ann_defaults_reach_recall_at_100_of_exact_search(tmp_path, clustered_set, kind) -> None:
    items, queries, exact = clustered_set
    ids = np.arange(len(items), dtype=np.int64)
    build_index(items, ids, tmp_path, kind=kind)  # documented defaults only
    index, loaded = load_index(tmp_path)
    assert type(index).__name__ == {"hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat"}[kind]
    if kind == "hnsw":
        assert index.hnsw.efSearch == DEFAULT_EF_SEARCH
    else:
        assert (index.nlist, index.nprobe) == (ivf_nlist(len(items)), DEFAULT_NPROBE)
    _, top = search(index, loaded, queries, k=100)
    assert _recall(top, exact) >= 0.98


def test_search_multi_is_exact_max_over_interests(tmp_path) -> None:
    rng = np.random.default_rng(4)
    items = _unit(rng, 300, 8)
    ids = np.arange(300, dtype=np.int64) * 3
    build_index(items, ids, tmp_path, kind="flat")
    index, loaded = load_index(tmp_path)
    queries = _unit(rng, 10 * 3, 8).reshape(10, 3, 8)  # 10 users x K=3 interests
    scores, top = search_multi(index, loaded, queries, k=20)
    best = np.einsum("qkd,nd->qkn", queries, items).max(axis=1)
    want = np.argsort(-best, axis=1, kind="stable")[:, :20]
    np.testing.assert_array_equal(top, ids[want])
    np.testing.assert_allclose(scores, np.take_along_axis(best, want, 1), rtol=1e-5)
    assert all(len(set(row)) == 20 for row in top)  # an item found by two interests once
    with pytest.raises(ValueError, match=r"\[Q, K, D\]"):
        search_multi(index, loaded, queries[0], k=5)


def test_unknown_kind_and_small_ivf_catalogue(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown index kind"):
        build_index(np.zeros((2, 4)), np.array([1, 2]), tmp_path, kind="lsh")
    rng = np.random.default_rng(6)
    items = _unit(rng, 50, 4)  # fewer points than 39 per cell: one cell, exact
    build_index(items, np.arange(50), tmp_path, kind="ivf")
    index, ids = load_index(tmp_path)
    assert index.nlist == 1
    _, top = search(index, ids, items[:5], k=1)
    np.testing.assert_array_equal(top[:, 0], np.arange(5))


def test_auto_kind_follows_catalogue_size(tmp_path) -> None:
    assert [choose_kind(n, 100, 1000) for n in (99, 100, 999, 1000)] == [
        "flat", "hnsw", "hnsw", "ivf"]
    with pytest.raises(ValueError, match="hnsw_threshold <= ivf_threshold"):
        choose_kind(5, 10, 9)
    rng = np.random.default_rng(7)
    items = _unit(rng, 400, 8)
    build_index(items, np.arange(400), tmp_path, hnsw_threshold=100, ivf_threshold=300)
    index, ids = load_index(tmp_path)
    assert type(index).__name__ == "IndexIVFFlat" and index.nlist == ivf_nlist(400) == 10
