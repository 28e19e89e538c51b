"""The online store of one installation and the record of what it holds.

``settings.online_store`` picks Feast's sqlite store (a file next to the registry, the
embedded default) or its Redis store (``settings.redis``, the scale-out store several serving
replicas share). ``materialized.json`` in ``settings.feast_dir`` records, per view, the range
already loaded, the columns it had and a digest of its last snapshot day, plus (under
``_online``) which store it describes: a record only counts for the store it was written for
and while that store still holds the data.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from shoprec.atomic import write_text_atomic
from shoprec.contract import Contract
from shoprec.settings import Settings, parse_redis

STATE_FILE = "materialized.json"
ONLINE_KEY = "_online"
"""Top-level entry of the state file naming the online store it describes (not a view)."""


FAIL_FAST = {"socket_connect_timeout": "1", "socket_timeout": "5", "retry": "null"}
"""redis-py options Feast's client gets unless the connection string sets them: redis-py 8
retries a failed command with exponential backoff by default, so a stopped server held each
online read for about 4.6 s (measured) before serving's fallback could answer. ``retry=null``
(JSON, as Feast parses option values) means no retry: the circuit breaker of
``serving.fallback.ResilientFetch`` decides when to try again."""


def feast_redis(address: str) -> str:
    """``address`` plus the :data:`FAIL_FAST` options it does not set itself."""
    _, _, extra = parse_redis(address)
    return ",".join([address, *(f"{k}={v}" for k, v in FAIL_FAST.items() if k not in extra)])


def online_store_yaml(settings: Settings) -> str:
    """The ``online_store:`` block of ``feature_store.yaml`` for ``settings.online_store``.

    Redis gets ``skip_dedup: true``: Feast's Redis store otherwise drops a write whose
    timestamp is not newer than the stored one, while the sqlite store always overwrites.
    ShopRec decides what to (re)load from ``materialized.json``, and a re-built snapshot day
    or a push of fresher values keeps the same snapshot timestamp, so both stores must simply
    keep the last write.
    """
    if settings.online_store == "redis":
        return ("online_store:\n"
                "  type: redis\n"
                f"  connection_string: {json.dumps(feast_redis(settings.redis))}\n"
                "  skip_dedup: true\n")
    return f"online_store:\n  type: sqlite\n  path: {settings.feast_dir / 'online.db'}\n"


def redis_client(settings: Settings, retries: int = 3) -> Any:
    """A redis-py client for ``settings.redis`` (the marker key and health checks)."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    host, port, extra = parse_redis(settings.redis)
    return redis.Redis(host=host, port=port, db=int(extra.get("db", 0)),
                       password=extra.get("password"), username=extra.get("username"),
                       socket_timeout=10, socket_connect_timeout=5,
                       retry=Retry(ExponentialBackoff(cap=1.0), retries))


def check_online_store(settings: Settings) -> None:
    """Fail early, naming the setting, when the configured Redis server does not answer.

    Raises:
        ConnectionError: if ``settings.online_store`` is ``redis`` and a PING fails.
    """
    if settings.online_store != "redis":
        return
    import redis

    try:
        redis_client(settings, retries=0).ping()
    except redis.RedisError as err:
        raise ConnectionError(f"online store: Redis at {settings.redis!r} (SHOPREC_REDIS) does "
                              f"not answer: {err}; start it or set "
                              "SHOPREC_ONLINE_STORE=sqlite") from err


def state_path(settings: Settings) -> Path:
    """``materialized.json`` of the installation."""
    return settings.feast_dir / STATE_FILE


def view_fingerprint(contract: Contract, view: str) -> str:
    """Changes whenever the view's online columns change (forces a full reload)."""
    return json.dumps([[f.name, f.dtype] for f in contract.view_features(view)])


def online_identity(settings: Settings) -> str:
    """Names the online store a state file describes; another store means nothing is loaded."""
    if settings.online_store == "redis":
        return f"redis:{settings.redis}"
    return f"sqlite:{settings.feast_dir / 'online.db'}"


def _marker_key(contract: Contract) -> str:
    """Redis key holding the token of the state file that describes this Redis database."""
    return f"shoprec:{contract.project}:materialized"


def read_state(settings: Settings, contract: Contract | None = None) -> dict[str, Any]:
    """What earlier runs loaded, per view: ``{"end", "fingerprint", "last_ts", "last_digest"}``.

    The record only counts while the store it describes still holds the data: the sqlite file
    must exist; Redis (often run without persistence) must still hold the marker token
    written with the record. Otherwise, or after a switch to another online store, this
    returns ``{}`` and the next materialization reloads everything.
    """
    path = state_path(settings)
    if not path.exists():
        return {}
    state = json.loads(path.read_text())
    online = state.get(ONLINE_KEY)
    if settings.online_store == "redis":
        if online is None or online.get("store") != online_identity(settings):
            return {}
        contract = contract or settings.load_contract()
        token = redis_client(settings).get(_marker_key(contract))
        return state if token is not None and token.decode() == online.get("token") else {}
    if online is not None and online.get("store") != online_identity(settings):
        return {}
    return state if (settings.feast_dir / "online.db").exists() else {}


def day_digest(path: Path, key: str, ts_col: str, ts: pd.Timestamp) -> str:
    """Content hash of one snapshot day, to notice when a re-build changed an open day.

    Hashes Arrow buffers column by column (lists as lengths + flattened values), so a day of
    a million rows with sequence features costs well under a second.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, filters=[(ts_col, "==", ts)]).sort_by(key)
    digest = hashlib.sha256()
    for name in sorted(table.column_names):
        col = table.column(name).combine_chunks()
        parts = ([pc.list_value_length(col), pc.list_flatten(col)]
                 if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) else [col])
        digest.update(name.encode())
        for part in parts:
            values = part.to_numpy(zero_copy_only=False)
            if values.dtype == object:  # strings
                values = pd.util.hash_array(values.astype(str))
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def write_state(settings: Settings, contract: Contract, state: dict[str, Any]) -> None:
    """Record ``state``; for Redis, first store the token that ties the record to the data."""
    if settings.online_store == "redis":
        online = state[ONLINE_KEY]
        online.setdefault("token", uuid.uuid4().hex)
        redis_client(settings).set(_marker_key(contract), online["token"])
    write_text_atomic(state_path(settings), json.dumps(state, indent=2, sort_keys=True))
