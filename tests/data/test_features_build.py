"""Daily snapshots from a tiny hand-made event log (values computed by hand) and a random log
checked against a brute-force recomputation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from feature_repo.build import build_snapshots
from shoprec.contract import CONTRACT, EVENT_TYPES, ITEM_SCHEMA
from shoprec.recipes import (
    GAP_HOURS,
    ITEM,
    Count,
    DaysSinceLast,
    MeanItemAttr,
    SmoothedRatio,
    TopItemAttr,
)
from shoprec.sequences import decode_lists
from shoprec.settings import Settings
from tests.data.feature_fixtures import (
    synthetic_log,
    write_event_store,
    write_tables,
    write_tiny,
)

TS = CONTRACT.timestamp_field


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, pd.DataFrame]:
    settings = Settings(home=tmp_path_factory.mktemp("build") / "home")
    write_tiny(settings)
    paths = build_snapshots(settings, CONTRACT)
    return {view: pd.read_parquet(path) for view, path in paths.items()}


def row(df: pd.DataFrame, key: str, ident: int, day: str) -> dict:
    hit = df[(df[key] == ident) & (df[TS] == pd.Timestamp(day, tz="UTC"))]
    assert len(hit) <= 1
    return hit.iloc[0].to_dict() if len(hit) else {}


def test_files_have_contract_columns_and_dtypes(tiny):
    for spec in CONTRACT.views:
        df = tiny[spec.name]
        key = CONTRACT.entity(spec.entity).join_key
        feats = CONTRACT.view_features(spec.name)
        assert list(df.columns) == [key, *(f.name for f in feats), TS]
        assert df[key].dtype == np.int64 and str(df[TS].dtype) == "datetime64[ns, UTC]"
        for f in feats:
            if f.kind == "sequence":  # encoded strings of the element dtype, <= max_len long
                assert all(isinstance(v, str) for v in df[f.name]), f.name
                assert all(len(v) <= f.max_len for v in decode_lists(df[f.name], f.dtype))
            else:
                assert str(df[f.name].dtype) == f.dtype, f.name
        assert not df.duplicated([key, TS]).any()
        # first snapshot: the day after the first event; last: the day after the last event
        assert df[TS].min() == pd.Timestamp("2025-03-02", tz="UTC")
    assert tiny["item_profile"][TS].max() == pd.Timestamp("2025-04-11", tz="UTC")


def test_user_stats_by_hand(tiny):
    us = tiny["user_stats"]
    # 03-02 covers 03-01: u1 2 impressions, 1 click (item 10: price 10, category 1)
    r = row(us, "user_id", 1, "2025-03-02")
    assert {k: r[k] for k in ("u_impressions_30d", "u_impressions_1d", "u_clicks_30d",
                              "u_clicks_1d", "u_purchases_30d", "u_ctr_30d", "u_avg_price_30d",
                              "u_top_category", "u_top_category_2")} == {
        "u_impressions_30d": 2, "u_impressions_1d": 2, "u_clicks_30d": 1, "u_clicks_1d": 1,
        "u_purchases_30d": 0, "u_ctr_30d": pytest.approx(2 / 22), "u_avg_price_30d": 10.0,
        "u_top_category": 1, "u_top_category_2": -1}
    assert r["u_days_since_last"] == pytest.approx(15 / 24 - 1 / 1440)  # last: 03-01 09:01
    # 03-03 adds 03-02: clicks on items 12 (20.0, cat 2) and 11 (30.0, cat 2), one purchase
    r = row(us, "user_id", 1, "2025-03-03")
    assert (r["u_impressions_30d"], r["u_clicks_30d"], r["u_purchases_30d"]) == (4, 3, 1)
    assert r["u_ctr_30d"] == pytest.approx(4 / 24)
    assert r["u_avg_price_30d"] == pytest.approx(20.0)
    assert r["u_top_category"] == 2
    # u2 has impressions but no positive event: mean and top fall back to contract defaults
    r = row(us, "user_id", 2, "2025-03-02")
    assert (r["u_impressions_30d"], r["u_clicks_30d"], r["u_ctr_30d"]) == (1, 0,
                                                                           pytest.approx(1 / 21))
    assert (r["u_avg_price_30d"], r["u_top_category"]) == (0.0, -1)


def test_window_boundaries(tiny):
    us = tiny["user_stats"]
    # u3's only event is at 03-03 23:59:59: not in the 03-03 snapshot, in the 03-04 one
    assert row(us, "user_id", 3, "2025-03-03") == {}
    assert row(us, "user_id", 3, "2025-03-04")["u_impressions_30d"] == 1
    # 30-day window of 03-31 is [03-01, 03-31): both days of u1; 04-01 drops 03-01
    assert row(us, "user_id", 1, "2025-03-31")["u_impressions_30d"] == 4
    r = row(us, "user_id", 1, "2025-04-01")
    assert (r["u_impressions_30d"], r["u_clicks_30d"], r["u_purchases_30d"]) == (2, 2, 1)
    assert r["u_avg_price_30d"] == pytest.approx(25.0) and r["u_ctr_30d"] == pytest.approx(3 / 22)
    # exit row on 04-02: zero counts, ratios at their prior, defaults; absent from 04-03 on
    r = row(us, "user_id", 1, "2025-04-02")
    assert (r["u_impressions_30d"], r["u_clicks_30d"], r["u_ctr_30d"], r["u_top_category"]) == (
        0, 0, pytest.approx(0.05), -1)
    assert row(us, "user_id", 1, "2025-04-03") == {}
    assert set(us.loc[us[TS] == pd.Timestamp("2025-04-11", tz="UTC"), "user_id"]) == {2}


def test_item_stats_and_profile_by_hand(tiny):
    st, pr = tiny["item_stats"], tiny["item_profile"]
    r = row(st, "item_id", 12, "2025-03-04")  # 2 impressions, 2 clicks, 1 purchase
    assert (r["i_impressions_30d"], r["i_clicks_30d"], r["i_purchases_30d"]) == (2, 2, 1)
    assert r["i_ctr_30d"] == pytest.approx(3 / 22) and r["i_cvr_30d"] == pytest.approx(2 / 52)
    assert row(st, "item_id", 10, "2025-03-04")["i_impressions_30d"] == 3
    assert row(st, "item_id", 12, "2025-03-02") == {}  # no event of item 12 before 03-02
    # every catalogue item every day; age clipped at 0 before launch (item 11: 03-02 12:00)
    assert len(pr) == 3 * 41
    assert row(pr, "item_id", 11, "2025-03-02")["i_age_days"] == 0.0
    assert row(pr, "item_id", 11, "2025-03-03")["i_age_days"] == 0.5
    r = row(pr, "item_id", 12, "2025-03-02")
    assert (r["i_category_id"], r["i_shop_id"], r["i_price"], r["i_stock"], r["i_age_days"]) == (
        2, 101, 20.0, 7, 60.0)


def test_missing_event_store_is_a_clear_error(settings):
    with pytest.raises(FileNotFoundError, match="no committed events"):
        build_snapshots(settings, CONTRACT)


def test_missing_catalogue_is_a_clear_error(settings):
    write_tiny(settings)
    (settings.tables_dir / "items.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="items"):
        build_snapshots(settings, CONTRACT)


def test_changed_window_changes_values(settings):
    """Recipes are data: a 1-day window in the contract changes the computed counts."""
    write_tiny(settings)
    short = tuple(dataclasses.replace(f, recipe=Count(f.recipe.events, 1))
                  if isinstance(f.recipe, Count) else f for f in CONTRACT.features)
    contract = dataclasses.replace(CONTRACT, features=short)
    us = pd.read_parquet(build_snapshots(settings, contract)["user_stats"])
    assert row(us, "user_id", 1, "2025-03-03")["u_impressions_30d"] == 2  # only 03-02 counted


def _per_user(events: pd.DataFrame, items: pd.DataFrame) -> dict[int, dict[str, np.ndarray]]:
    """Each user's events (joined to the catalogue) as arrays in time order, ties by funnel
    position then item id."""
    ev = events.merge(items[[ITEM_SCHEMA.key, "price", "category_id"]], on="item_id", how="left")
    ev["event_ts"] = ev["event_ts"].dt.tz_convert(None)  # naive UTC: plain datetime64 arrays
    ev["day"] = ev["event_ts"].dt.floor("D")
    ev["funnel"] = ev["event_type"].map({t: i for i, t in enumerate(EVENT_TYPES)})
    ev = ev.sort_values(["event_ts", "funnel", "item_id"], kind="stable")
    cols = ["day", "event_ts", "event_type", "item_id", "price", "category_id"]
    return {u: {c: g[c].to_numpy() for c in cols} for u, g in ev.groupby("user_id")}


def brute_force_user_stats(events: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """The user_stats definition applied literally, one snapshot day and user at a time."""
    users = _per_user(events, items)
    feats = {f.name: f for f in CONTRACT.view_features("user_stats")}
    days = events["event_ts"].dt.floor("D")
    out = []
    for d in pd.date_range(days.min() + pd.Timedelta(days=1), days.max() + pd.Timedelta(days=1)):
        d64 = d.tz_convert(None).to_datetime64()
        for user, a in users.items():
            day = a["day"]
            if not ((day >= d64 - np.timedelta64(31, "D")) & (day < d64)).any():
                continue
            rec = {"user_id": user, TS: d}
            for name, f in feats.items():
                r = f.recipe
                if isinstance(r, SmoothedRatio):
                    continue
                m = ((day >= d64 - np.timedelta64(r.window_days, "D")) & (day < d64)
                     & np.isin(a["event_type"], r.events))
                if isinstance(r, Count):
                    rec[name] = int(m.sum())
                    continue
                if isinstance(r, DaysSinceLast):
                    last = a["event_ts"][m].max() if m.any() else None
                    rec[name] = (d64 - last) / np.timedelta64(1, "D") if m.any() else f.default
                    continue
                vals = a[r.attr][m]
                vals = vals[~pd.isna(vals)]
                if isinstance(r, MeanItemAttr):
                    rec[name] = vals.mean() if len(vals) else f.default
                elif isinstance(r, TopItemAttr):  # by count desc, then value asc
                    c = sorted(pd.Series(vals).value_counts().items(),
                               key=lambda kv: (-kv[1], kv[0]))
                    rec[name] = c[r.rank - 1][0] if len(c) >= r.rank else f.default
            for name, f in feats.items():
                if isinstance(f.recipe, SmoothedRatio):
                    r = f.recipe
                    rec[name] = (rec[r.numerator] + r.alpha) / (rec[r.denominator] + r.alpha
                                                                + r.beta)
            out.append(rec)
    return pd.DataFrame(out)


def brute_force_histories(events: pd.DataFrame, items: pd.DataFrame,
                          snapshots: pd.DataFrame) -> dict[str, list[list]]:
    """Each user_sequence feature of each snapshot row, from a literal filter of the user's
    time-ordered events."""
    users = _per_user(events, items)
    out: dict[str, list[list]] = {f.name: [] for f in CONTRACT.view_features("user_sequence")}
    for user, day in zip(snapshots["user_id"], snapshots[TS], strict=True):
        a, day = users[user], day.tz_convert(None)
        ts = pd.DatetimeIndex(a["event_ts"])
        for f in CONTRACT.view_features("user_sequence"):
            r = f.recipe
            m = ((ts >= day - pd.Timedelta(days=r.window_days)) & (ts < day)
                 & np.isin(a["event_type"], r.events))
            keep = np.flatnonzero(m)[-f.max_len:]
            if r.value == ITEM:
                out[f.name].append(a["item_id"][keep].tolist())
            elif r.value == GAP_HOURS:
                out[f.name].append(((day - ts[keep]) / pd.Timedelta(hours=1)).tolist())
            else:
                vals = pd.Series(a[r.value][keep], dtype=float)
                out[f.name].append(vals.fillna(f.default).astype(int).tolist())
    return out


def test_random_log_matches_brute_force(settings):
    events, items, users = synthetic_log(3_000, n_users=12, n_items=15, days=45, seed=3)
    items = items[items["item_id"] != 3]  # an item missing from the catalogue: category -1
    write_event_store(settings, events)
    write_tables(settings, items, users)
    paths = build_snapshots(settings, CONTRACT)
    seqs = pd.read_parquet(paths["user_sequence"])
    want_seqs = brute_force_histories(events, items, seqs)
    assert sum(len(v) for v in want_seqs["u_hist_item_ids"]) > 1000  # long, truncated lists
    assert any(-1 in v for v in want_seqs["u_hist_category_ids"])
    for name, want_lists in want_seqs.items():
        got_lists = decode_lists(seqs[name], CONTRACT.feature(name).dtype)
        for got_list, want_list in zip(got_lists, want_lists, strict=True):
            np.testing.assert_allclose(got_list, want_list, err_msg=name)
    got = pd.read_parquet(paths["user_stats"])
    want = brute_force_user_stats(events, items)
    merged = want.merge(got, on=["user_id", TS], suffixes=("_want", ""), how="outer",
                        indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    for f in CONTRACT.view_features("user_stats"):
        np.testing.assert_allclose(merged[f.name].astype(float),
                                   merged[f"{f.name}_want"].astype(float), err_msg=f.name)



def test_mistyped_event_file_is_a_clear_error(settings):
    write_tiny(settings)
    bad = settings.events_dir / "event_date=2025-03-01" / "batch-bad.parquet"
    pd.DataFrame({"user_id": ["not-a-number"], "item_id": [1], "event_type": ["click"],
                  "event_ts": [pd.Timestamp("2025-03-01", tz="UTC")]}).to_parquet(bad)
    with pytest.raises(ValueError, match="do not match the event schema"):
        build_snapshots(settings, CONTRACT)


def test_until_rebuilds_an_old_interval_exactly(settings, tmp_path):
    """A run for an old data interval ignores events that arrived for later intervals."""
    write_tiny(settings)
    until = pd.Timestamp("2025-03-03", tz="UTC")  # events of 03-01 and 03-02 only
    cut = build_snapshots(settings, CONTRACT, until=until)
    us = pd.read_parquet(cut["user_stats"])
    assert us[TS].max() == until  # last snapshot: the day after the last included event
    assert row(us, "user_id", 1, "2025-03-03")["u_impressions_30d"] == 4
    assert set(us["user_id"]) == {1, 2}  # user 3's only event (03-03 23:59:59) is excluded
    # The same interval from a store holding ONLY those events gives identical files.
    only = Settings(home=tmp_path / "only")
    from tests.data.feature_fixtures import tiny_events, tiny_items, tiny_users

    events = tiny_events()
    write_event_store(only, events[events["event_ts"] < until])
    write_tables(only, tiny_items(), tiny_users())
    alone = build_snapshots(only, CONTRACT)
    for view, path in cut.items():
        pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(alone[view]))
