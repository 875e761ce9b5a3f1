"""The incident report: the log's rows of one space summed into figures and findings (JSON), and
that summary drawn as one self-contained HTML page with inline SVG plots an operator can publish.

Audience plane. Pure: rows in, JSON and text out. Findings answer "were we under a DDoS?" with
numbers: the peak rejected rate against the space's own baseline, and how concentrated the
rejected sources were; and "was the broadcast affected?" from the origin's media health.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rostra.audience.incident import TOP_PREFIXES, is_rejected
from rostra.store.incident import GaugeRow, IncidentRows

# the timeline keeps at most this many bins (a bin is one second in short spaces)
MAX_BINS = 3_600
# a flood: rejected requests per second at least this, and this many times the median second
ATTACK_MIN_REJECTED_PER_S = 20.0
ATTACK_PEAK_TO_BASELINE = 10.0
# one network sending most of what was rejected is one source, not a distributed attack
CONCENTRATED_SHARE = 0.5
# a segment this late, or speaker packets lost above this share, affected the broadcast
SEGMENT_STALL_S = 3.0
LOSS_AFFECTED_SHARE = 0.05
ORIGIN_COUNTERS = ("late_ticks", "late_ticks_over_frame", "dropped_program_frames", "segments_lost")
DEFENSE_GAUGES = ("admission_rate", "difficulty", "pow_mode")


def _iso(second: float) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def summarize(
    space: dict[str, Any], rows: IncidentRows, server_rows: IncidentRows, now_s: float
) -> dict[str, Any]:
    """The report's JSON. `server_rows` are requests naming no space, shown for the same span."""
    seconds = [r.second for r in rows.counts] + [g.second for g in rows.gauges]
    first = min(seconds, default=int(now_s))
    last = max(seconds, default=int(now_s))
    bin_s = max(1, -(-(last - first + 1) // MAX_BINS))
    bins = (last - first) // bin_s + 1
    timeline: dict[str, list[int]] = defaultdict(lambda: [0] * bins)
    totals: Counter[str] = Counter()
    by_endpoint: dict[str, Counter[str]] = defaultdict(Counter)
    rejected_by_second: Counter[int] = Counter()
    accepted_by_second: Counter[int] = Counter()
    for r in rows.counts:
        timeline[r.verdict][(r.second - first) // bin_s] += r.count
        totals[r.verdict] += r.count
        by_endpoint[r.endpoint][r.verdict] += r.count
        if is_rejected(r.verdict):
            rejected_by_second[r.second] += r.count
        else:
            accepted_by_second[r.second] += r.count
    prefixes = _top_prefixes(rows)
    origin = _origin(rows.gauges, first, bin_s)
    summary: dict[str, Any] = {
        "space": space,
        "generated_at": _iso(now_s),
        "window": {"from": _iso(first), "to": _iso(last + 1), "seconds": last - first + 1},
        "totals": dict(totals),
        "by_endpoint": {e: dict(c) for e, c in sorted(by_endpoint.items())},
        "rejected": {
            "total": sum(n for v, n in totals.items() if is_rejected(v)),
            "by_reason": {v: n for v, n in totals.most_common() if is_rejected(v)},
        },
        "timeline": {"start": _iso(first), "bin_s": bin_s, "verdicts": dict(timeline)},
        "top_prefixes": prefixes,
        "defense": {
            name: _binned(points, first, bin_s, max)
            for name, points in _series(rows.gauges, DEFENSE_GAUGES).items()
        },
        "origin": origin,
        "unattributed": _unattributed(server_rows, first, last),
    }
    summary["findings"] = _findings(summary, rejected_by_second, accepted_by_second, first, last)
    return summary


def _top_prefixes(rows: IncidentRows) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    for p in rows.prefixes:
        counts[p.prefix] += p.count
    total = sum(counts.values())
    return [
        {"prefix": prefix, "rejected": n, "share": round(n / total, 4)}
        for prefix, n in counts.most_common(TOP_PREFIXES)
    ]


def _series(gauges: list[GaugeRow], names: tuple[str, ...]) -> dict[str, list[list[float]]]:
    series: dict[str, dict[int, float]] = {name: {} for name in names}
    for g in gauges:
        if g.name in series:
            series[g.name][g.second] = g.value
    return {name: [[t, v] for t, v in sorted(points.items())] for name, points in series.items()}


def _binned(
    points: list[list[float]], first: int, bin_s: int, combine: Callable[[list[float]], float]
) -> list[list[float]]:
    """`[second, value]` points gathered into the timeline's bins (each at its bin's start)."""
    if bin_s == 1:
        return points
    bins: dict[float, list[float]] = defaultdict(list)
    for t, v in points:
        bins[first + (t - first) // bin_s * bin_s].append(v)
    return [[t, combine(values)] for t, values in sorted(bins.items())]


def _origin(gauges: list[GaugeRow], first: int, bin_s: int) -> dict[str, Any]:
    """Increments of the origin's cumulative counters and the newest segment's age, in the
    timeline's bins (summed, and the worst age)."""
    by_name: dict[str, dict[int, float]] = defaultdict(dict)
    for g in gauges:
        if g.name in ORIGIN_COUNTERS or g.name.startswith("packets_") or g.name == "segment_age_s":
            by_name[g.name][g.second] = g.value
    increments: dict[str, list[list[float]]] = {}
    totals: dict[str, float] = {}
    for name, points in by_name.items():
        ordered = sorted(points.items())
        if name == "segment_age_s":
            increments[name] = _binned([[t, round(v, 3)] for t, v in ordered], first, bin_s, max)
            continue
        # a restarted origin starts its counters at zero again: a drop is a new base
        steps = [
            [t, max(0.0, v - p if v >= p else v)] for (_, p), (t, v) in itertools.pairwise(ordered)
        ]
        increments[name] = _binned(steps, first, bin_s, sum)
        totals[name] = sum(v for _, v in steps)
    ages = [v for _, v in increments.get("segment_age_s", [])]
    return {
        "sampled_seconds": len({g.second for g in gauges if g.name in by_name}),
        "bin_s": bin_s,
        "series": increments,
        "totals": totals,
        "max_segment_age_s": round(max(ages, default=0.0), 3),
    }


def _unattributed(rows: IncidentRows, first: int, last: int) -> dict[str, Any]:
    by_endpoint: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows.counts:
        if first <= r.second <= last:
            by_endpoint[r.endpoint][r.verdict] += r.count
    inside = IncidentRows(prefixes=[p for p in rows.prefixes if first <= p.second <= last])
    return {
        "by_endpoint": {e: dict(c) for e, c in sorted(by_endpoint.items())},
        "top_prefixes": _top_prefixes(inside),
    }


def _findings(
    summary: dict[str, Any],
    rejected_by_second: Counter[int],
    accepted_by_second: Counter[int],
    first: int,
    last: int,
) -> dict[str, Any]:
    """A second of flood: at least ATTACK_MIN_REJECTED_PER_S rejected, and either far above the
    span's median second or more rejected than served."""
    per_second = [rejected_by_second.get(t, 0) for t in range(first, last + 1)]
    peak = max(per_second, default=0)
    peak_at = first + per_second.index(peak) if per_second else first
    baseline = float(statistics.median(per_second)) if per_second else 0.0
    attack_seconds = sum(
        1
        for t, n in enumerate(per_second, start=first)
        if n >= ATTACK_MIN_REJECTED_PER_S
        and (n >= ATTACK_PEAK_TO_BASELINE * max(1.0, baseline) or n > accepted_by_second[t])
    )
    prefixes = summary["top_prefixes"]
    top_share = prefixes[0]["share"] if prefixes else 0.0
    top3_share = round(sum(p["share"] for p in prefixes[:3]), 4)
    is_flood = attack_seconds > 0
    origin = summary["origin"]
    totals = origin["totals"]
    received = totals.get("packets_received", 0.0)
    lost = totals.get("packets_lost", 0.0)
    loss_share = lost / (received + lost) if received + lost else 0.0
    harms = [
        f"{totals[name]:.0f} {label}"
        for name, label in (
            ("dropped_program_frames", "program frames dropped"),
            ("segments_lost", "segments lost"),
        )
        if totals.get(name, 0) > 0
    ]
    if origin["max_segment_age_s"] > SEGMENT_STALL_S:
        harms.append(f"a gap of {origin['max_segment_age_s']:.1f} s between segments")
    if loss_share > LOSS_AFFECTED_SHARE:
        harms.append(f"{loss_share:.1%} of speakers' packets lost")
    all_requests = sum(summary["totals"].values())
    rejected = summary["rejected"]["total"]
    lines = [
        f"{all_requests} requests to this space; {rejected} rejected "
        f"({rejected / all_requests:.1%})."
        if all_requests
        else "No requests were recorded.",
        f"Peak: {peak} rejected requests in one second at {_iso(peak_at)}; "
        f"the median second had {baseline:g}.",
    ]
    if prefixes:
        lines.append(
            f"The top source prefix ({prefixes[0]['prefix']}) sent {top_share:.1%} of rejected "
            f"requests; the top three {top3_share:.1%}."
        )
    if is_flood and top_share >= CONCENTRATED_SHARE:
        lines.append(
            f"A flood during {attack_seconds} s, mostly from one network: an attack or a "
            "misbehaving client, not a distributed one."
        )
    elif is_flood:
        lines.append(
            f"A flood during {attack_seconds} s from many networks: consistent with a "
            "distributed attack (DDoS)."
        )
    else:
        lines.append(
            f"No flood: no second had {ATTACK_MIN_REJECTED_PER_S:g} or more rejected requests "
            "that were far above the median second or outnumbered those served."
        )
    if origin["sampled_seconds"] == 0:
        lines.append("The origin's media health was not recorded for this span.")
    elif harms:
        lines.append("The broadcast was affected: " + "; ".join(harms) + ".")
    else:
        strain = totals.get("late_ticks_over_frame", 0)
        lines.append(
            f"The broadcast was not affected: over {origin['sampled_seconds']} s sampled, no "
            "dropped program frame, no lost segment, no segment gap"
            + (f" (the mixer ran more than 20 ms late {strain:.0f} times)." if strain else ".")
        )
    return {
        "peak_rejected_per_s": peak,
        "peak_at": _iso(peak_at),
        "baseline_rejected_per_s": baseline,
        "attack_seconds": attack_seconds,
        "top_prefix_share": top_share,
        "top3_prefix_share": top3_share,
        "is_flood": is_flood,
        "is_concentrated": top_share >= CONCENTRATED_SHARE,
        "is_broadcast_affected": bool(harms),
        "lines": lines,
    }


# ---- the HTML page: one file, plots drawn as inline SVG ----

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
        (x_of(start_s + span_s * i / steps), _iso(start_s + span_s * i / steps)[11:19])
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
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Incident report: {_esc(space.get('id'))}</title><style>{_STYLE}</style></head>"
        "<body>" + "\n".join(sections) + "</body></html>\n"
    )
