"""Item-to-item neighbours from the FAISS item index (``/similar_items``).

The item's own embedding is read back from the index with ``reconstruct`` (supported by the
exact ``IndexFlat*`` indexes training writes; an IVF index needs a direct map, made here when
possible), then the index is searched with it. Scores are the index's inner products, so they
are comparable with the two-tower retrieval scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class UnknownItem(LookupError):
    """The requested item is not in the item index; the service maps it to a 404."""


class ItemNeighbours:
    """Nearest items of an item by embedding inner product.

    Attributes:
        index: FAISS index over item embeddings.
        item_ids: ``int64`` item id per index row.
    """

    def __init__(self, index: Any, item_ids: np.ndarray) -> None:
        """Map item ids to index rows (the first row wins if a catalogue repeats an id)."""
        self.index = index
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        ids, first = np.unique(self.item_ids, return_index=True)
        self.row_of = dict(zip(ids.tolist(), first.tolist(), strict=True))
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()  # IVF indexes cannot reconstruct without it

    def vectors(self, item_ids: np.ndarray) -> np.ndarray:
        """Embeddings ``float32[n, D]`` of known items (raises :class:`UnknownItem`)."""
        rows = [self._row(int(i)) for i in item_ids]
        if not rows:
            return np.empty((0, self.index.d), dtype=np.float32)
        return np.stack([self.index.reconstruct(r) for r in rows]).astype(np.float32)

    def _row(self, item_id: int) -> int:
        try:
            return self.row_of[item_id]
        except KeyError:
            raise UnknownItem(f"item {item_id} is not in the item index") from None

    def similar(self, item_id: int, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest other items, best first, as ``(item_id, score)``.

        Ties are broken by item id so the answer is deterministic.

        Raises:
            UnknownItem: naming ``item_id``.
        """
        query = self.vectors(np.array([item_id]))
        n = min(self.index.ntotal, k + 1)
        sims, rows = self.index.search(query, n)
        found: dict[int, float] = {}
        for row, sim in zip(rows[0], sims[0], strict=True):
            if row < 0:
                continue  # FAISS pads with -1
            other = int(self.item_ids[row])
            if other != item_id and other not in found:
                found[other] = float(sim)
        return sorted(found.items(), key=lambda p: (-p[1], p[0]))[:k]

    def cosine(self, item_ids: np.ndarray) -> np.ndarray | None:
        """Cosine similarity matrix of items (``None`` if any is unknown), for MMR."""
        try:
            vec = self.vectors(item_ids).astype(np.float64)
        except UnknownItem:
            return None
        norm = np.linalg.norm(vec, axis=1, keepdims=True)
        vec = vec / np.where(norm > 0, norm, 1.0)
        return vec @ vec.T
