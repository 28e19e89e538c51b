"""FAISS index: exact top-k equals numpy brute force; files round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from training.index import IDS_FILE, INDEX_FILE, build_index, load_index, search


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
