"""Whole-column encoders for Feast's online wire formats (ValueProto, EntityKey, Timestamp).

Feast's own materialization builds one protobuf object per feature value in Python (a
million entities with a dozen features is ~10 million objects), which is why loading 1M rows
took minutes. The bytes of those messages are simple: a tag byte, then a varint, 8 IEEE bytes
or a length-prefixed UTF-8 string. Here they are produced for a whole Arrow column at once
with numpy, as an Arrow ``large_binary`` array whose values are byte-for-byte what
``ValueProto.SerializeToString()`` returns for the value Feast would have built.

:func:`check_against_feast` re-encodes a few rows with Feast's own functions and raises if the
bytes differ, so a Feast upgrade that changes a format stops the bulk path loudly instead of
writing rows Feast can no longer read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SUPPORTED = ("INT64", "DOUBLE", "STRING")
"""Feast ``ValueType`` names the encoders know; other types take Feast's own path."""

_TAGS = {"INT64": 0x20, "DOUBLE": 0x29, "STRING": 0x12}
"""First byte of the serialized ValueProto: field number << 3 | wire type (int64_val = 4,
varint; double_val = 5, 64-bit; string_val = 2, length-delimited)."""


class Unsupported(TypeError):
    """Something the bulk path cannot write exactly as Feast would (the caller falls back)."""


Segment = tuple[np.ndarray, np.ndarray]
"""``(flat uint8 bytes, int64 offsets of length n + 1)``: one byte string per row."""


def _from_matrix(mat: np.ndarray, lengths: np.ndarray) -> Segment:
    """Rows of a ``[n, w]`` byte matrix, each cut to its first ``lengths[i]`` bytes."""
    mask = np.arange(mat.shape[1]) < lengths[:, None]
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return mat[mask], offsets


