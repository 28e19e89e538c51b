"""The synthetic data generator: deterministic, contract-shaped, with the planted signals visible.

Each signal test compares the data against the generator's own latent truth
(:func:`shoprec.generator_world.build_world` rebuilds it from the config) or against the same
config with the effect switched off, so a test fails if the effect disappears from the data.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from shoprec.cli import PRESETS
from shoprec.contract import DEVICES, EVENT_SCHEMA, EVENT_TYPES, ITEM_SCHEMA, USER_SCHEMA
from shoprec.generator import ARROW_TYPES, GeneratorConfig, generate
from shoprec.generator_sessions import click_logit
from shoprec.generator_world import build_world

SMALL = GeneratorConfig(n_users=400, n_items=300, n_categories=10, n_shops=20, days=4, seed=7)


def _run(tmp_path: Path, config: GeneratorConfig, name: str = "landing") -> tuple[dict, Path]:
    out = tmp_path / name
    return generate(config, out), out


def _events(landing: Path) -> pd.DataFrame:
    return pd.read_parquet(landing / "events").sort_values("event_id", ignore_index=True)


def _clicked(events: pd.DataFrame) -> pd.DataFrame:
    """Impressions with ``clicked`` = 1 when a click on the same (session, user, item) follows
    it within 8 s (each click is credited to the latest such impression)."""
    keys = ["session_id", "user_id", "item_id"]
    imp = events[events.event_type == "impression"].sort_values("event_ts", kind="stable")
    clicks = events.loc[events.event_type == "click", [*keys, "event_ts"]].sort_values("event_ts")
    credited = pd.merge_asof(clicks, imp[[*keys, "event_ts", "event_id"]], on="event_ts",
                             by=keys, direction="backward", allow_exact_matches=False,
                             tolerance=pd.Timedelta("8s"))
    return imp.assign(clicked=imp["event_id"].isin(credited["event_id"]).astype(int))


def test_same_config_gives_byte_identical_files(tmp_path: Path) -> None:
    first, a = _run(tmp_path, SMALL, "a")
    second, b = _run(tmp_path, SMALL, "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    assert len(files) == SMALL.days + 2
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.parquet"))
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert first == second


def test_distinct_seeds_give_different_data(tmp_path: Path) -> None:
    _, a = _run(tmp_path, SMALL, "a")
    _, b = _run(tmp_path, replace(SMALL, seed=8), "b")
    assert (a / "items.parquet").read_bytes() != (b / "items.parquet").read_bytes()
    ea, eb = _events(a), _events(b)
    assert not ea["event_id"].isin(eb["event_id"]).any()  # ids carry the seed
    pairs_a = set(zip(ea.user_id, ea.item_id, strict=True))
    pairs_b = set(zip(eb.user_id, eb.item_id, strict=True))
    assert len(pairs_a & pairs_b) < 0.5 * len(pairs_a)


def test_files_match_the_contract(tmp_path: Path) -> None:
    summary, landing = _run(tmp_path, SMALL)
    for path, schema in [(landing / "items.parquet", ITEM_SCHEMA),
                         (landing / "users.parquet", USER_SCHEMA),
                         *[(landing / f, EVENT_SCHEMA) for f in summary["files"]]]:
        arrow = pq.read_schema(path)
        assert arrow.names == schema.names, path
        assert [arrow.field(c.name).type for c in schema.columns] == \
            [ARROW_TYPES[c.dtype] for c in schema.columns], path
    events = _events(landing)
    assert str(events["event_ts"].dtype) == "datetime64[ns, UTC]"
    assert events["event_id"].is_unique
    assert set(events["device"]) <= set(DEVICES)
    assert set(events["event_type"]) == set(EVENT_TYPES)
    assert (events["strength"] == 1.0).all()
    assert not events.isna().any().any()
    items, users = (pd.read_parquet(landing / f) for f in ("items.parquet", "users.parquet"))
    assert items["item_id"].tolist() == list(range(1, SMALL.n_items + 1))
    assert users["user_id"].tolist() == list(range(1, SMALL.n_users + 1))
    assert set(events["item_id"]) <= set(items["item_id"])
    assert set(events["user_id"]) <= set(users["user_id"])
    assert items["category_id"].nunique() == SMALL.n_categories
    assert (items[["price", "stock"]] >= 0).all().all()
    assert (users["signup_ts"] < pd.Timestamp(SMALL.start_date, tz="UTC")).all()
    # one file per day, each holding exactly that day's events
    for rel in summary["files"]:
        day = pd.read_parquet(landing / rel)["event_ts"].dt.strftime("%Y-%m-%d")
        assert set(day) == {rel.removeprefix("events/events_").removesuffix(".parquet")}
    assert summary["date_range"] == ["2026-10-01", "2026-10-04"]
    assert summary["total_events"] == len(events)
    assert summary["events"] == events["event_type"].value_counts().reindex(
        list(EVENT_TYPES)).to_dict()


def test_new_items_are_not_shown_before_launch(tmp_path: Path) -> None:
    _, landing = _run(tmp_path, SMALL)
    events = _events(landing).merge(pd.read_parquet(landing / "items.parquet"), on="item_id")
    launched_late = events["launch_ts"] >= pd.Timestamp(SMALL.start_date, tz="UTC")
    assert launched_late.any()
    assert (events["event_ts"] >= events["launch_ts"]).all()


def test_every_funnel_step_follows_its_own_impression_seconds_later(tmp_path: Path) -> None:
    _, landing = _run(tmp_path, SMALL)
    events = _events(landing).sort_values("event_ts", kind="stable")
    keys = ["session_id", "user_id", "item_id"]
    for step, before, max_delay_s in [("click", "impression", 8), ("cart", "click", 30),
                                      ("fav", "click", 20), ("purchase", "cart", 60)]:
        later = events[events.event_type == step]
        earlier = events.loc[events.event_type == before, [*keys, "event_ts"]]
        matched = pd.merge_asof(later, earlier.rename(columns={"event_ts": "prev_ts"}),
                                left_on="event_ts", right_on="prev_ts", by=keys,
                                direction="backward", allow_exact_matches=False)
        assert len(matched) == len(later) > 0, step
        delay = (matched["event_ts"] - matched["prev_ts"]).dt.total_seconds()
        assert delay.notna().all(), f"a {step} without an earlier {before}"
        # (0, max]: a repeated item in a session may credit a later, equal impression
        assert ((delay > 0) & (delay <= max_delay_s)).all(), (step, delay.describe())


def test_item_popularity_follows_a_power_law(tmp_path: Path) -> None:
    def top_decile_share(config: GeneratorConfig, name: str) -> float:
        _, landing = _run(tmp_path, config, name)
        imp = _events(landing).query("event_type == 'impression'")
        counts = imp["item_id"].value_counts().reindex(range(1, config.n_items + 1),
                                                        fill_value=0)
        return counts.nlargest(config.n_items // 10).sum() / counts.sum()

    power_law = top_decile_share(SMALL, "powerlaw")
    flat = top_decile_share(replace(SMALL, popularity_exponent=0.0), "flat")
    assert power_law > 0.45
    assert flat < 0.25


def test_planted_affinity_drives_clicks(tmp_path: Path) -> None:
    _, landing = _run(tmp_path, SMALL)
    world = build_world(SMALL)  # day-0 tastes: drift only starts on day 1
    cat = pd.read_parquet(landing / "items.parquet").set_index("item_id")["category_id"]
    imp = _clicked(_events(landing))
    imp = imp[imp["event_ts"] < pd.Timestamp(SMALL.start_date, tz="UTC") + pd.Timedelta("1D")]
    aff = world.affinity(imp["user_id"].to_numpy() - 1, cat.loc[imp["item_id"]].to_numpy())
    high, low = imp.loc[aff > 1, "clicked"], imp.loc[aff < -1, "clicked"]
    assert len(high) > 300 and len(low) > 300
    assert high.mean() > 0.15
    assert high.mean() > 5 * low.mean()


def _sequence_calibration(tmp_path: Path, boost: float) -> tuple[float, float]:
    """Observed / predicted clicks (no-sequence model) for impressions whose category is or is
    not the category of the user's previous click; tastes frozen so the truth is exact."""
    config = replace(SMALL, sequence_boost=boost, drift_sigma=0.0)
    _, landing = _run(tmp_path, config, f"seq{boost}")
    world = build_world(config)
    cat = pd.read_parquet(landing / "items.parquet").set_index("item_id")["category_id"]
    ev = _events(landing).sort_values(["user_id", "event_ts", "event_id"], ignore_index=True)
    ev["cat"] = cat.loc[ev["item_id"]].to_numpy()
    clicked_cat = ev["cat"].where(ev["event_type"] == "click")
    ev["prev_click_cat"] = clicked_cat.groupby(ev["user_id"]).shift().groupby(ev["user_id"]).ffill()
    imp = _clicked(ev).dropna(subset=["prev_click_cat"])
    users, items = imp["user_id"].to_numpy() - 1, imp["item_id"].to_numpy() - 1
    logit = click_logit(world, config, users, items,
                        world.affinity(users, world.item_category[items]))
    imp["p"] = 1 / (1 + np.exp(-logit))
    same = imp["cat"] == imp["prev_click_cat"]
    ratio = [imp.loc[m, "clicked"].sum() / imp.loc[m, "p"].sum() for m in (same, ~same)]
    return ratio[0], ratio[1]


