"""The ranking training set of an implicit-feedback source (no impressions), via sampled negatives.

``feature_repo.training_set`` builds ``datasets/ranker.parquet`` from impressions. Sources such
as ``amazon-seq`` have none (every event is a positive), so that set is empty. This module
builds the same file (same columns, same FeatureService, same point-in-time join) from the
positives plus :mod:`training.negatives` samples: each positive (user, item, time) gets ``k``
items the user never interacted with, at the same instant, and Feast returns every row's
``ranker`` features as of that instant. Every task's label is the implicit positive (in a
purchase/review log, the positive is both the "click" and the "conversion").

Item popularity for popularity-weighted sampling is counted on positives before
``train_end`` only: counting the held-out period would leak which items are about to be
popular into the negatives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shoprec.contract import EVENT_SCHEMA, ITEM_SCHEMA, POSITIVE_EVENT_TYPES, RANKER, Contract
from shoprec.settings import Settings
from training.negatives import NegativeSampling, sample_negatives
from training.ranker_data import TS_COL as TS


def implicit_rows(positives: pd.DataFrame, items: np.ndarray, contract: Contract,
                  sampling: NegativeSampling, train_end: pd.Timestamp) -> pd.DataFrame:
    """Positives + sampled negatives with every label column and the request fields.

    Args:
        positives: Join keys, ``event_ts`` and the request fields' event columns, one row per
            positive event.
        items: The catalogue to draw negatives from.
        contract: Join keys, label columns (``task_labels``) and request fields.
        sampling: Negative-sampling settings.
        train_end: Popularity counts use positives before this instant only.

    Returns:
        One row per positive and per negative, in time order (each positive before its
        negatives), with ``neg_of`` pointing at the positive's position.
    """
    user, item = (e.join_key for e in contract.entities)
    counts = positives.loc[positives[TS] < train_end, item].value_counts()
    rows = sample_negatives(positives, items, sampling, counts=counts, history=positives,
                            user_col=user, item_col=item, label=contract.label)
    for column in contract.task_labels.values():
        rows[column] = rows[contract.label]
    rows = rows.assign(**{r.name: rows[r.event_column] for r in contract.request_fields})
    order = np.lexsort((rows.index.to_numpy(), rows[TS].to_numpy()))
    return rows.iloc[order].reset_index(drop=True)


def build_implicit_ranker_set(settings: Settings, contract: Contract, store: Any,
                              sampling: NegativeSampling, train_end: pd.Timestamp,
                              chunk_rows: int = 100_000) -> dict[str, Any]:
    """Write ``datasets/ranker.parquet`` from the committed positives and sampled negatives.

    Args:
        settings: Locations (events and the item table in, the dataset out).
        contract: Services, labels, request fields.
        store: An open ``FeatureStore`` with the contract applied and snapshots built.
        sampling: Negative-sampling settings (recorded in the summary).
        train_end: End of the training period (popularity counts).
        chunk_rows: Rows per Feast request (bounds memory).

    Returns:
        ``{"path", "rows", "positives", "sampling", "feast": repair counts}``.

    Raises:
        ValueError: if there are no positive events.
    """
    from dataclasses import asdict

    from feature_repo.events import EVENT_TYPE, read_events, read_table, write_atomic
    from feature_repo.historical import service_features
    from feature_repo.training_set import dataset_columns

    keys = [e.join_key for e in contract.entities]
    columns = list(dict.fromkeys([EVENT_SCHEMA.key, *keys, EVENT_TYPE, TS,
                                  *(r.event_column for r in contract.request_fields)]))
    events = read_events(settings, columns)
    positives = events[events[EVENT_TYPE].isin(POSITIVE_EVENT_TYPES)]
    if positives.empty:
        raise ValueError(f"no positive events under {settings.events_dir}: nothing to rank")
    positives = positives.sort_values([TS, EVENT_SCHEMA.key], ignore_index=True)
    catalogue = read_table(settings, ITEM_SCHEMA)[ITEM_SCHEMA.key].to_numpy()
    rows = implicit_rows(positives.drop(columns=[EVENT_SCHEMA.key, EVENT_TYPE]), catalogue,
                         contract, sampling, train_end)
    feats, counts = service_features(store, contract, RANKER, rows, TS, chunk_rows)
    new = [c for c in feats.columns if c not in rows.columns]
    frame = pd.concat([rows, feats[new]], axis=1)[dataset_columns(contract, "ranker")]
    path = write_atomic(frame, settings.datasets_dir / "ranker.parquet")
    return {"path": path, "rows": len(frame), "positives": int(frame[contract.label].sum()),
            "sampling": asdict(sampling), "feast": counts}