def varint(values: np.ndarray, valid: np.ndarray) -> Segment:
    """Protobuf base-128 varints of ``values`` (two's complement for negatives, 10 bytes).

    Rows where ``valid`` is false get no bytes at all.
    """
    u = values.astype(np.int64, copy=False).view(np.uint64)
    mat = np.empty((len(u), 10), np.uint8)
    lengths = np.ones(len(u), np.int64)
    for k in range(10):
        mat[:, k] = ((u >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        if k:
            lengths += u >= (np.uint64(1) << np.uint64(7 * k))
    more = np.arange(10) < (lengths - 1)[:, None]
    mat[more] |= 0x80
    return _from_matrix(mat, np.where(valid, lengths, 0))


def constant(value: bytes, valid: np.ndarray) -> Segment:
    """``value`` on every valid row, nothing on the others."""
    mat = np.broadcast_to(np.frombuffer(value, np.uint8), (len(valid), len(value)))
    return _from_matrix(np.ascontiguousarray(mat), np.where(valid, len(value), 0))


def concat(segments: Sequence[Segment]) -> Segment:
    """Row-wise concatenation: row ``i`` of the result is row ``i`` of each segment in turn."""
    n = len(segments[0][1]) - 1
    lengths = np.zeros(n, np.int64)
    for _, off in segments:
        lengths += np.diff(off)
    out_off = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=out_off[1:])
    out = np.empty(int(out_off[-1]), np.uint8)
    cursor = out_off[:-1].copy()
    for flat, off in segments:
        seg_len = np.diff(off)
        dest = np.repeat(cursor - off[:-1], seg_len) + np.arange(len(flat), dtype=np.int64)
        out[dest] = flat
        cursor += seg_len
    return out, out_off


def to_arrow(segment: Segment) -> pa.Array:
    """The segment as an Arrow ``large_binary`` array (``to_pylist`` gives ``bytes``)."""
    flat, off = segment
    return pa.Array.from_buffers(pa.large_binary(), len(off) - 1,
                                 [None, pa.py_buffer(off), pa.py_buffer(flat)])


def _valid(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)


def _int_values(col: pa.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    """int64 values and validity; floats (ints with NaN) must hold whole numbers."""
    if pa.types.is_integer(col.type):
        valid = _valid(col)
        return pc.fill_null(col, 0).to_numpy().astype(np.int64, copy=False), valid
    if pa.types.is_floating(col.type):
        raw = pc.fill_null(col, np.nan).to_numpy().astype(np.float64)
        valid = ~np.isnan(raw)
        if np.any(raw[valid] != np.trunc(raw[valid])):
            raise ValueError(f"feature {name!r} is declared Int64 but holds fractions")
        return np.where(valid, raw, 0).astype(np.int64), valid
    raise Unsupported(f"feature {name!r}: Int64 from Arrow {col.type}")


def encode_values(col: pa.ChunkedArray | pa.Array, value_type: str, name: str) -> pa.Array:
    """Serialized ``ValueProto`` per row of ``col``, as Feast's materialization writes them.

    Nulls (and NaN in Float64 columns, which Feast also stores as unset) become empty bytes:
    an unset ValueProto, read back as a missing value.

    Raises:
        Unsupported: for value types or Arrow types the encoders do not cover.
        ValueError: if an Int64 feature holds fractional numbers.
    """
    if value_type not in SUPPORTED:
        raise Unsupported(f"feature {name!r} has value type {value_type}")
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if value_type == "INT64":
        values, valid = _int_values(col, name)
        return to_arrow(concat([constant(bytes([_TAGS["INT64"]]), valid),
                                varint(values, valid)]))
    if value_type == "DOUBLE":
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            raise Unsupported(f"feature {name!r}: Float64 from Arrow {col.type}")
        raw = pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy()
        valid = ~np.isnan(raw)
        mat = np.empty((len(raw), 9), np.uint8)
        mat[:, 0] = _TAGS["DOUBLE"]
        mat[:, 1:] = np.ascontiguousarray(raw, dtype="<f8").view(np.uint8).reshape(-1, 8)
        return to_arrow(_from_matrix(mat, np.where(valid, 9, 0)))
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise Unsupported(f"feature {name!r}: String from Arrow {col.type}")
    valid = _valid(col)
    text = pc.if_else(pa.array(valid), col, "").cast(pa.large_string())
    _, off_buf, data_buf = text.buffers()
    offsets = np.frombuffer(off_buf, np.int64)[text.offset:text.offset + len(text) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    data = data[offsets[0]:offsets[-1]]
    return to_arrow(concat([constant(bytes([_TAGS["STRING"]]), valid),
                            varint(np.diff(offsets), valid), (data, offsets - offsets[0])]))


def value_text(col: pa.ChunkedArray | pa.Array, value_type: str) -> list[str | None]:
    """The sqlite store's ``value_text`` column: ``str()`` of the value, ``None`` for nulls."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if value_type == "STRING":
        return col.to_pylist()
    if value_type == "INT64":
        return [None if v is None or v != v else str(int(v)) for v in col.to_pylist()]
    return [None if v is None or v != v else str(float(v)) for v in col.to_pylist()]


def entity_keys(values: pa.ChunkedArray | pa.Array, join_key: str, value_type: str,
                version: int) -> pa.Array:
    """Feast's ``serialize_entity_key`` of a single-join-key entity, for every row.

    For int64 keys the serialized key is a constant header (key count, the join key name,
    the value type and length) followed by the 8 little-endian bytes of the value, so the
    header is taken from Feast itself and the values appended with numpy. Other key types
    are serialized by Feast row by row.
    """
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    col = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if col.null_count:
        raise ValueError(f"join key {join_key!r} has {col.null_count} null values")
    if value_type != "INT64":
        field = {"STRING": "string_val"}.get(value_type)
        if field is None:
            raise Unsupported(f"join key {join_key!r} has value type {value_type}")
        return pa.array([serialize_entity_key(
            EntityKey(join_keys=[join_key], entity_values=[Value(**{field: v})]),
            entity_key_serialization_version=version) for v in col.to_pylist()],
            pa.large_binary())
    ints = col.cast(pa.int64()).to_numpy()
    head = serialize_entity_key(EntityKey(join_keys=[join_key], entity_values=[
        Value(int64_val=0)]), entity_key_serialization_version=version)[:-8]
    everywhere = np.ones(len(ints), bool)
    mat = np.ascontiguousarray(ints, dtype="<i8").view(np.uint8).reshape(-1, 8)
    return to_arrow(concat([constant(head, everywhere),
                            _from_matrix(mat, np.full(len(ints), 8, np.int64))]))


def check_against_feast(col: pa.Array, encoded: pa.Array, value_type: str,
                        rows: int = 3) -> None:
    """Compare the first ``rows`` encodings with Feast's own conversion of those values.

    Raises:
        RuntimeError: naming the value type, if the installed Feast writes other bytes.
    """
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    head = col.slice(0, rows)
    want = [v.SerializeToString() for v in python_values_to_proto_values(
        head.to_numpy(zero_copy_only=False), getattr(ValueType, value_type))]
    got = encoded.slice(0, rows).to_pylist()
    if want != got:
        raise RuntimeError(f"bulk {value_type} encoding differs from Feast's: {got} != {want}")


def timestamp_map(stamps: Any, encode: Any) -> tuple[np.ndarray, list[Any]]:
    """Apply ``encode`` once per distinct timestamp; returns (row -> index, encoded values).

    Snapshot rows share a handful of timestamps (one per day), so Feast's per-row timestamp
    conversions cost nothing when done per distinct value with Feast's own functions.
    """
    import pandas as pd

    series = pd.Series(pd.to_datetime(stamps, utc=True))
    codes, uniques = pd.factorize(series)
    return codes, [encode(ts.to_pydatetime()) for ts in uniques]


def from_bytes(items: Sequence[bytes]) -> Segment:
    """A segment holding ``items`` (a small lookup table, built in Python)."""
    lengths = np.array([len(b) for b in items], np.int64)
    offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.frombuffer(b"".join(items), np.uint8).copy(), offsets


def take(segment: Segment, index: np.ndarray) -> Segment:
    """Rows ``index`` of ``segment``, in that order (a gather of variable-length rows)."""
    flat, off = segment
    lengths = np.diff(off)[index]
    out_off = np.zeros(len(index) + 1, np.int64)
    np.cumsum(lengths, out=out_off[1:])
    src = np.repeat(off[:-1][index] - out_off[:-1], lengths) + np.arange(out_off[-1])
    return flat[src], out_off


def from_arrow(array: pa.Array) -> Segment:
    """The bytes of a ``large_binary`` array as a segment (no copy of the values)."""
    _, off_buf, data_buf = array.buffers()
    off = np.frombuffer(off_buf, np.int64)[array.offset:array.offset + len(array) + 1]
    flat = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    return flat[off[0]:off[-1]], off - off[0]
