"""Streaming ranker input: time windows, bounded reads, the shuffle buffer, tf.data elements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprec.contract import CONTRACT
from tests.model.test_ranker_train import LABELS, pick_specs, ranker_frame
from training.ranker_data import (
    ParquetSource,
    ShuffleBuffer,
    iter_batches,
    task_label_columns,
)
from training.runs import split_by_time, time_cutoff


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    df = ranker_frame(pick_specs(), n_users=40, per_user=10)
    df["row"] = np.arange(len(df))
    path = tmp_path_factory.mktemp("data") / "ranker.parquet"
    df.to_parquet(path, row_group_size=150)
    return path, df


def test_windows_split_exactly_like_the_pipeline_and_reads_are_bounded(data) -> None:
    path, df = data
    cutoff = time_cutoff([df["event_ts"]])
    train, held = split_by_time(df, cutoff)
    early = ParquetSource(path, end=cutoff, read_rows=64)
    late = ParquetSource(path, start=cutoff, read_rows=64)
    chunks = list(early.chunks(["row"]))
    assert max(len(c) for c in chunks) <= 64
    assert pd.concat(chunks)["row"].tolist() == train["row"].tolist()
    assert late.read(["row"])["row"].tolist() == held["row"].tolist()
    assert (early.count(), late.count()) == (len(train), len(held))
    sample = ParquetSource(path, keep=0.5, seed=3).read(["row"])["row"]
    assert 150 < len(sample) < 250  # 400 rows, each kept with probability 1/2
    assert sample.tolist() == ParquetSource(path, keep=0.5, seed=3).read(["row"])["row"].tolist()
    with pytest.raises(KeyError, match="lacks columns"):
        list(early.chunks(["no_such_column"]))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ParquetSource(path.with_name("missing.parquet"))


def test_shuffle_buffer_emits_every_row_once_in_full_batches() -> None:
    rows = np.arange(1000)
    buf = ShuffleBuffer(300, 64, np.random.default_rng(0))
    out = [b["x"] for i in range(0, 1000, 100) for b in buf.push({"x": rows[i:i + 100]})]
    out += [b["x"] for b in buf.flush()]
    assert [len(b) for b in out[:-1]] == [64] * (len(out) - 1) and len(out[-1]) <= 64
    seen = np.concatenate(out)
    assert sorted(seen.tolist()) == rows.tolist()
    assert not np.array_equal(seen, rows)
    # a row never leaves more than about buffer + chunk rows before its file position
    position = np.empty(1000, int)
    position[seen] = np.arange(1000)
    assert np.max(rows - position) < 300 + 100 + 64
    same = ShuffleBuffer(0, 64, np.random.default_rng(0))
    kept = [b["x"] for b in same.push({"x": rows})] + [b["x"] for b in same.flush()]
    assert np.concatenate(kept).tolist() == rows.tolist()  # buffer 0: file order


def test_batches_carry_contract_dtypes_padded_histories_and_task_labels(data) -> None:
    path, df = data
    specs = pick_specs()
    batches = list(iter_batches(ParquetSource(path, read_rows=100), specs, LABELS, 128,
                                shuffle_buffer=0, seed=0))
    feats, labels = batches[0]
    seq = next(s for s in specs if s.kind == "sequence")
    assert feats[seq.name].shape == (128, seq.max_len)
    first = df[seq.name].iloc[0]
    expected = np.r_[np.full(seq.max_len - len(first), seq.default), first]
    np.testing.assert_array_equal(feats[seq.name][0], expected)  # newest last, left-padded
    assert feats["user_id"].dtype == np.int64
    assert labels["ctr"].dtype == np.float32
    np.testing.assert_array_equal(labels["cvr"], df["label_purchase"].head(128))
    assert sum(len(b[1]["ctr"]) for b in batches) == len(df)


def test_tf_data_stream_and_label_errors(data, tmp_path: Path) -> None:
    from training.ranker_data import make_stream

    path, df = data
    specs = pick_specs()
    ds = make_stream(ParquetSource(path), specs, LABELS, 100, shuffle_buffer=200, seed=1)
    epoch1 = [b[1]["ctr"].numpy() for b in ds]
    epoch2 = [b[1]["ctr"].numpy() for b in ds]
    assert sum(map(len, epoch1)) == len(df) == sum(map(len, epoch2))
    assert not all(np.array_equal(a, b) for a, b in zip(epoch1, epoch2, strict=True))
    bad = df.assign(label=df["label"].astype(float))
    bad.loc[5, "label"] = np.nan
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="label column 'label' .* 1 values that are not 0/1"):
        list(iter_batches(ParquetSource(tmp_path / "bad.parquet"), specs, LABELS, 64, 0, 0))
    assert task_label_columns(CONTRACT, ("ctr",)) == {"ctr": CONTRACT.label}
    with pytest.raises(ValueError, match=r"tasks \['ltv'\] have no label column"):
        task_label_columns(CONTRACT, ("ctr", "ltv"))


def test_arrow_batches_give_the_pandas_path_arrays(data) -> None:
    import pyarrow as pa

    from training.preprocessing import arrow_feature_dict, to_feature_dict

    path, df = data
    specs = pick_specs()
    assert any(s.kind == "sequence" for s in specs)
    batch = next(ParquetSource(path, read_rows=150).record_batches([s.name for s in specs]))
    got, expected = arrow_feature_dict(batch, specs), to_feature_dict(batch.to_pandas(), specs)
    assert got.keys() == expected.keys()
    for name, want in expected.items():
        assert got[name].dtype == want.dtype, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)
    scalar = next(s for s in specs if s.dtype == "float64" and s.kind != "sequence")
    holes = pa.RecordBatch.from_pandas(df.head(3).assign(**{scalar.name: [1.0, None, 2.0]}))
    assert np.isnan(arrow_feature_dict(holes, specs)[scalar.name][1])  # as pandas gives it
    with pytest.raises(KeyError, match="lacks model inputs"):
        arrow_feature_dict(batch.drop_columns([specs[0].name]), specs)


def test_stream_cuts_blocks_into_full_batches_and_one_short_last(data) -> None:
    from training.ranker_data import BLOCK_BATCHES, make_stream

    path, df = data
    assert len(df) > 30 * BLOCK_BATCHES  # several blocks cross into tf.data
    ds = make_stream(ParquetSource(path), pick_specs(), LABELS, 30, shuffle_buffer=50, seed=3)
    sizes = [int(b[1]["ctr"].shape[0]) for b in ds]
    assert sizes[:-1] == [30] * (len(sizes) - 1) and sizes[-1] == len(df) - 30 * (
        len(sizes) - 1) and 0 < sizes[-1] <= 30
    rows = np.concatenate([b[0]["user_id"].numpy() for b in ds])
    assert sorted(rows.tolist()) == sorted(df["user_id"].tolist())  # every row once


def test_repeated_stream_passes_end_on_their_own_short_batch(data) -> None:
    from training.ranker_data import batches_per_pass, make_stream

    path, df = data
    steps = batches_per_pass(len(df), 30)
    assert steps == -(-len(df) // 30) and batches_per_pass(0, 30) == 1
    ds = make_stream(ParquetSource(path), pick_specs(), LABELS, 30, shuffle_buffer=50, seed=3,
                     repeat=True)
    batches = [b[0]["user_id"].numpy() for b in ds.take(2 * steps)]
    first, second = np.concatenate(batches[:steps]), np.concatenate(batches[steps:])
    assert [len(b) for b in batches[steps - 1:steps + 1]] == [len(df) - 30 * (steps - 1), 30]
    assert sorted(first.tolist()) == sorted(second.tolist()) == sorted(df["user_id"].tolist())
    assert not np.array_equal(first, second)  # every pass shuffles with its own seed
