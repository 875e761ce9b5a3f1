"""The incident report: the log's rows of one space summed into figures and findings (JSON);
`incident_report_html` draws that summary as a page.

Audience plane. Pure: rows in, JSON out. Findings answer "were we under a DDoS?" with
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
    space: dict[str, Any],
    rows: IncidentRows,
    server_rows: IncidentRows,
    now_s: float,
    moderation: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report's JSON. `server_rows` are requests naming no space, shown for the same span;
    `moderation` the space's moderation log (who muted, removed, blocked whom, when)."""
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
        "moderation": list(moderation or []),
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
