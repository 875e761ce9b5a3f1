"""The incident report drawn as one self-contained HTML page an operator can publish: the summary
of `incident_report` in tables and inline SVG plots, with no script and no external resource.

Audience plane. Pure: the summary's JSON in, HTML text out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rostra.audience.incident_report import ORIGIN_COUNTERS

PLOT_W, PLOT_H, MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 1000, 240, 60, 40, 22, 28
VERDICT_COLORS = {
    "admitted": "#2e7d32",
    "queued": "#1e88e5",
    "ok": "#b0bec5",
    "bad-ticket": "#fb8c00",
    "rate-limited": "#e53935",
    "challenged": "#8e24aa",
    "proof-failed": "#4a148c",
    "proof-spent": "#d81b60",
    "server-error": "#000000",
}
OTHER_COLORS = ("#8d6e63", "#6d4c41", "#a1887f", "#5d4037", "#bcaaa4", "#795548")
LINE_COLORS = ("#1e88e5", "#e53935", "#2e7d32", "#8e24aa", "#fb8c00", "#00897b")


def _clock_time(second: float) -> str:
    """An axis label: the UTC time of day, to the second."""
    return datetime.fromtimestamp(second, UTC).strftime("%H:%M:%S")


def _esc(text: object) -> str:
    return (
        str(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def _color(verdict: str, index: int) -> str:
    return VERDICT_COLORS.get(verdict, OTHER_COLORS[index % len(OTHER_COLORS)])


def _number(value: float) -> str:
    """An axis label: whole numbers with thousands separators, else three significant digits."""
    return f"{value:,.0f}" if value == int(value) or abs(value) >= 1000 else f"{value:.3g}"


def _y(value: float, y_max: float) -> float:
    return PLOT_H - value / y_max * (PLOT_H - MARGIN_T)


def _axes(y_max: float, x_labels: list[tuple[float, str]], unit: str) -> list[str]:
    parts = [
        f'<line x1="{MARGIN_L}" y1="{PLOT_H}" x2="{PLOT_W}" y2="{PLOT_H}" stroke="#555"/>',
        f'<line x1="{MARGIN_L}" y1="{MARGIN_T}" x2="{MARGIN_L}" y2="{PLOT_H}" stroke="#555"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = _y(fraction, 1.0)
        parts.append(
            f'<text x="{MARGIN_L - 6}" y="{y + 4:.0f}" text-anchor="end">'
            f"{_esc(_number(fraction * y_max))}</text>"
        )
    for x, label in x_labels:
        parts.append(
            f'<text x="{x:.0f}" y="{PLOT_H + 18}" text-anchor="middle">{_esc(label)}</text>'
        )
    parts.append(f'<text x="4" y="12">{_esc(unit)}</text>')
    return parts


def _svg(parts: list[str], legend: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{color}"></i>{_esc(name)}</span>'
        for name, color in legend
    )
    return (
        f'<svg viewBox="0 0 {PLOT_W + MARGIN_R} {PLOT_H + MARGIN_B}" width="100%" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="sans-serif">'
        + "".join(parts)
        + f"</svg><div class='legend'>{items}</div>"
    )


def _time_labels(start_s: float, span_s: float, x_of: Any) -> list[tuple[float, str]]:
    steps = 6
    return [
        (x_of(start_s + span_s * i / steps), _clock_time(start_s + span_s * i / steps))
        for i in range(steps + 1)
    ]


def stacked_bars(verdicts: dict[str, list[int]], start_s: float, bin_s: int) -> str:
    """Requests per bin, one colour per verdict, stacked."""
    bins = max((len(v) for v in verdicts.values()), default=0)
    if bins == 0:
        return "<p>No requests recorded.</p>"
    heights = [sum(v[i] for v in verdicts.values()) for i in range(bins)]
    y_max = max(max(heights), 1)
    width = (PLOT_W - MARGIN_L) / bins
    parts: list[str] = []
    order = sorted(verdicts, key=lambda v: (v not in VERDICT_COLORS, v))
    for i in range(bins):
        y = float(PLOT_H)
        for index, verdict in enumerate(order):
            n = verdicts[verdict][i]
            if n:
                h = PLOT_H - _y(n, y_max)
                y -= h
                parts.append(
                    f'<rect x="{MARGIN_L + i * width:.2f}" y="{y:.2f}" '
                    f'width="{max(width, 0.5):.2f}"'
                    f' height="{h:.2f}" fill="{_color(verdict, index)}">'
                    f"<title>{_esc(verdict)}: {n}</title></rect>"
                )
    span_s = bins * bin_s

    def x_of(t: float) -> float:
        return MARGIN_L + (t - start_s) / span_s * (PLOT_W - MARGIN_L)

    unit = "requests per second" if bin_s == 1 else f"requests per {bin_s} s"
    parts += _axes(y_max, _time_labels(start_s, span_s, x_of), unit)
    return _svg(parts, [(v, _color(v, i)) for i, v in enumerate(order)])


def lines(
    series: dict[str, list[list[float]]],
    start_s: float,
    end_s: float,
    unit: str,
    *,
    empty: str = "Not recorded.",
) -> str:
    """One polyline per named series of `[second, value]` points."""
    drawn = {name: points for name, points in series.items() if points}
    if not drawn:
        return f"<p class='muted'>{_esc(empty)}</p>"
    y_max = max(max(v for _, v in points) for points in drawn.values()) or 1.0
    span_s = max(end_s - start_s, 1.0)

    def x_of(t: float) -> float:
        return MARGIN_L + (t - start_s) / span_s * (PLOT_W - MARGIN_L)

    parts: list[str] = []
    legend: list[tuple[str, str]] = []
    for index, (name, points) in enumerate(drawn.items()):
        color = LINE_COLORS[index % len(LINE_COLORS)]
        coords = " ".join(f"{x_of(t):.1f},{_y(v, y_max):.1f}" for t, v in points)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"/>'
        )
        legend.append((name, color))
    parts += _axes(y_max, _time_labels(start_s, span_s, x_of), unit)
    return _svg(parts, legend)


def horizontal_bars(items: list[tuple[str, float]], unit: str) -> str:
    if not items:
        return "<p>None.</p>"
    row_h, label_w = 22, 220
    height = row_h * len(items) + 10
    top = max(v for _, v in items) or 1.0
    parts = []
    for i, (label, value) in enumerate(items):
        w = value / top * (PLOT_W - label_w - 80)
        y = 5 + i * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_esc(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="#e53935"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{_esc(f"{value:g}")} {_esc(unit)}</text>'
        )
    return (
        f'<svg viewBox="0 0 {PLOT_W} {height}" width="100%" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="sans-serif">'
        + "".join(parts)
        + "</svg>"
    )


def _table(rows: list[list[object]], head: list[str]) -> str:
    header = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
.verdict{background:#f5f5f5;border-left:4px solid #555;padding:.6em 1em}
.verdict.bad{border-color:#e53935}.verdict.good{border-color:#2e7d32}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td:not(:first-child){text-align:right}.legend{font-size:12px;margin:.3em 0 0 60px}
.key{margin-right:1em;white-space:nowrap}.key i{display:inline-block;width:10px;height:10px;
margin-right:4px}.muted{color:#666;font-size:.9em}
"""


