"""Whole-column encoders against Feast's own per-value serialization, value by value."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from feature_repo import value_encoding as ve


def feast_bytes(col: pa.Array, value_type: str) -> list[bytes]:
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    return [v.SerializeToString() for v in python_values_to_proto_values(
        col.to_numpy(zero_copy_only=False), getattr(ValueType, value_type))]


RNG = np.random.default_rng(3)
COLUMNS = {
    # every varint length (1..10 bytes), negatives, the int64 extremes (no nulls: Feast turns
    # an int column with nulls into floats, which cannot hold them)
    "extremes": (pa.array([0, 1, 127, 128, 16383, 16384, 2**35, -1, -(2**40), 2**63 - 1,
                           -(2**63)], pa.int64()), "INT64"),
    "ints_nulls": (pa.array([*RNG.integers(-(2**52), 2**52, 300).tolist(), None, 5, None],
                            pa.int64()), "INT64"),
    "ints_as_float": (pa.array([1.0, float("nan"), -7.0, None]), "INT64"),
    "doubles": (pa.array([*RNG.normal(size=300).tolist(), None, float("nan"), 0.0, -0.0,
                          1e300, float("inf"), -float("inf"), 5e-324]), "DOUBLE"),
    "strings": (pa.array(["a", None, "", "é" * 100, "1 5 9", "x" * 200, "y" * 20_000,
                          "[3, 1, 4]", *map(str, range(300))]), "STRING"),
}


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_values_are_feasts_bytes(name):
    col, value_type = COLUMNS[name]
    assert ve.encode_values(col, value_type, name).to_pylist() == feast_bytes(col, value_type)


def test_a_sliced_chunked_column_encodes_its_own_rows():
    col, _ = COLUMNS["strings"]
    chunked = pa.chunked_array([col.slice(0, 5), col.slice(5, 20)]).slice(2, 10)
    want = feast_bytes(chunked.combine_chunks(), "STRING")
    assert ve.encode_values(chunked, "STRING", "s").to_pylist() == want


def test_entity_keys_are_feasts():
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    ints = pa.array([0, -1, 2**62, *RNG.integers(-(2**62), 2**62, 200).tolist()])
    strs = pa.array(["u1", "", "ünï"])
    for col, vt, field in ((ints, "INT64", "int64_val"), (strs, "STRING", "string_val")):
        want = [serialize_entity_key(EntityKey(join_keys=["k"], entity_values=[
            Value(**{field: v})]), entity_key_serialization_version=3) for v in col.to_pylist()]
        assert ve.entity_keys(col, "k", vt, 3).to_pylist() == want


def test_value_text_is_what_feasts_sqlite_store_writes():
    assert ve.value_text(pa.array([1, None, -3]), "INT64") == ["1", None, "-3"]
    assert ve.value_text(pa.array([0.1, None, float("nan"), 2.0]), "DOUBLE") == [
        "0.1", None, None, "2.0"]
    assert ve.value_text(pa.array(["a", None]), "STRING") == ["a", None]


def test_bad_columns_are_named():
    with pytest.raises(ValueError, match="'price' is declared Int64 but holds fractions"):
        ve.encode_values(pa.array([1.5]), "INT64", "price")
    with pytest.raises(ve.Unsupported, match="'flag' has value type BOOL"):
        ve.encode_values(pa.array([True]), "BOOL", "flag")
    with pytest.raises(ve.Unsupported, match="'name': Float64 from Arrow string"):
        ve.encode_values(pa.array(["x"]), "DOUBLE", "name")
    with pytest.raises(ValueError, match="join key 'user_id' has 1 null values"):
        ve.entity_keys(pa.array([1, None]), "user_id", "INT64", 3)


def test_check_against_feast_catches_a_wrong_encoding():
    col = pa.array([1, 2, 3])
    with pytest.raises(RuntimeError, match="INT64 encoding differs"):
        ve.check_against_feast(col, ve.encode_values(pa.array([1, 2, 4]), "INT64", "f"),
                               "INT64")
