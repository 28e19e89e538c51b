"""Reports of a recall evaluation run: a terminal table, a JSON record and an HTML page.

matplotlib is not part of the stack, so the HTML plots are inline SVG built here: grouped bar
charts of Recall/NDCG/HR at each K and of coverage, novelty and diversity, per dataset protocol.
The page is self-contained (no scripts, no external assets) so it can be archived as is.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from training.recall_eval import KS

TABLE_COLUMNS = (*(f"recall@{k}" for k in KS), *(f"hr@{k}" for k in KS),
                 *(f"ndcg@{k}" for k in KS), "accuracy@100", "coverage@100", "novelty@100",
                 "ild@100")
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def _rows(mode: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    return [*mode["sources"].items(), ("MERGED", mode["merged"])]


def format_table(records: list[dict[str, Any]]) -> str:
    """Plain-text table: one block per dataset protocol and history mode."""
    short = [c.replace("recall", "R").replace("ndcg", "N").replace("accuracy", "Acc")
             .replace("coverage", "Cov").replace("novelty", "Nov").replace("hr", "HR")
             .replace("ild", "ILD") for c in TABLE_COLUMNS]
    lines: list[str] = []
    for rec in records:
        for mode_name, mode in rec["modes"].items():
            lines.append(f"== {rec['dataset']} | {rec['split']} | {mode_name} | "
                         f"{rec['test_users']} users, {rec['test_pairs']} held-out pairs")
            lines.append(f"{'source':<17}" + "".join(f"{c:>8}" for c in short))
            for name, metrics in _rows(mode):
                lines.append(f"{name:<17}" + "".join(
                    f"{_fmt(metrics.get(c, float('nan'))):>8}" for c in TABLE_COLUMNS))
            best = mode["best_single"]
            lines.append(f"merged/best single ({best['source']}) at {best['metric']}: "
                         f"{_fmt(mode['merged_vs_best'])}; policy {mode['policy']}")
            lines.extend(f"  {line}" for line in comparison_lines(mode))
        for name, err in rec.get("errors", {}).items():
            lines.append(f"   note: {name}: {err}")
    return "\n".join(lines)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item"):  # numpy scalar
        return _clean(obj.item())
    return obj


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Strict JSON (NaN/inf become null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(payload), indent=2, allow_nan=False) + "\n")
    return path


def bar_chart(title: str, groups: list[str], series: dict[str, list[float]], *,
              width: int = 720, height: int = 260) -> str:
    """Grouped vertical bar chart as an SVG string (one group per entry of ``groups``)."""
    left, right, top, bottom = 48, 150, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    vmax = max(values, default=1.0) or 1.0
    n_series = max(1, len(series))
    group_w = plot_w / max(1, len(groups))
    bar_w = group_w * 0.8 / n_series
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" aria-label="{html.escape(title)}">',
           f'<text x="{left}" y="18" font-size="14" font-family="sans-serif">'
           f'{html.escape(title)}</text>']
    for t in range(5):
        y = top + plot_h - plot_h * t / 4
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
                   f'font-family="sans-serif">{vmax * t / 4:.3g}</text>')
    for g, group in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        for s, (name, vs) in enumerate(series.items()):
            v = vs[g] if g < len(vs) and vs[g] is not None and math.isfinite(vs[g]) else 0.0
            h = plot_h * v / vmax
            out.append(f'<rect x="{x0 + s * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                       f'width="{bar_w * 0.95:.1f}" height="{h:.1f}" '
                       f'fill="{PALETTE[s % len(PALETTE)]}"><title>{html.escape(name)} '
                       f'{html.escape(group)}: {v:.4f}</title></rect>')
        out.append(f'<text x="{left + (g + 0.5) * group_w:.1f}" y="{height - 14}" '
                   f'font-size="11" text-anchor="middle" font-family="sans-serif">'
                   f'{html.escape(group)}</text>')
    for s, name in enumerate(series):
        y = top + 14 * s
        out.append(f'<rect x="{width - right + 10}" y="{y}" width="10" height="10" '
                   f'fill="{PALETTE[s % len(PALETTE)]}"/>')
        out.append(f'<text x="{width - right + 24}" y="{y + 9}" font-size="11" '
                   f'font-family="sans-serif">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _mode_section(rec: dict[str, Any], mode_name: str, mode: dict[str, Any]) -> str:
    rows = _rows(mode)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
    body = "".join(
        f"<tr><th>{html.escape(n)}</th>" + "".join(
            f"<td>{_fmt(m.get(c, float('nan')))}</td>" for c in TABLE_COLUMNS) + "</tr>"
        for n, m in rows)
    charts = []
    for metric in ("recall", "ndcg", "hr"):
        charts.append(bar_chart(f"{metric} by cut-off", [f"@{k}" for k in KS],
                                {n: [m.get(f"{metric}@{k}") for k in KS] for n, m in rows}))
    charts.append(bar_chart("beyond accuracy at 100 (novelty in bits / 10)",
                            ["coverage", "novelty/10", "ILD"],
                            {n: [m.get("coverage@100"), (m.get("novelty@100") or 0) / 10,
                                 m.get("ild@100")] for n, m in rows}))
    policy = html.escape(json.dumps(_clean(mode["policy"])))
    return (f"<h3>{html.escape(mode_name)}</h3><table>"
            f"<tr><th>source</th>{head}</tr>{body}</table>"
            f"<p>Merged / best single ({html.escape(mode['best_single']['source'])}) at "
            f"{html.escape(mode['best_single']['metric'])}"
            f": <b>{_fmt(mode['merged_vs_best'])}</b>. Merge policy (tuned on validation): "
            f"<code>{policy}</code></p>" + _comparisons_html(mode)
            + "".join(f"<div>{c}</div>" for c in charts))


def comparison_lines(mode: dict[str, Any]) -> list[str]:
    """One line per two-tower variant comparison of a mode (``a - b`` per metric)."""
    return [f"{c['comparison']}: {c['a']} - {c['b']}: " + ", ".join(
        f"{m} {_fmt(v['a'])} - {_fmt(v['b'])} = {v['diff']:+.4f}"
        for m, v in c.items() if isinstance(v, dict)) for c in mode.get("comparisons", [])]


def _comparisons_html(mode: dict[str, Any]) -> str:
    lines = comparison_lines(mode)
    if not lines:
        return ""
    return "<p>Two-tower variants (same run):</p><ul>" + "".join(
        f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def write_html(path: Path, payload: dict[str, Any]) -> Path:
    """Self-contained HTML report of every protocol in ``payload['results']``."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>ShopRec recall "
             "evaluation</title><style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}</style></head><body>",
             "<h1>ShopRec recall evaluation</h1>",
             f"<p>Generated {html.escape(str(payload.get('created_at', '')))}; "
             f"{html.escape(str(payload.get('notes', '')))}</p>"]
    for rec in payload.get("results", []):
        parts.append(f"<h2>{html.escape(rec['dataset'])} — {html.escape(rec['split'])}</h2>"
                     f"<p>{rec['interactions']} interactions, {rec['users']} users, "
                     f"{rec['items']} items; {rec['test_users']} test users, "
                     f"{rec['test_pairs']} held-out pairs. Fit seconds: "
                     f"{html.escape(json.dumps(_clean(rec['fit_seconds'])))}</p>")
        for name, err in rec.get("errors", {}).items():
            parts.append(f"<p>Note: {html.escape(name)}: {html.escape(err)}</p>")
        for mode_name, mode in rec["modes"].items():
            parts.append(_mode_section(rec, mode_name, mode))
    for name, reason in payload.get("missing", {}).items():
        parts.append(f"<p><b>{html.escape(name)} not evaluated:</b> {html.escape(reason)}</p>")
    if payload.get("swing_timing"):
        parts.append("<h2>Swing timing</h2><pre>"
                     f"{html.escape(json.dumps(_clean(payload['swing_timing']), indent=2))}</pre>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts))
    return path
