"""Daily offline feature snapshots, computed by interpreting the contract's recipes.

For each contract feature view one Parquet file ``features/<view>.parquet`` holds a row per
(entity, snapshot day): the join key, the view's features (contract dtypes) and
``contract.timestamp_field`` = midnight UTC of day ``D``. A windowed feature of day ``D``
covers events in ``[D - window, D)``, so a training row on day ``D`` (joined point-in-time to
the ``D`` snapshot) never sees its own day's events. Snapshots run from the day after the
first event through the day after the last one.

Rows per view:

* event-based views (``Count``/``MeanItemAttr``/``TopItemAttr``/``DaysSinceLast``/``History``):
  entities with an event in the view's longest window, plus one *exit* day: the day after an
  entity leaves the window it gets a last row with zero counts (ratios at their priors, empty
  histories), so the online store, which keeps an entity's latest row forever, never serves
  stale values for a lapsed entity;
* table-based views (``Attr``/``DaysSince``/``Band``): every entity of the catalogue table,
  every day.

``History`` features are stored in the string encoding of :mod:`shoprec.sequences`, oldest element
first, at most ``max_len`` long and NOT padded (see :mod:`feature_repo.history`). Request-time
views (``RequestPart``) have no snapshots: Feast computes them per request.

No feature or view name appears here: recipes are dispatched by type.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from feature_repo.aggregates import (
    active_rows,
    unique_pairs,
    window_last,
    window_mode,
    window_sum,
)
from feature_repo.events import (
    EVENT_TS,
    EVENT_TYPE,
    day_numbers,
    day_timestamps,
    entity_table,
    read_events,
    read_table,
    write_atomic,
)
from feature_repo.history import NS_PER_DAY, history_column, history_slices
from shoprec.contract import EVENT_TYPES, ITEM_SCHEMA, Contract, Feature, FeatureViewSpec
from shoprec.recipes import (
    GAP_HOURS,
    ITEM,
    Attr,
    Band,
    Count,
    DaysSince,
    DaysSinceLast,
    History,
    MeanItemAttr,
    SmoothedRatio,
    TopItemAttr,
)
from shoprec.settings import Settings

EVENT_RECIPES = (Count, MeanItemAttr, TopItemAttr, DaysSinceLast, History)
TABLE_RECIPES = (Attr, DaysSince, Band)
_NUMPY = {"int64": np.int64, "float64": np.float64}


class BuildInputs:
    """Events, their day numbers and lazily read catalogue tables, shared by all views.

    The batch builder reads the committed event store; the push path
    (:mod:`feature_repo.push`) passes ``events`` (committed plus just-arrived rows of a few
    users) so that the very same recipe code computes what it pushes online.
    """

    def __init__(self, settings: Settings, contract: Contract,
                 until: pd.Timestamp | None = None, events: pd.DataFrame | None = None) -> None:
        self.settings = settings
        cols = list(dict.fromkeys([*(e.join_key for e in contract.entities), ITEM_SCHEMA.key,
                                   EVENT_TYPE, EVENT_TS]))
        if events is None:
            self.events = read_events(settings, cols, until)
        else:
            kept = events if until is None else events[events[EVENT_TS] < until]
            self.events = kept[cols].reset_index(drop=True)
        if self.events.empty:
            raise ValueError(f"the event store {settings.events_dir} holds no events")
        self.days = day_numbers(self.events[EVENT_TS])
        self.ts_ns = self.events[EVENT_TS].dt.tz_localize(None).to_numpy(
            "datetime64[ns]").view(np.int64)
        self.lo, self.hi = int(self.days.min()) + 1, int(self.days.max()) + 1
        self._tables: dict[str, pd.DataFrame] = {}

    def funnel_order(self) -> np.ndarray:
        """Rank of each event by (funnel position of its type, item id): ties in time."""
        rank = self.events[EVENT_TYPE].map({t: i for i, t in enumerate(EVENT_TYPES)})
        order = np.lexsort((self.events[ITEM_SCHEMA.key].to_numpy(),
                            rank.fillna(len(EVENT_TYPES)).to_numpy()))
        out = np.empty(len(order), np.int64)
        out[order] = np.arange(len(order))
        return out

    def history(self, r: History, max_len: int, ev_codes: np.ndarray, q_e: np.ndarray,
                q_d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Event indexes (into ``events``) and lengths of each query row's history."""
        sel = np.flatnonzero(self.events[EVENT_TYPE].isin(r.events).to_numpy())
        element, lengths = history_slices(
            ev_codes[sel], self.days[sel], self.ts_ns[sel], self.funnel_order()[sel], q_e, q_d,
            r.window_days, max_len)
        return sel[element], lengths

    def table(self, join_key: str) -> pd.DataFrame:
        """The catalogue table keyed by ``join_key``, one row per key."""
        if join_key not in self._tables:
            schema, df = entity_table(self.settings, join_key)
            dupes = df[join_key].duplicated()
            if dupes.any():
                raise ValueError(f"{schema.name} table has {int(dupes.sum())} duplicate "
                                 f"{join_key} values, e.g. {df[join_key][dupes].iloc[0]}")
            self._tables[join_key] = df
        return self._tables[join_key]

    def item_attr(self, column: str) -> pd.Series:
        """Catalogue ``column`` of each event's item (NaN for items missing from the table)."""
        if ITEM_SCHEMA.key not in self._tables:
            self._tables[ITEM_SCHEMA.key] = read_table(self.settings, ITEM_SCHEMA)
        items = self._tables[ITEM_SCHEMA.key]
        if column not in items:
            raise KeyError(f"items table has no column {column!r} (needed by a recipe)")
        lookup = items.drop_duplicates(ITEM_SCHEMA.key, keep="last").set_index(ITEM_SCHEMA.key)
        return self.events[ITEM_SCHEMA.key].map(lookup[column])