def test_recent_clicks_raise_click_probability(tmp_path: Path) -> None:
    same, other = _sequence_calibration(tmp_path, boost=1.0)
    assert same > 1.6 and same > 1.4 * other
    # Control: without the boost the no-sequence model explains both groups.
    same0, other0 = _sequence_calibration(tmp_path, boost=0.0)
    assert 0.85 < same0 < 1.15 and 0.85 < other0 < 1.15


def test_interests_drift_away_from_the_initial_taste(tmp_path: Path) -> None:
    def top_category_share(config: GeneratorConfig, name: str) -> tuple[float, float]:
        """Share of clicks in the user's initial favourite category: day 0 / last 4 days."""
        _, landing = _run(tmp_path, config, name)
        top = build_world(config).theta.argmax(axis=1)
        cat = pd.read_parquet(landing / "items.parquet").set_index("item_id")["category_id"]
        clicks = _events(landing).query("event_type == 'click'")
        day = (clicks["event_ts"] - pd.Timestamp(config.start_date, tz="UTC")).dt.days
        in_top = top[clicks["user_id"] - 1] == cat.loc[clicks["item_id"]].to_numpy()
        return in_top[day.to_numpy() == 0].mean(), in_top[day.to_numpy() >= 10].mean()

    base = replace(SMALL, n_users=1500, days=14, seed=42)
    early, late = top_category_share(base, "drift")
    early0, late0 = top_category_share(replace(base, drift_sigma=0.0), "frozen")
    # Same seed: day 0 is identical (drift starts on day 1), then the runs part ways.
    # (Frozen tastes are not exactly stationary: the recent-click memory warms up on day 0.)
    assert early == early0
    assert late0 - late > 0.15
    assert late < early  # drift outweighs the warm-up of the recent-click memory


