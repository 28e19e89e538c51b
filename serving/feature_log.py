"""The feature-vector log: what serving fed the ranker, for the training-serving skew check.

Every ranked candidate becomes one row with ``request_id``, ``ts`` (when the features were
read), the service's join keys, the request fields the service's request-time features read
(``contract.service_request_fields``; the offline recomputation needs them), a ``defaulted``
flag (the online store was down and the contract defaults were served) and every feature of
the logged FeatureService (the ``ranker`` one by default), with exactly the values the model
received for scalars: nulls filled with the contract default and cast to the contract dtype, as
:func:`serving.columns.feature_array` does. A ``sequence`` feature is logged as a list of
its element dtype, as the fetch returned it (the skew check pads both sides the way models do).

Rows are buffered in memory and written as **append-only** Parquet parts::

    $SHOPREC_HOME/logs/features/<service>/dt=YYYY-MM-DD/part-<uuid>.parquet

one part per UTC day present in the buffer, each written to a hidden temp name and renamed (a
reader never sees half a part, and no part is ever rewritten). A part is written when the
buffer holds ``max_rows`` rows, when the oldest buffered row is ``max_seconds`` old at the next
append, and on :meth:`FeatureLog.flush` / :meth:`FeatureLog.close` (the service calls
``close`` on shutdown). ``append`` itself only keeps a reference to the frame: converting it to
the contract types (:func:`log_schema`) happens at write time for all buffered requests at once
(optionally in a background thread), so the request path pays microseconds, not milliseconds.
A request whose values do not fit their features is reported by the write (``LogError`` naming
the request and the feature); the other requests are written.

:func:`read_feature_log` (from :mod:`serving.feature_log_store`, the storage layout) is the
reader ``validation.skew`` uses. Pure (pandas and pyarrow; no Feast, no BentoML); nothing is
written at import time.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from serving.feature_log_store import (
    ARROW,
    DEFAULTED_COL,
    REQUEST_ID,
    TS,
    arrow_type,
    join_keys,
    log_dir,
    log_schema,
    read_feature_log,
    request_fields,
    write_days,
)
from shoprec.contract import RANKER, Contract, Feature
from shoprec.settings import Settings

__all__ = ["DEFAULTED_COL", "REQUEST_ID", "TS", "FeatureLog", "LogError", "join_keys", "log_dir",
           "log_schema", "read_feature_log", "request_fields"]

log = logging.getLogger(__name__)

def _served(feats: pd.DataFrame, feat: Feature, contract: Contract) -> pa.Array:
    """The values the model received for one feature (defaults filled, contract dtype)."""
    if feat.kind == "sequence":
        if feat.name not in feats:
            return pa.nulls(len(feats), arrow_type(feat))
        cells = feats[feat.name].to_numpy(dtype=object)  # lists or arrays; None/NaN: null
        return pa.array(cells, type=arrow_type(feat), from_pandas=True)
    from serving.columns import feature_array  # same fill and cast as the model inputs

    return pa.array(feature_array(feats, feat.name, contract), type=arrow_type(feat))


def _request_values(feats: pd.DataFrame, name: str, dtype: str) -> pa.Array:
    """A request field as sent (null when the request did not carry it)."""
    if name not in feats:
        return pa.nulls(len(feats), ARROW[dtype])
    col = feats[name]
    if dtype == "timestamp" and not isinstance(col.dtype, pd.DatetimeTZDtype):
        col = pd.to_datetime(col, utc=True)
    return pa.array(col, type=ARROW[dtype], from_pandas=True)


class LogError(ValueError):
    """Buffered requests could not be logged (the others were written); names each problem."""


class FeatureLog:
    """Buffered, thread-safe, append-only log of served feature vectors (module docstring).

    ``append`` only checks the request's shape and keeps a reference to the frame (constant
    time on the request path); values are converted to the contract types when a part is
    written, all buffered requests at once. The caller must not modify a frame after logging
    it (serving builds a new one per request).
    """

    def __init__(self, settings: Settings, contract: Contract, service: str = RANKER,
                 max_rows: int = 20_000, max_seconds: float = 60.0, background: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """An empty buffer; nothing is written until the first flush.

        Args:
            settings: Locations (the log lives under ``settings.home``).
            contract: Gives the logged service's keys, request fields and features.
            service: The FeatureService whose reads are logged.
            max_rows: Buffered rows that trigger a write.
            max_seconds: Age of the oldest buffered row that triggers a write (at an append).
            background: Write triggered parts in a thread, so the request that triggers a
                write does not wait for it (serving); ``close`` waits for them.
            clock: Monotonic seconds (injectable for tests).
        """
        if max_rows < 1 or max_seconds <= 0:
            raise ValueError(f"max_rows must be >= 1 and max_seconds > 0, got {max_rows}, "
                             f"{max_seconds}")
        self.settings, self.contract, self.service = settings, contract, service
        self.schema = log_schema(contract, service)
        self.keys = join_keys(contract, service)
        self.request_fields = contract.service_request_fields(service)
        self.features = contract.service_features(service)
        self.max_rows, self.max_seconds, self.clock = max_rows, max_seconds, clock
        self.background = background
        self._pending: list[tuple[pd.DataFrame, datetime, str, bool]] = []
        self._rows, self._since = 0, 0.0
        self._lock = threading.Lock()
        self._writers: list[threading.Thread] = []
        self.errors = 0

    def append(self, feats: pd.DataFrame, ts: datetime, request_id: str | None = None,
               defaulted: bool | None = None) -> str:
        """Buffer the rows of one feature read; returns the request id used.

        Args:
            feats: The frame the ranker was scored on: join keys plus the service's features.
            ts: When the features were read (timezone-aware).
            request_id: The answer's id; a new random one when ``None``.
            defaulted: Whether the store answered with defaults; read from the frame's
                ``serving.fallback.DEFAULTED`` attribute when ``None``.

        Raises:
            ValueError: if ``ts`` is naive or a join key is missing.
            LogError: from a write this append triggered (``background=False`` only).
        """
        if ts.tzinfo is None:
            raise ValueError("ts must be timezone-aware (UTC)")
        missing = [k for k in self.keys if k not in feats]
        if missing:
            raise ValueError(f"feature rows lack join keys {missing}")
        if defaulted is None:
            from serving.fallback import DEFAULTED

            defaulted = bool(feats.attrs.get(DEFAULTED, False))
        request_id = request_id or uuid.uuid4().hex
        with self._lock:
            if not self._pending:
                self._since = self.clock()
            self._pending.append((feats, ts, request_id, defaulted))
            self._rows += len(feats)
            due = self._rows >= self.max_rows or self.clock() - self._since >= self.max_seconds
        if due:
            if self.background:
                writer = threading.Thread(target=self._flush_quietly, name="feature-log",
                                          daemon=True)
                self._writers = [w for w in self._writers if w.is_alive()] + [writer]
                writer.start()
            else:
                self.flush()
        return request_id

    def record(self, feats: pd.DataFrame, ts: datetime,
               request_id: str | None = None) -> str | None:
        """The serving hook: :meth:`append`, but a failure is logged and counted, never raised.

        Monitoring must not cost a shop its recommendations: a frame that cannot be logged (or
        a part that cannot be written) increments ``errors``; the result is then ``None``.
        """
        try:
            return self.append(feats, ts, request_id)
        except Exception:  # noqa: BLE001 - the request is answered whatever the log does
            self.errors += 1
            log.exception("could not log %d served feature rows", len(feats))
            return None

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - a background writer has nobody to raise to
            self.errors += 1
            log.exception("could not write the served-feature log")

    def _table(self, pending: list[tuple[pd.DataFrame, datetime, str, bool]]) -> pa.Table:
        """Buffered requests as one table of the log schema (defaults filled, typed)."""
        lengths = [len(p[0]) for p in pending]
        wanted = [*self.keys, *(r.name for r in self.request_fields),
                  *(f.name for f in self.features)]
        feats = _stack([p[0] for p in pending], wanted)
        micros = [pd.Timestamp(p[1]).tz_convert(UTC).value // 1000 for p in pending]
        cols: dict[str, object] = {
            REQUEST_ID: pa.array(np.repeat([p[2] for p in pending], lengths), pa.string()),
            TS: pa.array(np.repeat(np.array(micros, dtype="datetime64[us]"), lengths),
                         type=ARROW["timestamp"]),
            **{k: feats[k].to_numpy(dtype=np.int64) for k in self.keys},
            **{r.name: _request_values(feats, r.name, r.dtype) for r in self.request_fields},
            DEFAULTED_COL: np.repeat(np.array([p[3] for p in pending], dtype=bool), lengths)}
        for feat in self.features:
            try:
                cols[feat.name] = _served(feats, feat, self.contract)
            except (TypeError, ValueError, pa.ArrowException) as err:
                raise ValueError(f"feature {feat.name!r} cannot be logged as "
                                 f"{arrow_type(feat)}: {err}") from err
        return pa.table(cols, schema=self.schema)

    def flush(self) -> list[Path]:
        """Write the buffered rows as one new part per UTC day; returns the parts written.

        All buffered requests are converted together; if that fails, request by request, so
        one bad request cannot cost the others their rows.

        Raises:
            LogError: naming each request that could not be converted (its rows are dropped;
                every other buffered request is written first).
        """
        with self._lock:
            pending, self._pending, self._rows = self._pending, [], 0
        if not pending:
            return []
        problems: list[str] = []
        try:
            tables = [self._table(pending)]
        except (TypeError, ValueError, pa.ArrowException):
            tables = []
            for one in pending:
                try:
                    tables.append(self._table([one]))
                except (TypeError, ValueError, pa.ArrowException) as err:
                    problems.append(f"request {one[2]} ({len(one[0])} rows): {err}")
        written = write_days(pa.concat_tables(tables), self.settings, self.service) \
            if tables else []
        if problems:
            raise LogError("; ".join(problems))
        return written

    def close(self) -> list[Path]:
        """Wait for background writes, then flush what is buffered (call on shutdown)."""
        for writer in self._writers:
            writer.join()
        self._writers = []
        return self.flush()


def _stack(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The rows of ``frames`` one after the other, column by column (a missing column: null).

    Column-wise ``np.concatenate`` instead of ``pd.concat``: request frames are built column by
    column (one block each), which makes pandas' block-wise concat ~10x slower here.
    """
    out = {}
    for name in columns:
        parts = [f[name].to_numpy() if name in f else np.full(len(f), None, dtype=object)
                 for f in frames]
        kinds = {p.dtype for p in parts}
        out[name] = pd.Series(np.concatenate(parts) if len(kinds) == 1 else
                              np.concatenate([p.astype(object) for p in parts]))
    return pd.DataFrame(out)


