"""The Feast store of one installation: config, apply, materialization and online reads.

``settings.feast_dir`` holds the generated ``feature_store.yaml`` (absolute paths, so the
store opens from any working directory), the file registry ``registry.db``, the sqlite online
store ``online.db`` (when ``settings.online_store`` is ``sqlite``, the default) and
``materialized.json``, the record of what reached the online store. With ``redis`` the online
rows live in the Redis server at ``settings.redis`` (see :mod:`feature_repo.online_store`).

Materialization uses explicit ranges taken from the snapshot timestamps instead of
``materialize_incremental``: a first incremental run starts at ``now - ttl`` and silently
loads nothing when the data is older than the TTL (backfills, demo data, replays).
Views are written by :mod:`feature_repo.bulk_write` (whole-column encoding into Feast's own
sqlite/Redis layout, ~50x faster than Feast's per-value path); Feast's ``materialize`` stays
the fallback for stores or columns the bulk writer does not reproduce.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import pandas as pd

from feature_repo.definitions import feast_objects
from feature_repo.online import conform, feast_fetcher, feature_store_yaml, open_feature_store
from feature_repo.online_store import (  # noqa: F401  (re-exported: the store's public API)
    ONLINE_KEY,
    STATE_FILE,
    check_online_store,
    day_digest,
    online_identity,
    online_store_yaml,
    read_state,
    redis_client,
    view_fingerprint,
    write_state,
)
from shoprec.atomic import write_text_atomic
from shoprec.contract import Contract
from shoprec.settings import Settings

Writer = Literal["auto", "bulk", "feast"]
"""``auto``: the bulk writer where it applies, Feast's materialize elsewhere; ``bulk``: the
bulk writer or an error; ``feast``: Feast's own materialize (the reference path)."""


def write_config(settings: Settings, contract: Contract | None = None) -> str:
    """Write ``feast_dir/feature_store.yaml`` for ``contract.project``; returns its path."""
    contract = contract or settings.load_contract()
    d = settings.feast_dir
    d.mkdir(parents=True, exist_ok=True)
    text = (f"project: {contract.project}\n"
            f"registry: {d / 'registry.db'}\n"
            "provider: local\n"
            f"{online_store_yaml(settings)}"
            "offline_store:\n"
            "  type: file\n"
            "entity_key_serialization_version: 3\n")
    return str(write_text_atomic(feature_store_yaml(settings), text))


def open_store(settings: Settings) -> Any:
    """Open the installation's ``FeatureStore`` (``FileNotFoundError`` before ``apply``)."""
    return open_feature_store(settings)


def apply(settings: Settings, contract: Contract | None = None) -> dict[str, list[str]]:
    """Register the contract's objects in-process and delete those no longer in it.

    ``FeatureStore.apply`` only adds/updates; a view or service dropped from the contract
    would otherwise stay in the registry (and the UI) forever. On-demand views are listed
    separately by Feast, so a request view dropped from the contract is found there.

    Returns:
        Names per kind: ``applied_*`` and ``deleted_*`` lists (for run records).
    """
    from feast.feature_view import DUMMY_ENTITY_NAME

    contract = contract or settings.load_contract()
    write_config(settings, contract)
    objs = feast_objects(contract, settings)
    store = open_store(settings)
    wanted_sources = {src.name for src in [*objs.sources.values(), *objs.push_sources.values()]}
    listings = (("services", set(objs.services), store.list_feature_services),
                ("views", set(objs.views), store.list_feature_views),
                ("on_demand_views", set(objs.on_demand_views),
                 store.list_on_demand_feature_views),
                ("entities", set(objs.entities), store.list_entities),
                ("sources", wanted_sources, store.list_data_sources))
    stale: list[Any] = []
    report: dict[str, list[str]] = {}
    for kind, wanted, lister in listings:
        gone = [o for o in lister() if o.name not in wanted and o.name != DUMMY_ENTITY_NAME]
        stale.extend(gone)
        report[f"applied_{kind}"] = sorted(wanted)
        report[f"deleted_{kind}"] = sorted(o.name for o in gone)
    store.apply(objs.all(), objects_to_delete=stale, partial=False)
    return report


