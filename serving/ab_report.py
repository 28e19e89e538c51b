"""A/B report: CTR and CVR per experiment variant, with Wilson 95 % intervals, from feedback.

Reads the ``/feedback`` landing files (``landing/events/feedback/dt=*/*.parquet``), which keep
the ``variant`` side column that ingestion drops. For each layer and variant, with *pairs* meaning
distinct ``(user_id, item_id)``:

* **CTR** = impressed pairs that were clicked / impressed pairs;
* **CVR** = clicked (and impressed) pairs that were purchased / clicked pairs.

Counting pairs rather than events keeps every ratio a proportion of trials (a double click or a
click without a logged impression cannot push CTR above 1). An event counts for the variant it
was logged with, so a click logged under another variant than its impression is not joined.
The interval is Wilson's score interval; it treats pairs as independent, which overstates
certainty when a few users produce many pairs - read it as a lower bound on the uncertainty.

Usage: ``python -m serving.ab_report [--days N] [--json]`` (prints a table, writes
``$SHOPREC_HOME/reports/ab/ab_report.json``). The ``shoprec_ab_report`` DAG calls
:func:`ab_report`.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from serving.experiments import decode
from serving.feedback import CLICK, IMPRESSION, PURCHASE, feedback_dir
from shoprec.atomic import write_text_atomic
from shoprec.settings import Settings

Z95 = 1.959963984540054
"""Two-sided 95 % standard normal quantile."""
PAIR = ["user_id", "item_id"]
COLUMNS = [*PAIR, "event_type", "variant"]
TS = "event_ts"


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion, or ``None`` without trials."""
    if trials == 0:
        return None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def read_feedback(settings: Settings, since: datetime | None = None,
                  until: datetime | None = None) -> pd.DataFrame:
    """Feedback rows (``COLUMNS``) whose ``event_ts`` lies in ``[since, until)``.

    Both bounds make a report a function of its window alone: re-running a past day's report
    gives the same figures even though feedback kept arriving afterwards. Only ``dt=`` folders
    that can hold rows of the window are opened.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = None if since is None else f"dt={since.astimezone(UTC):%Y-%m-%d}"
    last = None if until is None else f"dt={until.astimezone(UTC):%Y-%m-%d}"
    files = [f for part in sorted(feedback_dir(settings).glob("dt=*"))
             if (first is None or part.name >= first) and (last is None or part.name <= last)
             for f in sorted(part.glob("*.parquet"))]
    if not files:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    table = pa.concat_tables([pq.read_table(f, columns=[*COLUMNS, TS]) for f in files])
    frame = table.to_pandas()
    ts = pd.to_datetime(frame[TS], utc=True)
    keep = pd.Series(True, index=frame.index)
    if since is not None:
        keep &= ts >= pd.Timestamp(since).tz_convert(UTC)
    if until is not None:
        keep &= ts < pd.Timestamp(until).tz_convert(UTC)
    return frame.loc[keep, COLUMNS].reset_index(drop=True)


def _rate(successes: int, trials: int) -> dict[str, Any]:
    ci = wilson(successes, trials)
    return {"rate": successes / trials if trials else None,
            "ci95": None if ci is None else [round(ci[0], 6), round(ci[1], 6)]}


def variant_metrics(events: pd.DataFrame) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """``({layer: [row per variant]}, rows without a readable variant)`` (module docstring)."""
    parsed: dict[Any, dict[str, str] | None] = {}
    for text in events["variant"].dropna().unique():
        try:
            parsed[text] = decode(str(text))
        except ValueError:
            parsed[text] = None
    maps = events["variant"].map(lambda v: parsed.get(v))
    unattributed = int(maps.isna().sum())
    layers = sorted({layer for m in parsed.values() if m for layer in m})
    out: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        df = events.assign(arm=maps.map(lambda m, lay=layer: (m or {}).get(lay)))
        df = df.dropna(subset=["arm"])[["arm", *PAIR, "event_type"]].drop_duplicates()
        rows = []
        for arm, group in sorted(df.groupby("arm"), key=lambda g: str(g[0])):
            pairs = {t: group.loc[group["event_type"] == t, PAIR] for t in
                     (IMPRESSION, CLICK, PURCHASE)}
            clicked = pairs[IMPRESSION].merge(pairs[CLICK], on=PAIR)
            bought = clicked.merge(pairs[PURCHASE], on=PAIR)
            n_imp, n_click, n_buy = len(pairs[IMPRESSION]), len(clicked), len(bought)
            rows.append({"variant": str(arm), "users": int(group["user_id"].nunique()),
                         "impressions": n_imp, "clicks": n_click, "purchases": n_buy,
                         "ctr": _rate(n_click, n_imp), "cvr": _rate(n_buy, n_click)})
        out[layer] = rows
    return out, unattributed


def ab_report(settings: Settings, days: int | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    """Compute the report from the feedback files and write it as JSON; return it.

    Args:
        settings: Locations (feedback landing folder, reports folder).
        days: Only feedback of the ``days`` days before ``now`` (``None``: all before ``now``).
        now: End of the window, exclusive (default: now, UTC); a DAG run passes its data
            interval end, so the report of a past interval never counts later feedback.
    """
    now = now or datetime.now(UTC)
    since = None if days is None else now - timedelta(days=days)
    events = read_feedback(settings, since, until=now)
    layers, unattributed = variant_metrics(events)
    report = {"generated_at": now.isoformat(), "until": now.isoformat(),
              "since": None if since is None else since.isoformat(), "events": len(events),
              "unattributed_events": unattributed,
              "pairs": "distinct (user_id, item_id) per variant", "interval": "wilson 95%",
              "layers": layers}
    path = settings.reports_dir / "ab" / "ab_report.json"
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")
    report["path"] = str(path)
    return report


def _fmt(rate: dict[str, Any]) -> str:
    if rate["rate"] is None:
        return "-"
    lo, hi = rate["ci95"]
    return f"{100 * rate['rate']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table, one line per layer and variant."""
    head = (f"{'layer':<14} {'variant':<14} {'imps':>8} {'clicks':>7} {'CTR [95% CI]':<26} "
            f"{'buys':>6} {'CVR [95% CI]':<26}")
    lines = [head, "-" * len(head)]
    for layer, rows in report["layers"].items():
        for r in rows:
            lines.append(f"{layer:<14} {r['variant']:<14} {r['impressions']:>8} "
                         f"{r['clicks']:>7} {_fmt(r['ctr']):<26} {r['purchases']:>6} "
                         f"{_fmt(r['cvr']):<26}")
    lines.append(f"{report['events']} feedback events, {report['unattributed_events']} "
                 "without a readable variant")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; reads settings from the environment."""
    parser = argparse.ArgumentParser(prog="python -m serving.ab_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=None, help="only the last N days")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ns = parser.parse_args(argv)
    if ns.days is not None and ns.days < 1:
        parser.error("--days must be >= 1")
    report = ab_report(Settings.from_env(), ns.days)
    print(json.dumps(report, indent=2) if ns.json else format_table(report))
    if not ns.json:
        print(f"written to {report['path']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
