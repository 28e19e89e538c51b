"""shoprec.sequences: the one storage encoding and padding rule of training and serving."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from shoprec.contract import CONTRACT
from shoprec.sequences import encode_lists, encode_sequences, pad_sequences

IDS = dataclasses.replace(CONTRACT.feature("u_hist_item_ids"), max_len=4)  # pad -1
GAPS = dataclasses.replace(CONTRACT.feature("u_hist_gap_hours"), max_len=3)  # pad 0.0


def test_newest_last_left_padded_and_truncated_to_the_newest() -> None:
    got = pad_sequences(pd.Series([[1, 2, 3, 4, 5, 6], None, np.array([7]), [], np.nan, [8, 9]]),
                        IDS)
    assert got.dtype == np.int64 and got.tolist() == [
        [3, 4, 5, 6], [-1, -1, -1, -1], [-1, -1, -1, 7], [-1, -1, -1, -1], [-1, -1, -1, -1],
        [-1, -1, 8, 9]]
    gaps = pad_sequences([[1.5, 2.0], None, (0.5, 1, 2, 3)], GAPS)
    assert gaps.dtype == np.float64 and gaps.tolist() == [[0.0, 1.5, 2.0], [0.0, 0.0, 0.0],
                                                          [1.0, 2.0, 3.0]]


def test_padding_twice_changes_nothing_and_2d_passes_through() -> None:
    once = pad_sequences([[1, 2], [3, 4, 5, 6, 7]], IDS)
    assert pad_sequences(pd.Series(list(once)), IDS).tolist() == once.tolist()
    assert pad_sequences(once, IDS) is once
    with pytest.raises(ValueError, match="width 4, max_len is 3"):
        pad_sequences(once, dataclasses.replace(IDS, max_len=3))


def test_bare_pad_element_means_no_history() -> None:
    """Generic code that fills a missing row with the contract default leaves the pad element."""
    assert pad_sequences([-1, [5]], IDS).tolist() == [[-1] * 4, [-1, -1, -1, 5]]
    assert pad_sequences(pd.Series([None, None]), GAPS).tolist() == [[0.0] * 3] * 2
    assert pad_sequences([], IDS).shape == (0, 4)


@pytest.mark.parametrize(("values", "message"), [
    ([[1, None]], "1 null element"),
    ([3], "row 0 holds 3, not a list"),
    ([[1.5]], "not int64.*truncated"),  # a fractional id must not silently become id 1
    ([["a"]], "not int64"),
    (["abc"], "elements are not int64.*'abc'"),
    (["1 2.5"], "elements are not int64.*'2.5'"),
    ([{"a": 1}], "row 0 holds"),
])
def test_bad_cells_are_named(values, message) -> None:
    with pytest.raises(ValueError, match=f"'u_hist_item_ids'.*{message}"):
        pad_sequences(values, IDS)


def test_nan_gap_is_rejected() -> None:
    with pytest.raises(ValueError, match="'u_hist_gap_hours': 1 null element"):
        pad_sequences([[1.0, float("nan")]], GAPS)


def test_encoding_by_hand_and_exact_round_trip() -> None:
    """The stored form is the elements joined by one space; "" is the empty history."""
    assert encode_lists([[17, 4, 96], [], [-3]]) == ["17 4 96", "", "-3"]
    assert pad_sequences(pd.Series(["17 4 96", "", None, "1 2 3 4 5 6"]), IDS).tolist() == [
        [-1, 17, 4, 96], [-1] * 4, [-1] * 4, [3, 4, 5, 6]]
    gaps = np.array([0.1, 1 / 3, 2.0, 1e-7, 12345.678901234])
    stored = encode_sequences(gaps, np.array([2, 0, 3]))
    assert list(stored) == ["0.1 0.3333333333333333", "", "2 1e-7 12345.678901234"]
    # shortest exact decimal: decoding gives back the identical float64s
    wide = dataclasses.replace(GAPS, max_len=3)
    assert pad_sequences(pd.Series(stored), wide).tolist() == [
        [0.0, 0.1, 1 / 3], [0.0] * 3, [2.0, 1e-7, 12345.678901234]]


def test_encoding_rejects_what_it_could_not_store() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        encode_sequences(np.array([1.0, np.inf]), np.array([2]))
    with pytest.raises(ValueError, match="add up to 1, but there are 2 elements"):
        encode_sequences(np.array([1, 2]), np.array([1]))


def test_rows_padded_before_come_back_unchanged_and_unsafe_ones_are_still_checked():
    feat = dataclasses.replace(IDS, max_len=3)
    rows = pd.Series([np.array([-1, 4, 5]), np.array([1, 2, 3])], dtype=object)
    got = pad_sequences(rows, feat)
    assert got.dtype == np.int64 and got.tolist() == [[-1, 4, 5], [1, 2, 3]]
    floats = pd.Series([np.array([1.5, 2.0, 3.0])], dtype=object)  # not int64: the checked path
    with pytest.raises(ValueError, match="u_hist_item_ids"):
        pad_sequences(floats, feat)


def test_a_few_stored_strings_decode_like_the_general_path():
    few = pd.Series(["3 4 5 6 7", "", None, "9"], dtype=object)
    many = pd.Series(["3 4 5 6 7", "", None, "9"] * 5, dtype=object)  # 20 rows: Arrow path
    got = pad_sequences(few, IDS)
    assert got.tolist() == [[4, 5, 6, 7], [-1, -1, -1, -1], [-1, -1, -1, -1], [-1, -1, -1, 9]]
    np.testing.assert_array_equal(pad_sequences(many, IDS)[:4], got)
    gaps = pad_sequences(pd.Series(["0.5 2"], dtype=object), GAPS)
    assert gaps.dtype == np.float64 and gaps.tolist() == [[0.0, 0.5, 2.0]]
    with pytest.raises(ValueError, match="u_hist_item_ids"):  # 1.5 is no id, on either path
        pad_sequences(pd.Series(["1 1.5"], dtype=object), IDS)


def test_arrow_columns_pad_like_the_pandas_path_sliced_chunked_or_stored() -> None:
    import pyarrow as pa

    from shoprec.sequences import pad_arrow

    rows = [[1, 2, 3, 4, 5, 6], None, [7], [], [8, 9], [10, 11, 12]]
    lists = pa.array(rows, type=pa.list_(pa.int64()))
    expected = [[3, 4, 5, 6], [-1, -1, -1, -1], [-1, -1, -1, 7], [-1, -1, -1, -1],
                [-1, -1, 8, 9], [-1, 10, 11, 12]]
    got = pad_arrow(lists, IDS)
    assert got.dtype == np.int64 and got.tolist() == expected
    assert pad_arrow(lists.slice(2, 3), IDS).tolist() == expected[2:5]  # a slice's offsets
    chunked = pa.chunked_array([lists.slice(0, 2), lists.slice(2)])
    assert pad_arrow(chunked, IDS).tolist() == expected
    stored = pa.array(["1 2 3 4 5 6", None, "7", "", "8 9", "10 11 12"])
    assert pad_arrow(stored, IDS).tolist() == expected
    fixed = pa.array([[1, 2, 3, 4], [-1, -1, 5, 6]], type=pa.list_(pa.int64(), 4))
    assert pad_arrow(fixed, IDS).tolist() == [[1, 2, 3, 4], [-1, -1, 5, 6]]
    gaps = pa.array([[1.5, 2.0], [0.5, 1.0, 2.0, 3.0]])
    assert pad_arrow(gaps, GAPS).tolist() == [[0.0, 1.5, 2.0], [1.0, 2.0, 3.0]]
    with pytest.raises(ValueError, match="u_hist_item_ids"):  # 1.5 is no id
        pad_arrow(pa.array([[1.0, 1.5]]), IDS)
    with pytest.raises(ValueError, match="u_hist_item_ids.* 1 null element"):
        pad_arrow(pa.array([[1, None]], type=pa.list_(pa.int64())), IDS)
    with pytest.raises(ValueError, match="u_hist_item_ids"):  # a scalar column is no sequence
        pad_arrow(pa.array([3, 4]), IDS)
