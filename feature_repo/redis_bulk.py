"""Redis bulk writes: Feast's entity hashes as one pre-encoded RESP stream per chunk.

Feast's Redis store keeps one hash per entity at ``serialized EntityKey + project`` with the
field ``_ts:<view>`` (a serialized protobuf ``Timestamp``) and one field per feature named by
the 4-byte murmur3 hash of ``<view>:<feature>``, holding the serialized ``ValueProto``. Here
every ``HSET`` of a chunk is encoded at once with numpy (RESP: ``*<n>`` then ``$<len>`` +
bytes per argument) and sent down one connection of the client Feast itself reads with; the
replies are then read and any error reply raised. A redis-py pipeline would build and parse
each command in Python, which cost more than the encoding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from feature_repo.value_encoding import (
    Segment,
    concat,
    constant,
    from_arrow,
    from_bytes,
    take,
)

CHUNK = 50_000
"""Entities per round trip: bounds client memory while keeping the socket busy."""


def _bulk_string(segment: Segment) -> list[Segment]:
    r"""RESP bulk strings ``$<len>\r\n<bytes>\r\n`` of every row of ``segment``."""
    lengths = np.diff(segment[1])
    uniq, inverse = np.unique(lengths, return_inverse=True)
    prefix = take(from_bytes([b"$%d\r\n" % n for n in uniq]), inverse.ravel())
    return [prefix, segment, constant(b"\r\n", np.ones(len(lengths), bool))]


def _same(value: bytes, n: int) -> list[Segment]:
    """One RESP bulk string repeated on ``n`` rows."""
    return [constant(b"$%d\r\n%s\r\n" % (len(value), value), np.ones(n, bool))]


def hset_stream(keys: pa.Array, ts_field: bytes, stamps: Segment,
                fields: list[tuple[bytes, pa.Array]]) -> bytes:
    """The RESP bytes of ``HSET key ts_field stamp field value ...`` for every row.

    Args:
        keys: Full Redis keys (``large_binary``).
        ts_field: Name of the timestamp field.
        stamps: Serialized timestamp per row.
        fields: Hash field name and serialized values (``large_binary``) per feature.
    """
    n = len(keys)
    parts = [constant(b"*%d\r\n" % (4 + 2 * len(fields)), np.ones(n, bool)),
             *_same(b"HSET", n), *_bulk_string(from_arrow(keys)), *_same(ts_field, n),
             *_bulk_string(stamps)]
    for name, values in fields:
        parts += [*_same(name, n), *_bulk_string(from_arrow(values))]
    flat, _ = concat(parts)
    return flat.tobytes()


def send(client: Any, stream: bytes, commands: int) -> None:
    """Send a pre-encoded command stream on one pooled connection and check every reply.

    Raises:
        redis.ResponseError: the first error reply (for example a key of another type).
    """
    import redis

    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([stream])
        for _ in range(commands):
            reply = conn.read_response()
            if isinstance(reply, redis.ResponseError):
                raise reply
    except BaseException:
        conn.disconnect()  # replies may be left unread: never reuse this connection
        raise
    finally:
        pool.release(conn)


def write_hashes(client: Any, project: bytes, keys: pa.Array, ts_field: bytes,
                 ts_codes: np.ndarray, ts_values: list[bytes],
                 fields: list[tuple[bytes, pa.Array]]) -> int:
    """HSET every row, ``CHUNK`` entities per round trip; returns the rows written."""
    ts_table = from_bytes(ts_values)
    n = len(keys)
    for lo in range(0, n, CHUNK):
        size = min(CHUNK, n - lo)
        full_keys = concat([from_arrow(keys.slice(lo, size)),
                            constant(project, np.ones(size, bool))])
        key_array = pa.Array.from_buffers(pa.large_binary(), size, [
            None, pa.py_buffer(full_keys[1]), pa.py_buffer(full_keys[0])])
        stream = hset_stream(key_array, ts_field, take(ts_table, ts_codes[lo:lo + size]),
                             [(name, values.slice(lo, size)) for name, values in fields])
        send(client, stream, size)
    return n