def render_html(summary: dict[str, Any]) -> str:
    """The whole report as one HTML page: no script, no external resource."""
    space = summary["space"]
    findings = summary["findings"]
    timeline = summary["timeline"]
    start_s = datetime.fromisoformat(timeline["start"]).timestamp()
    end_s = start_s + summary["window"]["seconds"]
    is_bad = findings["is_flood"] or findings["is_broadcast_affected"]
    rejected = summary["rejected"]["by_reason"]
    endpoints = summary["by_endpoint"]
    verdict_names = sorted({v for c in endpoints.values() for v in c})
    origin = summary["origin"]["series"]
    bin_s = int(timeline["bin_s"])
    packets = {k.removeprefix("packets_"): v for k, v in origin.items() if k.startswith("packets_")}
    health = {k: origin[k] for k in ORIGIN_COUNTERS if k in origin}
    defense = summary["defense"]
    junk = summary["unattributed"]["by_endpoint"]
    sections = [
        f"<h1>Incident report: {_esc(space.get('title', space.get('id')))}</h1>",
        f"<p class='muted'>Space {_esc(space.get('id'))} · {_esc(space.get('status', ''))} · "
        f"from {_esc(summary['window']['from'])} to {_esc(summary['window']['to'])} · "
        f"generated {_esc(summary['generated_at'])}</p>",
        f"<div class='verdict {'bad' if is_bad else 'good'}'>"
        + "".join(f"<p>{_esc(line)}</p>" for line in findings["lines"])
        + "</div>",
        "<h2>Requests by verdict over time</h2>",
        stacked_bars(timeline["verdicts"], start_s, int(timeline["bin_s"])),
        "<h2>What was rejected, and why</h2>",
        _table([[reason, n] for reason, n in rejected.items()], ["reason", "requests"])
        if rejected
        else "<p>Nothing was rejected.</p>",
        "<h3>By endpoint</h3>",
        _table(
            [[e, *(c.get(v, 0) for v in verdict_names)] for e, c in endpoints.items()],
            ["endpoint", *verdict_names],
        ),
        "<h2>Top source prefixes of rejected requests</h2>",
        horizontal_bars(
            [(p["prefix"], p["rejected"]) for p in summary["top_prefixes"]], "rejected"
        ),
        "<h2>Admission rate and proof-of-work difficulty</h2>",
        lines(
            {"admission rate (joins/s)": defense.get("admission_rate", [])},
            start_s,
            end_s,
            "joins/s",
        ),
        lines(
            {"difficulty (max number)": defense.get("difficulty", [])},
            start_s,
            end_s,
            "max number",
            empty="Proof-of-work was not asked for in this span.",
        ),
        "<h2>Was the broadcast affected?</h2>",
        f"<p>{_esc(findings['lines'][-1])}</p>",
        lines(health, start_s, end_s, "per second" if bin_s == 1 else f"per {bin_s} s"),
        lines({"segment age (s)": origin.get("segment_age_s", [])}, start_s, end_s, "seconds"),
        lines(
            packets,
            start_s,
            end_s,
            "speaker packets per second",
            empty="No speaker packets in this span.",
        ),
        "<h2>Requests naming no space, in the same span</h2>",
        _table(
            [[e, ", ".join(f"{v}: {n}" for v, n in c.items())] for e, c in junk.items()],
            ["endpoint", "verdicts"],
        )
        if junk
        else "<p>None.</p>",
        "<h2>Moderation</h2>",
        _table(
            [
                [
                    e.get("at"),
                    f"{e.get('actor')} ({e.get('actor_role')})",
                    e.get("action"),
                    f"{e.get('target')} {e.get('target_name', '')}".strip(),
                ]
                for e in summary.get("moderation", [])
            ],
            ["at", "who", "what", "whom"],
        )
        if summary.get("moderation")
        else "<p>No moderation acts.</p>",
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Incident report: {_esc(space.get('id'))}</title><style>{_STYLE}</style></head>"
        "<body>" + "\n".join(sections) + "</body></html>\n"
    )