def build_snapshots(settings: Settings, contract: Contract,
                    until: pd.Timestamp | None = None) -> dict[str, Path]:
    """Compute and atomically write the daily snapshots of every contract view.

    Args:
        settings: Locations.
        contract: Views, features and recipes.
        until: Use only events before this instant (a run's data-interval end), so that
            re-running an interval reproduces its snapshots whatever arrived later.

    Returns:
        The written Parquet file per view name (row counts are printed per view).

    Raises:
        FileNotFoundError: if no events are committed or a needed table is missing.
        ValueError: if a feature has no recipe, or a recipe cannot apply to its view.
    """
    inputs = BuildInputs(settings, contract, until)
    paths: dict[str, Path] = {}
    for spec in contract.views:
        frame = view_snapshots(spec, contract, inputs)
        paths[spec.name] = write_atomic(frame, settings.features_dir / f"{spec.name}.parquet")
        key = contract.entity(spec.entity).join_key
        print(f"features: {spec.name}: {len(frame)} rows, {frame[key].nunique()} entities, "
              f"{frame[contract.timestamp_field].nunique()} daily snapshots")
    return paths


def view_snapshots(spec: FeatureViewSpec, contract: Contract, inputs: BuildInputs) -> pd.DataFrame:
    """All snapshot rows of one view: join key, features (contract dtypes), timestamp."""
    key = contract.entity(spec.entity).join_key
    feats = contract.view_features(spec.name)
    for f in feats:
        if not isinstance(f.recipe, (*EVENT_RECIPES, *TABLE_RECIPES, SmoothedRatio)):
            raise ValueError(f"feature {f.name!r} has no recipe the builder knows: {f.recipe!r}")
    ev_feats = [f for f in feats if isinstance(f.recipe, EVENT_RECIPES)]
    table = inputs.table(key) if any(isinstance(f.recipe, TABLE_RECIPES) for f in feats) \
        else None
    ev_ids = inputs.events[key].to_numpy()
    tb_ids = table[key].to_numpy() if table is not None else ev_ids[:0]
    codes, uniques = pd.factorize(np.concatenate([ev_ids, tb_ids]))
    ev_codes, tb_codes = codes[:len(ev_ids)], codes[len(ev_ids):]

    parts = []
    if ev_feats:
        lookback = max(f.recipe.window_days for f in ev_feats) + 1
        parts.append(active_rows(ev_codes, inputs.days, lookback, inputs.lo, inputs.hi))
    if table is not None:
        n_days = inputs.hi - inputs.lo + 1
        parts.append((np.repeat(tb_codes, n_days),
                      np.tile(np.arange(inputs.lo, inputs.hi + 1), len(tb_codes))))
    q_e = np.concatenate([p[0] for p in parts]).astype(np.int64)
    q_d = np.concatenate([p[1] for p in parts]).astype(np.int64)
    if len(parts) > 1:
        q_e, q_d = unique_pairs(q_e, q_d)

    values: dict[str, np.ndarray | pd.Series] = {}
    slices: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # one per (events, window, max_len)
    for f in feats:
        if isinstance(f.recipe, History):
            slice_key = (f.recipe.events, f.recipe.window_days, f.max_len)
            if slice_key not in slices:
                slices[slice_key] = inputs.history(f.recipe, f.max_len, ev_codes, q_e, q_d)
            element, lengths = slices[slice_key]
            attr = None if f.recipe.value in (ITEM, GAP_HOURS) else inputs.item_attr(
                f.recipe.value)
            values[f.name] = history_column(
                f.recipe.value, element, lengths, inputs.events[ITEM_SCHEMA.key].to_numpy(),
                inputs.ts_ns, q_d, attr, f.default, f.dtype)
        elif not isinstance(f.recipe, SmoothedRatio):
            values[f.name] = _compute(f, inputs, ev_codes, tb_codes, table, q_e, q_d)
    for f in feats:
        if isinstance(f.recipe, SmoothedRatio):
            r = f.recipe
            values[f.name] = ((np.asarray(values[r.numerator], np.float64) + r.alpha)
                              / (np.asarray(values[r.denominator], np.float64) + r.alpha + r.beta))
    frame = pd.DataFrame({key: uniques[q_e]})
    for f in feats:
        frame[f.name] = values[f.name] if f.kind == "sequence" else _conform(
            pd.Series(np.asarray(values[f.name])), f)
    frame[key] = frame[key].astype(np.int64)
    frame[contract.timestamp_field] = day_timestamps(q_d)
    return frame.sort_values([contract.timestamp_field, key], ignore_index=True)


