"""The stream cache: the first pass writes the decoded window, later passes read only that."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.model.test_ranker_train import LABELS, pick_specs, ranker_frame
from training.ranker_data import ParquetSource, cache_layout, iter_batches
from training.stream_cache import (
    BLOCK_ROWS,
    StreamCache,
    cached_batches,
    pass_order,
    scratch_cache,
)


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    df = ranker_frame(pick_specs(), n_users=40, per_user=10)
    path = tmp_path / "ranker.parquet"
    df.to_parquet(path, row_group_size=150)
    return path, df


def rows_of(batches: list[tuple[dict, dict]]) -> np.ndarray:
    """Every row of a pass as one float matrix row (features then labels, sorted by name)."""
    parts = []
    for feats, labels in batches:
        cols = [np.asarray(v, dtype=np.float64).reshape(len(v), -1)
                for _, v in sorted({**feats, **{"~" + k: v for k, v in labels.items()}}.items())]
        parts.append(np.concatenate(cols, axis=1))
    return np.concatenate(parts)


def sorted_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.lexsort(matrix.T[::-1])]


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_later_passes_read_the_cache_and_hold_exactly_the_files_rows(data, tmp_path) -> None:
    path, df = data
    specs, source = pick_specs(), ParquetSource(path, read_rows=100)
    cache = StreamCache(tmp_path / "cache")
    plain = list(iter_batches(source, specs, LABELS, 64, 0, 0))
    first = list(iter_batches(source, specs, LABELS, 64, 0, 0, cache=cache))
    assert len(entries(cache.directory)) == 1  # published once the window was read
    columns = cache.open(source, cache_layout(specs, LABELS))
    assert columns is not None and len(columns["user_id"]) == len(df)
    # file order from the cache is the Parquet pass, value for value and dtype for dtype
    again = list(iter_batches(source, specs, LABELS, 64, 0, 0, cache=cache))
    for a, b in zip(plain + first, again + again, strict=True):
        for name in a[0]:
            assert a[0][name].dtype == b[0][name].dtype
            np.testing.assert_array_equal(a[0][name], b[0][name], err_msg=name)
        np.testing.assert_array_equal(a[1]["cvr"], b[1]["cvr"])
    # a shuffled cached pass: every row once, full batches, another order per seed
    one = list(iter_batches(source, specs, LABELS, 64, 120, [5, 0], cache=cache))
    two = list(iter_batches(source, specs, LABELS, 64, 120, [5, 1], cache=cache))
    assert [len(b[1]["ctr"]) for b in one[:-1]] == [64] * (len(one) - 1)
    np.testing.assert_array_equal(sorted_rows(rows_of(one)), sorted_rows(rows_of(plain)))
    assert not np.array_equal(rows_of(one), rows_of(two))
    assert not np.array_equal(rows_of(one), rows_of(plain))
    # and those passes read the entry, not Parquet: what the entry holds is what comes out
    entry, _ = cache.entry(source, cache_layout(specs, LABELS))
    meta = json.loads((entry / "meta.json").read_text())
    (entry / meta["columns"]["user_id"]["file"]).write_bytes(
        np.full(len(df), 7, np.int64).tobytes())
    served = list(iter_batches(source, specs, LABELS, 64, 120, 1, cache=cache))
    assert all((b[0]["user_id"] == 7).all() for b in served)


def test_a_pass_stopped_early_publishes_nothing(data, tmp_path) -> None:
    path, _ = data
    specs, source = pick_specs(), ParquetSource(path, read_rows=100)
    cache = StreamCache(tmp_path / "cache")
    passing = iter_batches(source, specs, LABELS, 64, 50, 0, cache=cache)
    next(passing)
    assert len(entries(cache.directory)) == 1 and entries(cache.directory)[0].startswith(".tmp-")
    passing.close()  # what tf.data does to a generator it no longer needs
    assert entries(cache.directory) == []
    assert cache.open(source, cache_layout(specs, LABELS)) is None


def test_a_changed_file_or_other_inputs_miss_and_stale_entries_go(data, tmp_path) -> None:
    path, df = data
    specs = pick_specs()
    cache = StreamCache(tmp_path / "cache")
    layout = cache_layout(specs, LABELS)
    list(iter_batches(ParquetSource(path), specs, LABELS, 64, 0, 0, cache=cache))
    old = entries(cache.directory)
    narrower = specs[:-1]
    assert cache.open(ParquetSource(path), cache_layout(narrower, LABELS)) is None
    assert cache.open(ParquetSource(path, keep=0.5), layout) is None  # another window...
    list(iter_batches(ParquetSource(path, keep=0.5), specs, LABELS, 64, 0, 0, cache=cache))
    assert len(entries(cache.directory)) == 2  # ...its own entry, beside the first
    assert cache.open(ParquetSource(path), layout) is not None
    changed = df.assign(label=1 - df["label"])
    changed.to_parquet(path, row_group_size=150)
    os.utime(path, ns=(1, 1))  # a new modification time even on a coarse clock
    assert cache.open(ParquetSource(path), layout) is None
    fresh = list(iter_batches(ParquetSource(path), specs, LABELS, 64, 0, 0, cache=cache))
    np.testing.assert_array_equal(np.concatenate([b[1]["ctr"] for b in fresh]),
                                  changed["label"].to_numpy(np.float32))
    # both entries of the old file went when the new file's entry was published
    assert len(entries(cache.directory)) == 1 and not set(entries(cache.directory)) & set(old)


def test_a_damaged_entry_is_dropped_and_rebuilt(data, tmp_path) -> None:
    path, _ = data
    specs, source = pick_specs(), ParquetSource(path)
    cache = StreamCache(tmp_path / "cache")
    layout = cache_layout(specs, LABELS)
    list(iter_batches(source, specs, LABELS, 64, 0, 0, cache=cache))
    entry, _ = cache.entry(source, layout)
    column = next(entry.glob("*.bin"))
    column.write_bytes(column.read_bytes()[:-8])  # a truncated column file
    assert cache.open(source, layout) is None and not entry.exists()
    list(iter_batches(source, specs, LABELS, 64, 0, 0, cache=cache))
    assert cache.open(source, layout) is not None


def test_writer_refuses_columns_it_cannot_cache(data, tmp_path) -> None:
    writer = StreamCache(tmp_path / "c").writer(ParquetSource(data[0]), {"inputs": []})
    writer.append({"a": np.arange(3), "b": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="differ from the first chunk"):
        writer.append({"a": np.arange(3)})
    with pytest.raises(ValueError, match="'b' changed from"):
        writer.append({"a": np.arange(3), "b": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="'a' cannot be cached: dtype object"):
        writer.append({"a": np.array(["x", None, "y"], dtype=object), "b": np.zeros((3, 2))})
    writer.abort()
    assert entries(tmp_path / "c") == []


def test_pass_order_visits_every_row_once_in_shuffled_blocks_and_windows() -> None:
    assert pass_order(100, 0, np.random.default_rng(0)) is None  # file order
    short = pass_order(5 * BLOCK_ROWS + 17, 2 * BLOCK_ROWS, np.random.default_rng(0))
    assert sorted(short.tolist()) == list(range(5 * BLOCK_ROWS + 17))
    rows = 6 * BLOCK_ROWS
    order = pass_order(rows, 2 * BLOCK_ROWS, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(rows))
    windows = order.reshape(3, 2 * BLOCK_ROWS)
    held = [sorted(set((w // BLOCK_ROWS).tolist())) for w in windows]
    assert all(len(h) == 2 for h in held)  # a window is two whole blocks...
    assert [b for h in held for b in h] != list(range(6))  # ...drawn in random order...
    assert all(not np.array_equal(w, np.sort(w)) for w in windows)  # ...rows mixed inside
    np.testing.assert_array_equal(order, pass_order(rows, 2 * BLOCK_ROWS,
                                                    np.random.default_rng(0)))
    assert not np.array_equal(order, pass_order(rows, 2 * BLOCK_ROWS,
                                                np.random.default_rng(1)))


def test_cached_batches_cut_the_pass_into_batches() -> None:
    columns = {"x": np.arange(10), "y": np.arange(20).reshape(10, 2)}
    got = list(cached_batches(columns, 4, 0, np.random.default_rng(0)))
    assert [len(b["x"]) for b in got] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in got]), columns["y"])
    mixed = list(cached_batches(columns, 4, 8, np.random.default_rng(0)))
    x = np.concatenate([b["x"] for b in mixed])
    assert sorted(x.tolist()) == list(range(10))
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in mixed]), columns["y"][x])


def test_scratch_cache_is_removed_and_a_named_one_kept(tmp_path) -> None:
    with scratch_cache(None, tmp_path / "run") as cache:
        assert cache.directory.parent == tmp_path / "run" and cache.directory.is_dir()
        (cache.directory / "entry").mkdir()
    assert entries(tmp_path / "run") == []
    with scratch_cache(tmp_path / "kept", tmp_path / "run") as cache:
        assert cache.directory == tmp_path / "kept"
        cache.directory.mkdir()
    assert (tmp_path / "kept").is_dir()


def test_fill_cache_decodes_the_window_once_and_keeps_nothing_on_failure(data, tmp_path) -> None:
    from training.ranker_data import fill_cache

    path, df = data
    specs, source = pick_specs(), ParquetSource(path, read_rows=100)
    cache = StreamCache(tmp_path / "cache")
    assert fill_cache(source, specs, LABELS, cache) == len(df)
    entry, _ = cache.entry(source, cache_layout(specs, LABELS))
    stamp = (entry / "meta.json").stat().st_mtime_ns
    assert fill_cache(source, specs, LABELS, cache) == len(df)  # there already: not rewritten
    assert (entry / "meta.json").stat().st_mtime_ns == stamp
    # what a pass then reads is the file's rows, in file order without a shuffle
    got = list(iter_batches(source, specs, LABELS, 64, 0, 0, cache=cache))
    np.testing.assert_array_equal(np.concatenate([b[1]["cvr"] for b in got]),
                                  df["label_purchase"].to_numpy(np.float32))
    bad = df.assign(label=df["label"].astype(float))
    bad.loc[len(df) - 1, "label"] = 2.0  # in the last chunk: earlier chunks were written
    bad.to_parquet(tmp_path / "bad.parquet", row_group_size=150)
    broken = ParquetSource(tmp_path / "bad.parquet", read_rows=100)
    with pytest.raises(ValueError, match="label column 'label' .* 1 values that are not 0/1"):
        fill_cache(broken, specs, LABELS, cache)
    assert cache.open(broken, cache_layout(specs, LABELS)) is None
    assert entries(cache.directory) == [entry.name]  # no half-written entry left behind