def test_tiny_preset_is_fast_and_has_every_event_type(tmp_path: Path) -> None:
    generate(GeneratorConfig(**PRESETS["tiny"]), tmp_path / "warm")  # imports, first-call costs
    start = time.perf_counter()
    summary, _ = _run(tmp_path, GeneratorConfig(**PRESETS["tiny"]))
    assert time.perf_counter() - start < 2.0
    assert 2_000 <= summary["total_events"] <= 20_000
    assert all(summary["events"][t] > 10 for t in EVENT_TYPES), summary["events"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"n_items": 5, "n_categories": 6}, "n_items \\(5\\) must be >= n_categories \\(6\\)"),
    ({"start_date": "01/10/2026"}, "start_date must be YYYY-MM-DD, got '01/10/2026'"),
    ({"days": 2.5}, "days must be an integer, got 2.5"),
    ({"n_users": 0}, "n_users must be >= 1, got 0"),
    ({"personal_share": 1.5}, "personal_share must be in \\[0, 1\\], got 1.5"),
])
def test_invalid_config_is_rejected_with_the_field_named(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**overrides)


def test_config_coerces_cli_text_values() -> None:
    config = GeneratorConfig(n_users="12", days=3.0, sessions_per_user_day=1)
    assert (config.n_users, config.days, config.sessions_per_user_day) == (12, 3, 1.0)
    assert isinstance(config.days, int) and isinstance(config.sessions_per_user_day, float)
