"""A decoded copy of a training window on local disk: passes after the first skip Parquet.

Every streamed pass over the ranker training set decodes Parquet, pads three 50-long
histories per row and copies each row through the shuffle pool: about 0.39 CPU-s of Python
work per 158k rows on this machine, taken from the same two cores the train step uses. The
fastest rankers step through those rows in about 5 CPU-s, so the input alone cost them close
to a tenth of their speed.

So the first pass also writes every decoded, padded chunk to one flat binary file per input
(append only, file order). The entry becomes visible only once that pass has read the whole
window (an atomic rename of its directory), so an interrupted pass never leaves half an entry.
Later passes memory-map the files and gather their batches straight out of them: one copy
per row and no decode (0.08 CPU-s per pass instead of 0.39).

With every row addressable, a cached pass also shuffles better than the pool can. Blocks of
:data:`BLOCK_ROWS` rows are visited in a random order, and rows are permuted within windows
of ``shuffle_buffer`` rows, so one window mixes rows from all over the file.

The price is disk: the padded arrays take about 1.5 KB a row with the shipped contract,
against about 70 bytes of compressed Parquet. An entry is keyed by the file's identity (path,
size, modification time), the window and the inputs. Committing an entry removes the entries
of older versions of the same file, which can no longer be read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.runs import pid_alive

FORMAT = 1
"""Version of the entry layout; entries of another version are rebuilt."""
BLOCK_ROWS = 1024
"""Rows kept together when a cached pass visits the file in random order."""
META = "meta.json"
Batch = dict[str, np.ndarray]


def source_identity(source: Any) -> dict[str, Any]:
    """What makes two reads of a ``ParquetSource`` return the same rows."""
    stat = Path(source.path).stat()
    return {"path": str(Path(source.path).resolve()), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "start": str(source.start), "end": str(source.end),
            "ts_col": source.ts_col, "keep": source.keep, "seed": source.seed}


@dataclass(frozen=True)
class StreamCache:
    """Entries of decoded training windows under ``directory`` (created on first write).

    Attributes:
        directory: Where the entries live; a local disk with room for about 1.5 KB a row.
    """

    directory: Path

    def entry(self, source: Any, layout: Any) -> tuple[Path, dict[str, Any]]:
        """Directory and key fields of the entry for ``source`` read as ``layout``.

        ``layout`` is any JSON-able description of what a row holds (the inputs and labels):
        another layout is another entry.
        """
        text = json.dumps({"format": FORMAT, "source": source_identity(source),
                           "layout": layout}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        return Path(self.directory) / digest, json.loads(text)  # as the metadata reads back

    def open(self, source: Any, layout: Any) -> dict[str, np.ndarray] | None:
        """The committed entry's columns, memory-mapped read-only; None when there is none.

        An entry whose files do not match its metadata (a truncated file, a crash of the
        disk) is removed, so the next pass rebuilds it instead of training on garbage.
        """
        path, key = self.entry(source, layout)
        try:
            meta = json.loads((path / META).read_text())
        except (OSError, ValueError):
            return None
        if meta.get("key") != key or not _files_match(path, meta):
            shutil.rmtree(path, ignore_errors=True)
            return None
        return {name: _column(path, meta["rows"], col) for name, col in meta["columns"].items()}

    def writer(self, source: Any, layout: Any) -> CacheWriter:
        """A writer that fills this source's entry during a pass (see :class:`CacheWriter`)."""
        path, key = self.entry(source, layout)
        return CacheWriter(path, key)


def _files_match(path: Path, meta: dict[str, Any]) -> bool:
    if not isinstance(meta.get("rows"), int) or not isinstance(meta.get("columns"), dict):
        return False
    for col in meta["columns"].values():
        size = meta["rows"] * np.dtype(col["dtype"]).itemsize * int(np.prod(col["shape"]))
        file = path / col["file"]
        if not file.is_file() or file.stat().st_size != size:
            return False
    return True


def _column(path: Path, rows: int, col: dict[str, Any]) -> np.ndarray:
    shape = (rows, *col["shape"])
    if not rows:  # mmap refuses empty files
        return np.empty(shape, dtype=col["dtype"])
    return np.asarray(np.memmap(path / col["file"], dtype=col["dtype"], mode="r", shape=shape))


