"""Streaming ``tf.data`` input for the rankers, read from the training-set Parquet in pieces.

The ranker training set grows with traffic (one row per impression), so it is never loaded
whole: :class:`ParquetSource` reads record batches with pyarrow (only the columns a model
needs, only the rows of one time window), :class:`ShuffleBuffer` mixes rows across a bounded
window, and :func:`make_stream` turns that into a batched, prefetched ``tf.data.Dataset`` of
``(features, labels)`` where ``labels`` maps each task to its 0/1 column (the contract's
``task_labels``). Peak memory is ``read_rows + shuffle_buffer + batch_size`` rows, whatever the
file size.

Given a :class:`~training.stream_cache.StreamCache`, a pass gathers its batches from the
decoded, padded window on local disk instead of decoding Parquet: a fifth of the Python-side
input CPU, and a shuffle that mixes rows from all over the file. :func:`fill_cache` writes the
window before training (what ``fit_ranker`` does); a pass that finds no entry writes one as it
reads.

The shuffle happens in numpy on whole blocks rather than with ``Dataset.unbatch().shuffle()``:
per-row tf.data elements cost more CPU than the ranker step itself on a 2-core machine, and
the input pipeline must never be what a training run waits for (``bench_rankers`` checks).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shoprec.contract import Contract
from training.preprocessing import InputSpec, arrow_feature_dict, tf_dtype
from training.shuffle_buffer import ShuffleBuffer
from training.stream_cache import StreamCache, cached_batches

TS_COL = "event_ts"
GROUP_COL = "user_id"
Batch = dict[str, np.ndarray]


def task_label_columns(contract: Contract, tasks: Sequence[str]) -> dict[str, str]:
    """Label column of every task, from the contract's ``task_labels``.

    Raises:
        ValueError: for no tasks, or a task the contract has no label for (naming the known).
    """
    # Contracts that predate multi-task training only know the click label.
    known = dict(getattr(contract, "task_labels", None) or {"ctr": contract.label})
    if not tasks:
        raise ValueError("a ranker needs at least one task")
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(f"tasks {unknown} have no label column in the contract; "
                         f"known tasks: {sorted(known)}")
    return {t: known[t] for t in tasks}


@dataclass(frozen=True)
class ParquetSource:
    """Rows of one Parquet file whose timestamp lies in ``[start, end)``.

    Attributes:
        path: The training-set file (e.g. ``datasets/ranker.parquet``).
        start: Inclusive lower bound of ``ts_col`` (``None``: no bound).
        end: Exclusive upper bound (``None``: no bound). The pipeline's train split is
            ``end=cutoff`` and its held-out split ``start=cutoff``, exactly as
            :func:`training.runs.split_by_time` splits.
        ts_col: The timestamp column.
        read_rows: Rows per pyarrow record batch (bounds memory per read).
        keep: Share of the window's rows kept (a seeded Bernoulli sample, the same rows on
            every pass): quick runs train on less data of the same kind.
        seed: Seed of that sample.
    """

    path: Path
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    ts_col: str = TS_COL
    read_rows: int = 16_384
    keep: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"training set {self.path} does not exist")
        if self.read_rows < 1:
            raise ValueError(f"read_rows must be >= 1, got {self.read_rows}")
        if not 0.0 < self.keep <= 1.0:
            raise ValueError(f"keep must be in (0, 1], got {self.keep}")

    def _mask(self, batch: pa.RecordBatch) -> pa.Array | None:
        ts = batch.column(self.ts_col)
        mask = None
        for bound, op in ((self.start, pc.greater_equal), (self.end, pc.less)):
            if bound is not None:
                scalar = pa.scalar(pd.Timestamp(bound).tz_convert("UTC"), type=ts.type)
                cond = op(ts, scalar)
                mask = cond if mask is None else pc.and_(mask, cond)
        return mask

    def chunks(self, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        """Yield the window's rows, ``read_rows`` at most at a time, with ``columns`` only."""
        for batch in self.record_batches(columns):
            yield batch.to_pandas()

    def record_batches(self, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
        """:meth:`chunks` as Arrow record batches (the training stream reads these)."""
        wanted = list(dict.fromkeys([*columns, self.ts_col]))
        have = set(pq.read_schema(self.path).names)
        missing = [c for c in wanted if c not in have]
        if missing:
            raise KeyError(f"{self.path} lacks columns {missing}")
        batches = pq.ParquetFile(self.path).iter_batches(batch_size=self.read_rows,
                                                         columns=wanted)
        for number, batch in enumerate(batches):
            if self.keep < 1.0:
                rng = np.random.default_rng([self.seed, number])
                batch = batch.filter(pa.array(rng.random(batch.num_rows) < self.keep))
            mask = self._mask(batch)
            if mask is not None:
                batch = batch.filter(mask)
            if batch.num_rows:
                yield batch

    def count(self) -> int:
        """Rows in the window (reads the timestamp column only)."""
        return sum(len(df) for df in self.chunks([self.ts_col]))

    def read(self, columns: Sequence[str]) -> pd.DataFrame:
        """The window's ``columns`` as one frame: for narrow reads (labels, user ids)."""
        parts = list(self.chunks(columns))
        return (pd.concat(parts, ignore_index=True) if parts
                else pd.DataFrame(columns=list(dict.fromkeys([*columns, self.ts_col]))))

    def sample(self, columns: Sequence[str], max_rows: int, seed: int) -> pd.DataFrame:
        """A seeded Bernoulli sample of about ``max_rows`` window rows (all when fewer).

        Normalisation statistics come from this sample: exact for small sets, within sampling
        error for large ones, and never a full load.
        """
        total = pq.ParquetFile(self.path).metadata.num_rows
        rate = min(1.0, max_rows / max(total, 1))
        rng = np.random.default_rng(seed)
        parts = [df if rate >= 1.0 else df[rng.random(len(df)) < rate]
                 for df in self.chunks(columns)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def label_arrays(df: pd.DataFrame, labels: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Per task, the 0/1 label column as float32.

    Raises:
        ValueError: naming a label column with a missing or non-0/1 value (a silent NaN label
            would poison the loss).
    """
    out = {}
    for task, column in labels.items():
        values = df[column].to_numpy()
        bad = ~np.isin(values, (0, 1))
        if bad.any():
            raise ValueError(f"label column {column!r} (task {task!r}) has {int(bad.sum())} "
                             f"values that are not 0/1, e.g. {values[bad][:3].tolist()}")
        out[task] = values.astype(np.float32)
    return out


_LABEL = "\x00label:"
BLOCK_BATCHES = 8
"""Batches per element that crosses from Python into ``tf.data`` (:func:`make_stream`): each
crossing converts every input array under the GIL, so fewer, larger ones leave more of the
CPU to the train step; ``Dataset.rebatch`` then cuts them to the batch size."""
READ_AHEAD_BLOCKS = 3
"""Blocks the generator may produce ahead of the train step (memory: that many blocks)."""


def cache_layout(specs: Sequence[InputSpec], labels: Mapping[str, str]) -> dict[str, Any]:
    """What a cached row holds (:class:`training.stream_cache.StreamCache` keys on it)."""
    return {"inputs": [[s.name, s.dtype, s.kind, s.max_len, repr(s.default)] for s in specs],
            "labels": sorted(labels.items())}


def _decoded(source: ParquetSource, specs: Sequence[InputSpec],
             labels: Mapping[str, str]) -> Iterator[Batch]:
    """The window's rows as flat arrays: the model inputs, and each task's label."""
    columns = list(dict.fromkeys([*(s.name for s in specs), *labels.values()]))
    label_columns = list(dict.fromkeys(labels.values()))
    for batch in source.record_batches(columns):
        flat = arrow_feature_dict(batch, list(specs))
        frame = batch.select(label_columns).to_pandas()
        flat.update({_LABEL + t: v for t, v in label_arrays(frame, labels).items()})
        yield flat


def fill_cache(source: ParquetSource, specs: Sequence[InputSpec], labels: Mapping[str, str],
               cache: StreamCache) -> int:
    """Decode the window into ``cache`` ahead of training (nothing to do when it is there).

    Training fills its windows before the first step, so no epoch decodes Parquet while the
    model steps: the decode runs once, alone, at file-read speed on every core.

    Returns:
        Rows in the window's entry.
    """
    layout = cache_layout(specs, labels)
    cached = cache.open(source, layout)
    if cached is not None:
        return len(next(iter(cached.values()))) if cached else 0
    writer = cache.writer(source, layout)
    try:
        for flat in _decoded(source, specs, labels):
            writer.append(flat)
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return writer.rows


def iter_batches(source: ParquetSource, specs: Sequence[InputSpec], labels: Mapping[str, str],
                 batch_size: int, shuffle_buffer: int, seed: int | Sequence[int],
                 cache: StreamCache | None = None) -> Iterator[tuple[Batch, Batch]]:
    """``(features, labels)`` numpy batches of the window (one pass, seeded shuffle).

    With a ``cache``, a pass whose window is cached reads the cache
    (:func:`training.stream_cache.cached_batches`); any other pass reads the Parquet file
    and writes the window's entry as it goes, published once the whole window was read.
    """
    rng = np.random.default_rng(seed)

    def split(batch: Batch) -> tuple[Batch, Batch]:
        return ({k: v for k, v in batch.items() if not k.startswith(_LABEL)},
                {k[len(_LABEL):]: v for k, v in batch.items() if k.startswith(_LABEL)})

    layout = cache_layout(specs, labels)
    cached = cache.open(source, layout) if cache is not None else None
    if cached is not None:
        yield from map(split, cached_batches(cached, batch_size, shuffle_buffer, rng))
        return
    buffer = ShuffleBuffer(shuffle_buffer, batch_size, rng)
    writer = cache.writer(source, layout) if cache is not None else None
    try:
        for flat in _decoded(source, specs, labels):
            if writer is not None:
                writer.append(flat)
            yield from map(split, buffer.push(flat))
        if writer is not None:  # the whole window was read: publish it
            writer.commit()
            writer = None
        yield from map(split, buffer.flush())
    finally:
        if writer is not None:  # the pass stopped early (or failed): nothing half-written stays
            writer.abort()


def signature(specs: Sequence[InputSpec], tasks: Sequence[str]) -> tuple[dict, dict]:
    """``tf.data`` element signature: features by input name, float32 labels by task."""
    from shoprec.tf_runtime import tensorflow

    tf = tensorflow()
    feats = {s.name: tf.TensorSpec([None, s.max_len] if s.kind == "sequence" else [None],
                                   tf_dtype(s.dtype), name=s.name) for s in specs}
    return feats, {t: tf.TensorSpec([None], tf.float32, name=t) for t in tasks}


def make_stream(source: ParquetSource, specs: Sequence[InputSpec], labels: Mapping[str, str],
                batch_size: int, *, shuffle_buffer: int = 0, seed: int = 0,
                repeat: bool = False, cache: StreamCache | None = None) -> Any:
    """Batched, prefetched ``tf.data.Dataset`` of ``(features, labels)`` from ``source``.

    Every iteration (every Keras epoch) re-reads the file; epoch ``e`` shuffles with seed
    ``(seed, e)``, so epochs differ from each other but a run is reproducible.

    Args:
        source: The Parquet window to read.
        specs: Model inputs (their names are the feature keys; contract dtypes).
        labels: Task → label column (:func:`task_label_columns`).
        batch_size: Rows per batch (the last one may be short).
        shuffle_buffer: Rows mixed by :class:`ShuffleBuffer`; 0 keeps file order.
        seed: Shuffle seed.
        repeat: Pass after pass without end (fit with ``steps_per_epoch`` =
            :func:`batches_per_pass`): the next pass starts reading while the last batches of
            the current one train, instead of stalling the first step of every epoch.
        cache: Where the first pass leaves the decoded window for the passes after it
            (:mod:`training.stream_cache`); None decodes the Parquet file on every pass.
    """
    from shoprec.tf_runtime import tensorflow

    tf = tensorflow()
    epochs = itertools.count()

    def generate() -> Iterator[tuple[Batch, Batch]]:  # blocks of whole batches, cut below
        yield from iter_batches(source, specs, labels, batch_size * BLOCK_BATCHES,
                                shuffle_buffer, seed=[seed, next(epochs)], cache=cache)

    ds = tf.data.Dataset.from_generator(generate, output_signature=signature(specs, labels))
    # the generator runs ahead by whole blocks (a file read or a shuffle-pool cut stalls it
    # for longer than one batch), then blocks are cut in C++, off the GIL: only the last
    # batch is short
    ds = ds.prefetch(READ_AHEAD_BLOCKS).rebatch(batch_size)
    if repeat:  # after rebatch: a pass's short last batch is never filled from the next pass
        ds = ds.repeat()
    options = tf.data.Options()
    # One worker: a distribution strategy splits each batch across replicas, no file sharding.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # Fixed buffers instead of autotuning: the pipeline has no parallel map to tune, and the
    # autotuner's thread held every fit() ~1.2 s after its last step (measured: fit returned
    # at 5.11 s after 3.9 s of steps, on both streamed and in-memory epochs)
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(BLOCK_BATCHES)


def batches_per_pass(rows: int, batch_size: int) -> int:
    """Batches of one pass over ``rows`` rows (the last one short): a repeated stream's epoch."""
    return max(1, -(-rows // batch_size))
