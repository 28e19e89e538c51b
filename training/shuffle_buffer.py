"""The ranker stream's bounded shuffle: rows mix across a window, then leave in whole batches.

Split from :mod:`training.ranker_data`, which feeds it the decoded Parquet chunks of a pass
that the stream cache (:mod:`training.stream_cache`) does not hold yet.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

Batch = dict[str, np.ndarray]


class ShuffleBuffer:
    """Mix rows across a window of ``buffer_rows`` and cut them into batches.

    Rows enter in chunks; whenever more than ``buffer_rows + batch_size`` rows wait, whole
    batches of rows drawn at random (in random order) leave, the rest stays. Like
    ``Dataset.shuffle``, a row never leaves more than about ``buffer_rows`` (+ one chunk) rows
    before its file position (it may stay longer, ever more rarely), so the buffer must span
    more than a day of a time-ordered file to mix days.

    The pool is one preallocated array per column: a chunk is copied in once, a leaving row is
    gathered out once, and the kept rows left above the new end are moved into the holes.
    Permuting and re-concatenating the whole pool at every step copied each row about four
    times, half of the input pipeline's CPU on 2 cores.
    """

    def __init__(self, buffer_rows: int, batch_size: int, rng: np.random.Generator) -> None:
        """Empty buffer; ``buffer_rows`` 0 keeps file order (used for evaluation)."""
        if buffer_rows < 0 or batch_size < 1:
            raise ValueError(f"need buffer_rows >= 0 and batch_size >= 1, got {buffer_rows} "
                             f"and {batch_size}")
        self.buffer_rows, self.batch_size, self.rng = buffer_rows, batch_size, rng
        self._pool: Batch = {}
        self._rows = 0

    def _append(self, chunk: Batch, n: int) -> None:
        capacity = len(next(iter(self._pool.values()))) if self._pool else 0
        if self._rows + n > capacity:  # grow (a few times at the start of a pass)
            size = max(2 * capacity, self._rows + n, self.buffer_rows + 2 * n)
            grown = {k: np.empty((size, *v.shape[1:]), dtype=v.dtype) for k, v in chunk.items()}
            for k, v in self._pool.items():
                grown[k][:self._rows] = v[:self._rows]
            self._pool = grown
        for k, v in chunk.items():
            self._pool[k][self._rows:self._rows + n] = v
        self._rows += n

    def _take(self, leave: int) -> Iterator[Batch]:
        rows, keep = self._rows, self._rows - leave
        chosen = (self.rng.permutation(rows)[:leave] if self.buffer_rows
                  else np.arange(leave))
        out = {k: v[chosen] for k, v in self._pool.items()}  # fresh arrays: no pool aliasing
        taken = np.zeros(rows, dtype=bool)
        taken[chosen] = True
        holes = np.flatnonzero(taken[:keep])  # left below the new end: refill from above it
        stay = np.flatnonzero(~taken[keep:]) + keep  # as many, in order (file order kept)
        if len(holes):
            for v in self._pool.values():
                v[holes] = v[stay]
        self._rows = keep
        for lo in range(0, leave, self.batch_size):
            yield {k: v[lo:min(lo + self.batch_size, leave)] for k, v in out.items()}

    def push(self, chunk: Batch) -> Iterator[Batch]:
        """Add rows; yield the full batches that may leave now."""
        n = len(next(iter(chunk.values())))
        if not n:
            return
        self._append(chunk, n)
        if self._rows >= self.buffer_rows + self.batch_size:
            yield from self._take((self._rows - self.buffer_rows) // self.batch_size
                                  * self.batch_size)

    def flush(self) -> Iterator[Batch]:
        """Yield everything left (the last batch may be short)."""
        if self._rows:
            yield from self._take(self._rows)