class CacheWriter:
    """Appends a pass's decoded chunks to a private directory; :meth:`commit` publishes it.

    The private directory is named after this process, so a writer that died with its process
    is swept by the next commit in the same cache directory.
    """

    def __init__(self, final: Path, key: dict[str, Any]) -> None:
        self.final, self.key = final, key
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = final.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex}"
        self.tmp.mkdir()
        self.rows = 0
        self._files: dict[str, Any] = {}
        self._columns: dict[str, dict[str, Any]] = {}

    def append(self, chunk: Mapping[str, np.ndarray]) -> None:
        """Write one chunk of rows (every column the same length, the same columns each time).

        Raises:
            ValueError: for a chunk whose columns differ from the first chunk's, in name,
                dtype, row width or length.
        """
        n = len(next(iter(chunk.values()))) if chunk else 0
        if self._columns and set(chunk) != set(self._columns):
            raise ValueError(f"chunk columns {sorted(chunk)} differ from the first chunk's "
                             f"{sorted(self._columns)}")
        for name, values in chunk.items():
            values = np.ascontiguousarray(values)
            col = {"dtype": values.dtype.str, "shape": list(values.shape[1:])}
            if values.dtype.hasobject or len(values) != n:
                raise ValueError(f"column {name!r} cannot be cached: dtype {values.dtype}, "
                                 f"{len(values)} rows in a chunk of {n}")
            known = self._columns.setdefault(name, {**col, "file": f"c{len(self._columns)}.bin"})
            if {k: known[k] for k in col} != col:
                raise ValueError(f"column {name!r} changed from {known} to {col} mid-pass")
            if name not in self._files:
                self._files[name] = open(self.tmp / known["file"], "wb")  # noqa: SIM115
            values.tofile(self._files[name])
        self.rows += n

    def _close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def commit(self) -> None:
        """Publish the entry (atomically), then remove stale entries of the same file."""
        self._close()
        meta = {"key": self.key, "rows": self.rows, "columns": self._columns}
        (self.tmp / META).write_text(json.dumps(meta))
        try:
            os.rename(self.tmp, self.final)
        except OSError:  # another pass committed the same entry first: keep theirs
            shutil.rmtree(self.tmp, ignore_errors=True)
        _prune(self.final.parent, self.key["source"])

    def abort(self) -> None:
        """Drop everything written (the pass ended before the end of the window)."""
        self._close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _prune(directory: Path, source: dict[str, Any]) -> None:
    """Remove entries of an older version of ``source``'s file, and dead writers' directories.

    Other windows of the same file (the validation window beside the train window) stay.
    """
    version = ("size", "mtime_ns")
    for child in directory.iterdir():
        if child.name.startswith(".tmp-"):
            pid = child.name.split("-")[1]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(child, ignore_errors=True)
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            other = json.loads((child / META).read_text())["key"]["source"]
            if other["path"] == source["path"] and any(other[k] != source[k] for k in version):
                shutil.rmtree(child, ignore_errors=True)


def pass_order(rows: int, window_rows: int, rng: np.random.Generator) -> np.ndarray | None:
    """Row order of one shuffled pass over an entry; None keeps file order (``window_rows`` 0).

    Blocks of :data:`BLOCK_ROWS` consecutive rows come in a random order, then rows are
    permuted within each run of ``window_rows`` rows of that order. Every row appears once.
    """
    if window_rows <= 0:
        return None
    blocks = rng.permutation(-(-rows // BLOCK_ROWS))
    order = (blocks[:, None] * BLOCK_ROWS + np.arange(BLOCK_ROWS)).reshape(-1)
    order = order[order < rows]
    for lo in range(0, rows, window_rows):
        rng.shuffle(order[lo:lo + window_rows])  # in place, on a view
    return order


def cached_batches(columns: Mapping[str, np.ndarray], batch_size: int, shuffle_buffer: int,
                   rng: np.random.Generator) -> Iterator[Batch]:
    """One pass over an open entry in batches of ``batch_size`` (the last one may be short)."""
    rows = len(next(iter(columns.values()))) if columns else 0
    order = pass_order(rows, shuffle_buffer, rng)
    for lo in range(0, rows, batch_size):
        hi = min(rows, lo + batch_size)
        if order is None:  # file order: a copy, so nothing downstream holds the mapping
            yield {k: np.array(v[lo:hi]) for k, v in columns.items()}
        else:
            pick = order[lo:hi]
            yield {k: v[pick] for k, v in columns.items()}


@contextlib.contextmanager
def scratch_cache(directory: str | Path | None, parent: Path) -> Iterator[StreamCache]:
    """``directory``'s cache, kept; or, for None, a fresh one inside ``parent``, removed after.

    A training run caches its windows for its own epochs by default and leaves no disk behind;
    a cache directory that outlives runs saves the first pass of the next run on the same file.
    """
    if directory is not None:
        yield StreamCache(Path(directory))
        return
    Path(parent).mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".stream-cache-", dir=parent)
    try:
        yield StreamCache(Path(scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
