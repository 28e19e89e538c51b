"""Item graph, weighted walks, skip-gram pairs (by hand) and EGES training on tiny graphs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.graph_embedding import (
    GraphEmbeddingConfig,
    build_item_graph,
    fit_graph_embedding,
    fit_transitions,
    negative_distribution,
    random_walks,
    skipgram_pairs,
    transition_probabilities,
)
from training.recall_datasets import Interactions, from_frame

A, B, C, D = 0, 1, 2, 3


def sessions() -> Interactions:
    """s1: A B C and s4: D (both user 0), s2: A B (user 1), s3: B A A C (user 2).

    Edges: A→B twice (s1, s2); B→C (s1); B→A (s3); A→C (s3, after dropping the A→A repeat).
    No C→D: s1 and s4 are different sessions of the same user.
    """
    rows = [(0, A, "s1"), (0, B, "s1"), (0, C, "s1"), (1, A, "s2"), (1, B, "s2"),
            (2, B, "s3"), (2, A, "s3"), (2, A, "s3"), (2, C, "s3"), (0, D, "s4")]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "session"])
    frame["ts"] = np.arange(len(frame))
    return from_frame("sessions", frame, session_col="session")


def test_graph_from_sessions_by_hand() -> None:
    g = build_item_graph(sessions()).toarray()
    expected = np.zeros((4, 4))
    expected[A, B], expected[B, C], expected[B, A], expected[A, C] = 2, 1, 1, 1
    np.testing.assert_array_equal(g, expected)


def test_transition_probabilities_from_edge_weights() -> None:
    """From A: B 2/3, C 1/3. From B: A 1/2, C 1/2. C and D have no out-edges (rows of 0)."""
    p = transition_probabilities(build_item_graph(sessions())).toarray()
    np.testing.assert_allclose(p[A], [0, 2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(p[B], [1 / 2, 0, 1 / 2, 0])
    assert p[C].sum() == 0 and p[D].sum() == 0


def test_transitions_source_by_hand() -> None:
    """User 1's history: A then B. Excluding history, only C can be recommended.

    Uniform: C = P(C|A) + P(C|B) = 1/3 + 1/2 = 5/6.
    decay 0.5 (B weighs 1, A 0.5): C = 0.5 * 1/3 + 1/2 = 2/3.
    """
    data = sessions()
    model = fit_transitions(data)
    assert model.similar(A, 3) == [(B, pytest.approx(2 / 3)), (C, pytest.approx(1 / 3))]
    items, scores = model.recommend(data, np.array([1]), 2)
    assert items.tolist() == [[C, -1]] and scores[0, 0] == pytest.approx(5 / 6)
    model.decay = 0.5
    assert model.recommend(data, np.array([1]), 1)[1][0, 0] == pytest.approx(2 / 3)


def test_walk_frequencies_follow_the_weights() -> None:
    """20,000 walks from A. Step 1: B with p = 2/3 (binomial sd ≈ 0.0033, we allow 0.015).

    Step 2 after A→B: A or C with 1/2 each → path A B A has p = 2/3 * 1/2 = 1/3.
    After A→C the walk dead-ends: C has no out-edge, so step 2 is -1 with p = 1/3.
    """
    g = build_item_graph(sessions())
    walks = random_walks(g, walk_length=3, seed=7, start_nodes=np.full(20_000, A))
    assert abs(np.mean(walks[:, 1] == B) - 2 / 3) < 0.015
    assert np.all(walks[:, 1] != D) and np.all(walks[:, 1] != A)
    assert abs(np.mean((walks[:, 1] == B) & (walks[:, 2] == A)) - 1 / 3) < 0.015
    np.testing.assert_array_equal(walks[walks[:, 1] == C, 2], -1)


def test_walks_are_seeded_and_start_from_nodes_with_out_edges() -> None:
    g = build_item_graph(sessions())
    w1 = random_walks(g, walks_per_node=3, walk_length=4, seed=1)
    w2 = random_walks(g, walks_per_node=3, walk_length=4, seed=1)
    np.testing.assert_array_equal(w1, w2)
    assert sorted(w1[:, 0].tolist()) == [A, A, A, B, B, B]  # C and D have no out-edges
    assert not np.array_equal(w1, random_walks(g, walks_per_node=3, walk_length=4, seed=2))


def test_skipgram_pairs_by_hand() -> None:
    """Walk A B C -1, window 2: distance 1 gives A-B, B-C; distance 2 gives A-C; both ways.

    Walk A B A: the distance-2 pair A-A is dropped (an item is not its own context).
    """
    centres, contexts = skipgram_pairs(np.array([[A, B, C, -1]]), window=2)
    assert sorted(zip(centres.tolist(), contexts.tolist(), strict=True)) == [
        (A, B), (A, C), (B, A), (B, C), (C, A), (C, B)]
    centres, contexts = skipgram_pairs(np.array([[A, B, A]]), window=2)
    assert sorted(zip(centres.tolist(), contexts.tolist(), strict=True)) == [
        (A, B), (A, B), (B, A), (B, A)]


def test_negative_distribution_is_unigram_to_the_three_quarters() -> None:
    p = negative_distribution(np.array([0, 0, 0, 0, 1]), 3)
    z = 4 ** 0.75 + 1
    np.testing.assert_allclose(p, [4 ** 0.75 / z, 1 / z, 0])
    with pytest.raises(ValueError, match="no skip-gram pairs"):
        negative_distribution(np.array([], dtype=np.int64), 3)


def two_clusters(seed: int = 0) -> Interactions:
    """Items 0-4 (category 0) and 5-9 (category 1) are browsed only within their cluster.

    Items 10 and 11 are in the catalogue (category 0, no shop) but were never interacted with.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(60):
        base = 0 if user % 2 == 0 else 5
        for t, item in enumerate(base + rng.integers(0, 5, 8)):
            rows.append((user, int(item), t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    items = pd.DataFrame({"item_id": np.arange(12), "category_id": [0] * 5 + [1] * 5 + [0, 0]})
    return from_frame("clusters", frame, items=items)


def test_eges_learns_clusters_and_embeds_cold_items_from_side_info() -> None:
    from training.graph_embedding_eges import side_indices, train_eges

    data = two_clusters()
    assert side_indices(data, True)[0].tolist() == [1] * 5 + [2] * 5 + [1, 1]  # no shop field
    cfg = GraphEmbeddingConfig(walks_per_node=10, walk_length=8, window=2, dim=8, epochs=8,
                               batch_size=256, learning_rate=0.1, top_n=4, seed=3)
    graph = build_item_graph(data)
    centres, contexts = skipgram_pairs(random_walks(graph, walks_per_node=10, walk_length=8,
                                                    seed=3), 2)
    losses: list[float] = []
    emb = train_eges(data, centres, contexts, cfg, history=losses)
    assert losses[-1] < 0.8 * losses[0]
    # Never-seen items 10 and 11 share category 0 and nothing else: identical side-only vectors.
    np.testing.assert_allclose(emb[10], emb[11])
    model = fit_graph_embedding(data, cfg)
    for item in range(10):
        cluster = set(range(5)) if item < 5 else set(range(5, 10))
        neighbours = {j for j, _ in model.similar(item, 4)}
        assert neighbours == cluster - {item}, (item, neighbours)
    assert model.similar(10, 4) == []  # cold items are not offered as neighbours
