"""The report's figures shaped for plotting and written as text: the per-second series read
tolerantly (any figure may be null or missing, and then reads "no data"), binned to a bounded
number of points, runs of a state (origin health, stale count) merged into spans, and
log-spaced histogram buckets turned into bars.

Rehearsal plane. Pure: report.json in, plain numbers and text out.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rostra.rehearse.observations import BUCKET_BASE_S, BUCKET_GROWTH, ZERO_BUCKET
from rostra.rehearse.report_svg import Layer, State, number

NO_DATA = "no data"
# from here on, seconds are written whole (7,200 s rather than 7.2e+03 s)
WHOLE_SECONDS_FROM = 100
# at most this many points per line plot, and bars in a histogram
MAX_LINE_BINS = 480
MAX_STACK_BINS = 240
MAX_HISTOGRAM_BARS = 120
MAX_LANE_SEGMENTS = 400
# the "below 1 ms" bucket drawn from half a millisecond
ZERO_BUCKET_LOW_S = BUCKET_BASE_S / 2

# worst first: a bin holding several states shows the worst
HEALTH_STATES = {
    "down": State("down", "#b3261e", "cross"),
    "degraded": State("degraded", "#d98c00", "hatch"),
    "ok": State("ok", "#2e7d32"),
    "none": State("no data", "#bdbdbd", "dots"),
}
JOIN_STYLES = {
    "admitted": State("admitted", "#2e7d32"),
    "queued": State("queued (waiting room)", "#1e5aa8", "dots"),
    "challenged": State("challenged (proof-of-work)", "#7b3fa0", "bars"),
    "rate-limited": State("rate-limited (429)", "#d98c00", "hatch"),
    "transport": State("transport error", "#212121", "cross"),
}
ERROR_STYLES = (
    State("", "#b3261e", "cross"),
    State("", "#e57373", "hatch"),
    State("", "#7f1d1d", "dots"),
    State("", "#f06292", "bars"),
)
OTHER_STYLES = (State("", "#8d6e63", "hatch"), State("", "#5d4037", "dots"))


def num(value: object) -> float | None:
    """A finite number, or None (null, missing, a string, a boolean, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def figure_text(value: object, unit: str = "") -> str:
    figure = num(value)
    if figure is None:
        return NO_DATA
    return f"{number(round(figure, 4))}{' ' + unit if unit else ''}"


def percent_text(value: object) -> str:
    number = num(value)
    return NO_DATA if number is None else f"{number * 100:.3g} %"


def seconds_text(value: object) -> str:
    number = num(value)
    if number is None:
        return NO_DATA
    return f"{number:.3g} s" if abs(number) < WHOLE_SECONDS_FROM else f"{number:,.0f} s"


def at_text(report: dict[str, Any], t: object) -> str:
    """`t = 17 s (14:02:17 UTC)`: seconds since the start, and the wall clock when known."""
    seconds = num(t)
    if seconds is None:
        return ""
    text = f"at t = {seconds:g} s"
    started = report.get("started_at")
    if isinstance(started, str):
        try:
            moment = datetime.fromisoformat(started.replace("Z", "+00:00"))
        except ValueError:
            return text
        text += f" ({(moment + timedelta(seconds=seconds)).strftime('%H:%M:%S')} UTC)"
    return text


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Rows:
    """The series' rows (each with a numeric `t`) in time order, and the run's duration."""

    rows: list[dict[str, Any]]
    duration_s: float

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> Rows:
        rows = [r for r in as_list(report.get("series")) if num(as_dict(r).get("t")) is not None]
        rows.sort(key=lambda r: float(r["t"]))
        last = float(rows[-1]["t"]) + 1 if rows else 0.0
        duration = num(report.get("duration_s"))
        return cls(rows, max(duration if duration is not None else 0.0, last))


@dataclass(frozen=True, slots=True)
class Bins:
    """Rows grouped into bins `bin_s` seconds wide; `starts` are the bins' first seconds."""

    bin_s: float
    starts: list[float]
    groups: list[list[dict[str, Any]]]

    def sum(self, get: Callable[[dict[str, Any]], float | None]) -> list[float | None]:
        """Per bin, the sum of the known values (None when none is known)."""
        sums: list[float | None] = []
        for group in self.groups:
            values = [v for v in (get(r) for r in group) if v is not None]
            sums.append(sum(values) if values else None)
        return sums

    def mean(self, get: Callable[[dict[str, Any]], float | None]) -> list[float | None]:
        means: list[float | None] = []
        for group in self.groups:
            values = [v for v in (get(r) for r in group) if v is not None]
            means.append(sum(values) / len(values) if values else None)
        return means

    def centres(self) -> list[float]:
        return [start + self.bin_s / 2 for start in self.starts]


def binned(rows: Rows, max_bins: int) -> Bins:
    """The rows in at most `max_bins` bins of whole seconds."""
    bin_s = float(max(1, math.ceil(rows.duration_s / max_bins)))
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows.rows:
        groups.setdefault(int(float(row["t"]) // bin_s), []).append(row)
    keys = sorted(groups)
    return Bins(bin_s, [k * bin_s for k in keys], [groups[k] for k in keys])


def column(name: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda row: num(row.get(name))


def _runs(states: Sequence[tuple[float, str]], step_s: float) -> list[tuple[float, float, str]]:
    """`(start, state)` points merged into `(start, end, state)` runs."""
    runs: list[tuple[float, float, str]] = []
    for start, state in states:
        if runs and runs[-1][2] == state and start <= runs[-1][1] + 1e-9:
            runs[-1] = (runs[-1][0], start + step_s, state)
        else:
            runs.append((start, start + step_s, state))
    return runs


def health_runs(rows: Rows) -> tuple[list[tuple[float, float, str]], float]:
    """The origin's health as runs (`ok`, `degraded`, `down`, `none` for no sample) to draw,
    and the bin they were drawn in: when it changes too often to draw each second, each bin
    shows its worst state."""
    runs = _runs([(float(r["t"]), _health(r)) for r in rows.rows], 1.0)
    if len(runs) <= MAX_LANE_SEGMENTS:
        return runs, 1.0
    bins = binned(rows, MAX_LANE_SEGMENTS)
    order = list(HEALTH_STATES)
    worst = [
        (start, min((_health(r) for r in group), key=order.index))
        for start, group in zip(bins.starts, bins.groups, strict=True)
    ]
    return _runs(worst, bins.bin_s), bins.bin_s


def _health(row: dict[str, Any]) -> str:
    state = row.get("health")
    return state if isinstance(state, str) and state in HEALTH_STATES else "none"


def health_seconds(rows: Rows) -> Counter[str]:
    """Seconds sampled in each state."""
    return Counter(_health(r) for r in rows.rows)


def health_failures(rows: Rows) -> list[tuple[float, float, str, str]]:
    """Each run of `down` or `degraded` seconds, with the checks that failed in it."""
    runs: list[tuple[float, float, str, set[str]]] = []
    for row in rows.rows:
        t, state, failed = float(row["t"]), _health(row), row.get("health_failed")
        if runs and runs[-1][2] == state and t <= runs[-1][1] + 1e-9:
            runs[-1] = (runs[-1][0], t + 1, state, runs[-1][3])
        else:
            runs.append((t, t + 1, state, set()))
        if failed:
            runs[-1][3].add(str(failed))
    return [
        (start, end, state, ", ".join(sorted(names)))
        for start, end, state, names in runs
        if state in ("down", "degraded")
    ]


def merged_spans(
    spans: Sequence[tuple[float, float]], duration_s: float
) -> list[tuple[float, float]]:
    """Spans in time order; when there are too many to draw, those closer than a plot's bin
    join into one."""
    ordered = sorted(spans)
    if len(ordered) <= MAX_LANE_SEGMENTS:
        return ordered
    min_gap_s = duration_s / MAX_LANE_SEGMENTS
    merged: list[tuple[float, float]] = []
    for start, end in ordered:
        if merged and start <= merged[-1][1] + min_gap_s:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def stale_spans(rows: Rows, min_gap_s: float) -> list[tuple[float, float]]:
    """Stretches where the reported count was stale; stretches closer than `min_gap_s` merge."""
    spans: list[tuple[float, float]] = []
    for row in rows.rows:
        if row.get("stale") is True:
            t = float(row["t"])
            if spans and t <= spans[-1][1] + min_gap_s:
                spans[-1] = (spans[-1][0], t + 1)
            else:
                spans.append((t, t + 1))
    return spans


def join_layers(bins: Bins) -> list[Layer]:
    """Join outcomes per second (the bin's mean), admitted first, errors last; each error
    status and other outcome gets its own shade and pattern."""
    per_bin: list[defaultdict[str, float]] = []
    for group in bins.groups:
        counts: defaultdict[str, float] = defaultdict(float)
        for row in group:
            for outcome, count in as_dict(row.get("joins")).items():
                counts[str(outcome)] += num(count) or 0.0
        per_bin.append(counts)
    totals: defaultdict[str, float] = defaultdict(float)
    for counts in per_bin:
        for outcome, count in counts.items():
            totals[outcome] += count
    known = list(JOIN_STYLES)
    order = sorted(
        (o for o in totals if totals[o] > 0),
        key=lambda o: (known.index(o) if o in known else len(known) + o.startswith("error"), o),
    )
    layers = []
    errors = others = 0
    for outcome in order:
        if outcome in JOIN_STYLES:
            style = JOIN_STYLES[outcome]
        elif outcome.startswith("error"):
            style, errors = ERROR_STYLES[errors % len(ERROR_STYLES)], errors + 1
        else:
            style, others = OTHER_STYLES[others % len(OTHER_STYLES)], others + 1
        values = [counts[outcome] / bins.bin_s for counts in per_bin]
        name = style.label or outcome.replace("error:", "error ")
        layers.append(Layer(name, values, style.color, style.pattern))
    return layers


def _bucket_low_s(index: int) -> float:
    return ZERO_BUCKET_LOW_S if index == ZERO_BUCKET else BUCKET_BASE_S * BUCKET_GROWTH**index


def buckets(histogram: object) -> dict[int, int]:
    """A histogram's `{"<index>": count}` buckets with the malformed ones left out."""
    found: dict[int, int] = {}
    for key, count in as_dict(as_dict(histogram).get("buckets")).items():
        value = num(count)
        if value is not None and value > 0 and str(key).lstrip("-").isdigit():
            found[int(key)] = int(value)
    return found


def histogram_bars(histogram: object) -> list[tuple[float, float, int]]:
    """`(low_s, high_s, count)` bars: neighbouring buckets merged so there are at most
    MAX_HISTOGRAM_BARS; the "below 1 ms" bucket stays a bar of its own."""
    counts = buckets(histogram)
    bars: list[tuple[float, float, int]] = []
    if ZERO_BUCKET in counts:
        bars.append((ZERO_BUCKET_LOW_S, BUCKET_BASE_S, counts.pop(ZERO_BUCKET)))
    counts = {i: c for i, c in counts.items() if i >= 0}
    if not counts:
        return bars
    first, last = min(counts), max(counts)
    width = max(1, math.ceil((last - first + 1) / MAX_HISTOGRAM_BARS))
    merged: Counter[int] = Counter()
    for index, count in counts.items():
        merged[(index - first) // width] += count
    for group in sorted(merged):
        low = first + group * width
        bars.append((_bucket_low_s(low), _bucket_low_s(low + width), merged[group]))
    return bars


def quantile_s(histogram: object, q: float) -> float | None:
    """The middle of the bucket holding the `q` quantile (as the rehearsal computes it)."""
    counts = buckets(histogram)
    total = sum(counts.values())
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= q * total:
            if index == ZERO_BUCKET:
                return 0.0
            return float(BUCKET_BASE_S * BUCKET_GROWTH ** (index + 0.5))
    return None