def materialize(settings: Settings, store: Any, contract: Contract | None = None,
                on_loaded: Callable[[str, dict[str, Any]], None] | None = None,
                writer: Writer = "auto") -> dict[str, dict[str, Any]]:
    """Load new snapshot rows into the online store, per view, over explicit time ranges.

    First run (or after the view's columns changed, or the online store lost its data):
    from the earliest snapshot to the latest + 1 s. Later runs: from the end recorded in
    ``materialized.json`` to the latest snapshot + 1 s; if the last day loaded before was
    rebuilt with other content since (the current day's snapshot grows while its events are
    committed hourly), the range starts at that day again. The online store keeps each
    entity's latest row.

    Resumable: a view's range is recorded only after all of it was written, so a run killed
    half-way never claims a range it did not write, and the next run loads exactly the views
    and ranges still missing (re-writing a range is harmless: same rows, same keys).

    Args:
        settings: Locations and the online store.
        store: The open ``FeatureStore``.
        contract: Views to load (default: the configured contract).
        on_loaded: Called with ``(view, result)`` after each view's range is recorded.
        writer: See :data:`Writer`.

    Returns:
        Per view: ``rows`` read from the snapshots in the range, ``entities`` written,
        ``start``/``end`` (ISO), ``writer`` (``bulk`` or ``feast``), ``reopened`` when the last
        loaded day was loaded again, or ``skipped`` when nothing was new.

    Raises:
        FileNotFoundError: if a view's snapshot file has not been built.
        ConnectionError: if the configured Redis server does not answer.
        ValueError: for an unknown ``writer``.
        feature_repo.bulk_write.Unsupported: with ``writer="bulk"`` on a store or view
            the bulk writer does not reproduce.
    """
    from feature_repo.bulk_write import Unsupported, bulk_materialize

    if writer not in ("auto", "bulk", "feast"):
        raise ValueError(f"writer must be auto, bulk or feast, got {writer!r}")
    contract = contract or settings.load_contract()
    check_online_store(settings)
    state = read_state(settings, contract)
    state[ONLINE_KEY] = {**state.get(ONLINE_KEY, {}), "store": online_identity(settings)}
    result: dict[str, dict[str, Any]] = {}
    for spec in contract.views:
        path = settings.features_dir / f"{spec.name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; build the snapshots first")
        key = contract.entity(spec.entity).join_key
        ts_col = contract.timestamp_field
        snap = pd.read_parquet(path, columns=[key, ts_col])
        if snap.empty:
            result[spec.name] = {"rows": 0, "entities": 0, "skipped": "no snapshot rows"}
            continue
        fingerprint = view_fingerprint(contract, spec.name)
        prev = state.get(spec.name, {})
        prev = prev if prev.get("fingerprint") == fingerprint else {}
        last = snap[ts_col].max()
        start = (pd.Timestamp(prev["end"]).to_pydatetime() if prev
                 else snap[ts_col].min().to_pydatetime())
        end = last.to_pydatetime() + timedelta(seconds=1)
        reopened = bool(prev.get("last_ts")) and day_digest(
            path, key, ts_col, pd.Timestamp(prev["last_ts"])) != prev.get("last_digest")
        if reopened:
            start = min(start, pd.Timestamp(prev["last_ts"]).to_pydatetime())
        if start >= end:
            result[spec.name] = {"rows": 0, "entities": 0, "skipped": "nothing new"}
            continue
        used = "feast"
        if writer != "feast":
            try:
                bulk_materialize(store, spec.name, str(path), start, end)
                used = "bulk"
            except Unsupported:
                if writer == "bulk":
                    raise
        if used == "feast":
            store.materialize(start_date=start, end_date=end, feature_views=[spec.name])
        loaded = snap[(snap[ts_col] >= start) & (snap[ts_col] <= end)]
        result[spec.name] = {"rows": len(loaded), "entities": int(loaded[key].nunique()),
                             "start": start.isoformat(), "end": end.isoformat(),
                             "writer": used}
        if reopened:
            result[spec.name]["reopened"] = prev["last_ts"]
        state[spec.name] = {"end": end.isoformat(), "fingerprint": fingerprint,
                            "last_ts": last.isoformat(),
                            "last_digest": day_digest(path, key, ts_col, last)}
        write_state(settings, contract, state)
        if on_loaded is not None:
            on_loaded(spec.name, result[spec.name])
    return result


def online_features(store: Any, contract: Contract, service: str,
                    entity_df: pd.DataFrame, batch: int = 5_000) -> pd.DataFrame:
    """Entity rows plus the service's online features (defaults filled, contract dtypes).

    Args:
        store: An open ``FeatureStore``.
        contract: Declares the service's features, defaults and dtypes.
        service: FeatureService name (the same one training used).
        entity_df: Must carry the service's join keys; request fields of the service are
            passed on when present (otherwise the fetcher fills them as for a live request);
            other columns are kept as they are.
        batch: Rows per online request, bounding request size for whole-catalogue reads.

    Raises:
        KeyError: if ``entity_df`` lacks a join key of the service.
    """
    keys = [e.join_key for e in contract.service_entities(service)]
    missing = [k for k in keys if k not in entity_df]
    if missing:
        raise KeyError(f"entity rows for {service!r} need columns {missing}")
    request = [r.name for r in contract.service_request_fields(service)]
    sent = keys + [r for r in request if r in entity_df]
    base = entity_df.reset_index(drop=True)
    if base.empty:
        return conform(base, contract, service)
    fetch = feast_fetcher(store, contract)
    parts = [fetch(service, base.loc[i:i + batch - 1, sent].reset_index(drop=True))
             for i in range(0, len(base), batch)]
    feats = pd.concat(parts, ignore_index=True)
    feats = feats.drop(columns=[c for c in feats.columns if c in keys or c in request])
    return pd.concat([base, feats], axis=1)