def _compute(f: Feature, inputs: BuildInputs, ev_codes: np.ndarray, tb_codes: np.ndarray,
             table: pd.DataFrame | None, q_e: np.ndarray, q_d: np.ndarray):
    """One feature's raw values for the query rows (NaN where undefined)."""
    r = f.recipe
    if isinstance(r, EVENT_RECIPES):
        mask = inputs.events[EVENT_TYPE].isin(r.events).to_numpy()
        if isinstance(r, Count):
            return window_sum(ev_codes[mask], inputs.days[mask],
                              np.ones(int(mask.sum()), np.int64), q_e, q_d, r.window_days)
        if isinstance(r, DaysSinceLast):
            last = window_last(ev_codes[mask], inputs.days[mask], inputs.ts_ns[mask], q_e, q_d,
                               r.window_days)
            return (q_d.astype(np.float64) * NS_PER_DAY - last) / NS_PER_DAY
        attr = inputs.item_attr(r.attr)
        mask &= attr.notna().to_numpy()
        if isinstance(r, TopItemAttr):
            return window_mode(ev_codes[mask], inputs.days[mask], attr.to_numpy()[mask],
                               q_e, q_d, r.window_days, r.rank)
        args = (ev_codes[mask], inputs.days[mask])
        total = window_sum(*args, attr.to_numpy(np.float64)[mask], q_e, q_d, r.window_days)
        n = window_sum(*args, np.ones(int(mask.sum()), np.int64), q_e, q_d, r.window_days)
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)
    column = r.column
    if column not in table:
        raise KeyError(f"feature {f.name!r}: entity table has no column {column!r}")
    by_code = pd.Series(table[column].to_numpy(), index=tb_codes).reindex(q_e)
    if isinstance(r, Attr):
        return by_code.reset_index(drop=True)
    if isinstance(r, Band):
        price = by_code.to_numpy(dtype=np.float64)
        band = np.searchsorted(np.asarray(r.edges, np.float64), price, side="right")
        return np.where(np.isnan(price), np.nan, band)
    since = day_timestamps(q_d) - pd.Series(by_code.to_numpy()).astype("datetime64[ns, UTC]")
    return (since / pd.Timedelta(days=1)).clip(lower=0.0)


def _conform(col: pd.Series, f: Feature) -> pd.Series:
    """Fill undefined values with the contract default and cast to the contract dtype."""
    col = col.where(col.notna(), f.default)
    np_dtype = _NUMPY.get(f.dtype)
    return col.astype(np_dtype) if np_dtype is not None else col.astype(str)
