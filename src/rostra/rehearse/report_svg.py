"""Plots for the rehearsal's HTML report as inline SVG: lines over time with a band and shaded
spans, stacked areas, state lanes and log-scale histograms. Each plot carries its `<title>` and
`<desc>`, axis labels with units, and a legend in words and line or fill patterns, so it reads
without colour. Every text is escaped here.

Rehearsal plane. Pure string building: numbers in, SVG text out; no script, no external resource.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH = 960
LEFT, RIGHT, TOP, BOTTOM = 100, 24, 34, 46
PLOT_HEIGHT = 200
LANE_HEIGHT, LANE_GAP = 20, 8
FONT = 'font-family="system-ui,sans-serif" font-size="12"'
AXIS_COLOR = "#555"
GRID_COLOR = "#e4e4e4"
TICKS = 6
LEGEND_FIRST_Y, LEGEND_ROW, LEGEND_CHAR_W = 16, 18, 6.6
Y_TICKS = 4
LOG_TICKS_MIN = 3
# a histogram's axis reaches a little past its outer bars
HISTOGRAM_PAD = 1.08
SECONDS_PER_MINUTE = 60
# past this many seconds the time axis counts minutes
MINUTES_AXIS_FROM_S = 600
MAX_LABEL_CHARS = 13

# a fill's pattern drawn over its colour, so areas differ without colour too
PATTERNS = {
    "solid": "",
    "hatch": '<path d="M0,6 L6,0" stroke="#fff" stroke-width="1.6"/>',
    "cross": '<path d="M0,6 L6,0 M0,0 L6,6" stroke="#fff" stroke-width="1.2"/>',
    "dots": '<circle cx="3" cy="3" r="1.3" fill="#fff"/>',
    "bars": '<path d="M3,0 L3,6" stroke="#fff" stroke-width="1.6"/>',
}


@dataclass(frozen=True, slots=True)
class Figure:
    """What every plot states: a unique `key` (the ids inside the page), its title and a
    sentence saying what it shows, and its axes' labels with units."""

    key: str
    title: str
    desc: str
    x_label: str
    y_label: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    """A series of `(x, y)` points; a `None` y breaks the line (no data there)."""

    name: str
    points: Sequence[tuple[float, float | None]]
    color: str
    dash: str = ""  # an SVG stroke-dasharray
    width: float = 2.0


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded range `(x, low, high)` drawn under the lines."""

    name: str
    points: Sequence[tuple[float, float, float]]
    color: str


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of the x axis marked over the whole plot's height (stale count, outage)."""

    start: float
    end: float
    label: str


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of a stacked area: a value per bin."""

    name: str
    values: Sequence[float]
    color: str
    pattern: str = "solid"


@dataclass(frozen=True, slots=True)
class State:
    """How a state of a lane is drawn and named in the legend."""

    label: str
    color: str
    pattern: str = "solid"


@dataclass(frozen=True, slots=True)
class Lane:
    """One row of a lane plot: `(start, end, state)` segments on the time axis."""

    label: str
    segments: Sequence[tuple[float, float, str]]


@dataclass(slots=True)
class _Canvas:
    """An SVG being built: its height, its pattern definitions and its parts."""

    figure: Figure
    height: float
    defs: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    legend: list[str] = field(default_factory=list)
    legend_height: float = 0.0  # the legend's rows past the first push the plot down

    def pattern(self, color: str, kind: str) -> str:
        """A fill: the colour alone, or the colour under a white pattern (defined once)."""
        if not PATTERNS.get(kind):
            return color
        pattern_id = f"{self.figure.key}-{kind}-{color.lstrip('#')}"
        if not any(f'id="{pattern_id}"' in d for d in self.defs):
            self.defs.append(
                f'<pattern id="{pattern_id}" width="6" height="6" patternUnits="userSpaceOnUse">'
                f'<rect width="6" height="6" fill="{color}"/>{PATTERNS[kind]}</pattern>'
            )
        return f"url(#{pattern_id})"

    def render(self) -> str:
        key = escape(self.figure.key)
        defs = f"<defs>{''.join(self.defs)}</defs>" if self.defs else ""
        body = "".join(self.parts)
        if self.legend_height:
            body = f'<g transform="translate(0 {self.legend_height:.0f})">{body}</g>'
        height = self.height + self.legend_height
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="plot" '
            f'aria-labelledby="{key}-title {key}-desc" viewBox="0 0 {WIDTH} {height:.0f}" '
            f'width="100%" {FONT}>'
            f'<title id="{key}-title">{escape(self.figure.title)}</title>'
            f'<desc id="{key}-desc">{escape(self.figure.desc)}</desc>'
            f"{defs}{''.join(self.legend)}{body}</svg>"
        )


def nice_step(span: float, ticks: int = TICKS) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `ticks` intervals."""
    raw = max(span, 1e-9) / ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * 0.999)


def nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = nice_step(value, Y_TICKS)
    return math.ceil(value / step - 1e-9) * step


def number(value: float) -> str:
    """An axis or marker figure: thousands separators for whole numbers, else 3 digits."""
    if value == int(value) and abs(value) < 1e15:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def time_axis(duration_s: float) -> tuple[list[tuple[float, str]], str]:
    """Tick positions (seconds) with their labels, and the axis' label with its unit."""
    if duration_s > MINUTES_AXIS_FROM_S:
        step_min = max(1.0, nice_step(duration_s / SECONDS_PER_MINUTE))
        step_s = step_min * SECONDS_PER_MINUTE
        label, unit = "time since the start (min)", SECONDS_PER_MINUTE
    else:
        step_s = max(1.0, nice_step(duration_s))
        label, unit = "time since the start (s)", 1
    count = int(duration_s / step_s + 1e-9)
    return [(i * step_s, number(i * step_s / unit)) for i in range(count + 1)], label


class _Scale:
    """Plot coordinates: x over [x_min, x_max] (linear or log), y over [0, y_max]."""

    def __init__(
        self,
        x_min: float,
        x_max: float,
        y_max: float,
        top: float,
        height: float,
        *,
        log: bool,
        is_integer: bool = False,
    ) -> None:
        self.log = log
        self.x_min = math.log10(x_min) if log else x_min
        self.x_span = (math.log10(x_max) if log else x_max) - self.x_min or 1.0
        self.y_max = y_max or 1.0
        step = nice_step(self.y_max, Y_TICKS)
        self.y_step = max(step, 1.0) if is_integer else step
        self.top = top
        self.height = height

    def x(self, value: float) -> float:
        position = math.log10(value) if self.log else value
        return LEFT + (position - self.x_min) / self.x_span * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return self.top + self.height - min(value, self.y_max) / self.y_max * self.height


def _axes(
    canvas: _Canvas,
    scale: _Scale,
    x_ticks: list[tuple[float, str]],
    y_format: Callable[[float], str] | None,
) -> None:
    bottom = scale.top + scale.height
    parts = canvas.parts
    if y_format is not None:
        step = scale.y_step
        for i in range(int(scale.y_max / step + 1e-9) + 1):
            y = scale.y(i * step)
            parts.append(
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                f'stroke="{GRID_COLOR}"/><text x="{LEFT - 6}" y="{y + 4:.1f}" '
                f'text-anchor="end">{escape(y_format(i * step))}</text>'
            )
        parts.append(
            f'<text transform="translate(14 {scale.top + scale.height / 2:.0f}) rotate(-90)" '
            f'text-anchor="middle">{escape(canvas.figure.y_label)}</text>'
        )
        parts.append(
            f'<line x1="{LEFT}" y1="{scale.top}" x2="{LEFT}" y2="{bottom}" stroke="{AXIS_COLOR}"/>'
        )
    for value, label in x_ticks:
        x = scale.x(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" '
            f'stroke="{AXIS_COLOR}"/><text x="{x:.1f}" y="{bottom + 17}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" '
        f'stroke="{AXIS_COLOR}"/><text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" '
        f'y="{bottom + 36}" text-anchor="middle">{escape(canvas.figure.x_label)}</text>'
    )


def _legend(canvas: _Canvas, items: list[tuple[str, str]]) -> None:
    """`(label, sample)` items in rows above the plot; a sample is SVG drawn in 0..20 × -8..2."""
    x, y = float(LEFT), LEGEND_FIRST_Y
    for label, sample in items:
        width = 40 + LEGEND_CHAR_W * len(label)
        if x > LEFT and x + width > WIDTH - RIGHT:
            x, y = float(LEFT), y + LEGEND_ROW
        canvas.legend.append(
            f'<g transform="translate({x:.0f} {y:.0f})">{sample}'
            f'<text x="26" y="0">{escape(label)}</text></g>'
        )
        x += width
    canvas.legend_height = y - LEGEND_FIRST_Y


def _line_sample(color: str, dash: str, width: float) -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<line x1="0" y1="-4" x2="20" y2="-4" stroke="{color}" stroke-width="{width}"{dashed}/>'


def _fill_sample(fill: str) -> str:
    return f'<rect x="0" y="-10" width="20" height="11" fill="{fill}" stroke="{AXIS_COLOR}"/>'


def _polylines(line: Line, scale: _Scale) -> list[str]:
    runs: list[list[str]] = [[]]
    for x, y in line.points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append(f"{scale.x(x):.1f},{scale.y(y):.1f}")
    dashed = f' stroke-dasharray="{line.dash}"' if line.dash else ""
    return [
        f'<polyline points="{" ".join(run)}" fill="none" stroke="{line.color}" '
        f'stroke-width="{line.width}"{dashed}><title>{escape(line.name)}</title></polyline>'
        if len(run) > 1
        else f'<circle cx="{run[0].split(",")[0]}" cy="{run[0].split(",")[1]}" r="1.8" '
        f'fill="{line.color}"><title>{escape(line.name)}</title></circle>'
        for run in runs
        if run
    ]


def line_plot(
    figure: Figure,
    duration_s: float,
    lines: Sequence[Line],
    *,
    bands: Sequence[Band] = (),
    spans: Sequence[Span] = (),
    span_style: State | None = None,
    y_max: float | None = None,
    y_format: Callable[[float], str] = number,
) -> str:
    """Lines over time since the start, with bands under them and marked spans behind."""
    values = [y for line in lines for _, y in line.points if y is not None]
    values += [high for band in bands for _, _, high in band.points]
    canvas = _Canvas(figure, TOP + PLOT_HEIGHT + BOTTOM)
    scale = _Scale(0, max(duration_s, 1.0), y_max or nice_max(max(values, default=0.0)), TOP,
                   PLOT_HEIGHT, log=False)  # fmt: skip
    ticks, _ = time_axis(duration_s)
    span_style = span_style or State("", "#9e9e9e", "hatch")
    fill = canvas.pattern(span_style.color, span_style.pattern)
    for span in spans:
        x0, x1 = scale.x(span.start), scale.x(span.end)
        canvas.parts.append(
            f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1.0):.1f}" '
            f'height="{PLOT_HEIGHT}" fill="{fill}" opacity="0.45">'
            f"<title>{escape(span.label)}</title></rect>"
        )
    _axes(canvas, scale, ticks, y_format)
    for band in bands:
        upper = [f"{scale.x(x):.1f},{scale.y(high):.1f}" for x, _, high in band.points]
        lower = [f"{scale.x(x):.1f},{scale.y(low):.1f}" for x, low, _ in reversed(band.points)]
        if upper:
            canvas.parts.append(
                f'<polygon points="{" ".join(upper + lower)}" fill="{band.color}" '
                f'opacity="0.3"><title>{escape(band.name)}</title></polygon>'
            )
    for line in lines:
        canvas.parts += _polylines(line, scale)
    legend = [(line.name, _line_sample(line.color, line.dash, line.width)) for line in lines]
    legend += [(band.name, _fill_sample(band.color)) for band in bands if band.points]
    if spans and span_style.label:
        legend.append((span_style.label, _fill_sample(fill)))
    _legend(canvas, legend)
    return canvas.render()


def stacked_plot(
    figure: Figure, duration_s: float, starts: Sequence[float], bin_s: float, layers: list[Layer]
) -> str:
    """Layers stacked bin by bin (each bin drawn as a step `bin_s` wide), first layer lowest."""
    totals = [sum(layer.values[i] for layer in layers) for i in range(len(starts))]
    canvas = _Canvas(figure, TOP + PLOT_HEIGHT + BOTTOM)
    scale = _Scale(0, max(duration_s, 1.0), nice_max(max(totals, default=0.0)), TOP, PLOT_HEIGHT,
                   log=False)  # fmt: skip
    _axes(canvas, scale, time_axis(duration_s)[0], number)
    base = [0.0] * len(starts)
    legend: list[tuple[str, str]] = []
    for layer in layers:
        top = [b + v for b, v in zip(base, layer.values, strict=True)]
        upper, lower = [], []
        for i, start in enumerate(starts):
            x0, x1 = scale.x(start), scale.x(min(start + bin_s, duration_s))
            upper += [f"{x0:.1f},{scale.y(top[i]):.1f}", f"{x1:.1f},{scale.y(top[i]):.1f}"]
            lower += [f"{x0:.1f},{scale.y(base[i]):.1f}", f"{x1:.1f},{scale.y(base[i]):.1f}"]
        fill = canvas.pattern(layer.color, layer.pattern)
        total = sum(layer.values) * bin_s
        canvas.parts.append(
            f'<polygon points="{" ".join(upper + lower[::-1])}" fill="{fill}">'
            f"<title>{escape(layer.name)}: {number(round(total))} in all</title></polygon>"
        )
        legend.append((layer.name, _fill_sample(fill)))
        base = top
    _legend(canvas, legend)
    return canvas.render()


def lane_plot(
    figure: Figure, duration_s: float, lanes: Sequence[Lane], states: dict[str, State]
) -> str:
    """One row per lane; each segment filled by its state (colour and pattern), labelled."""
    height = TOP + len(lanes) * (LANE_HEIGHT + LANE_GAP) + BOTTOM
    canvas = _Canvas(figure, height)
    inner = len(lanes) * (LANE_HEIGHT + LANE_GAP)
    scale = _Scale(0, max(duration_s, 1.0), 1.0, TOP, inner, log=False)
    _axes(canvas, scale, time_axis(duration_s)[0], None)
    for row, lane in enumerate(lanes):
        y = TOP + row * (LANE_HEIGHT + LANE_GAP) + LANE_GAP / 2
        label = lane.label
        short = label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"
        canvas.parts.append(
            f'<text x="{LEFT - 6}" y="{y + LANE_HEIGHT / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{escape(label)}</title>{escape(short)}</text>"
        )
        for start, end, state in lane.segments:
            style = states.get(state, State(state, "#bdbdbd"))
            x0, x1 = scale.x(start), scale.x(end)
            canvas.parts.append(
                f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 1.5):.1f}" '
                f'height="{LANE_HEIGHT}" fill="{canvas.pattern(style.color, style.pattern)}">'
                f"<title>{escape(label)}: {escape(style.label)} from {number(start)} s "
                f"to {number(end)} s</title></rect>"
            )
    _legend(
        canvas,
        [(s.label, _fill_sample(canvas.pattern(s.color, s.pattern))) for s in states.values()],
    )
    return canvas.render()


def _log_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """1, 2, 5 times powers of ten; every whole mantissa when the range is too narrow."""
    ticks = _log_ticks_of(low, high, (1, 2, 5))
    return ticks if len(ticks) >= LOG_TICKS_MIN else _log_ticks_of(low, high, range(1, 10))


def _log_ticks_of(low: float, high: float, mantissas: Sequence[int]) -> list[tuple[float, str]]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in mantissas:
            value = mantissa * 10.0**exponent
            if low <= value <= high:
                ticks.append((value, f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"))
    return ticks


def histogram_plot(
    figure: Figure,
    bars: Sequence[tuple[float, float, int]],
    markers: Sequence[tuple[str, float]],
    color: str,
) -> str:
    """Bars `(low_s, high_s, count)` on a log time axis; markers (p50, p95) as labelled lines."""
    low = min(b[0] for b in bars) / HISTOGRAM_PAD
    high = max(b[1] for b in bars) * HISTOGRAM_PAD
    canvas = _Canvas(figure, TOP + PLOT_HEIGHT + BOTTOM)
    scale = _Scale(low, high, nice_max(max(b[2] for b in bars)), TOP + 14, PLOT_HEIGHT - 14,
                   log=True, is_integer=True)  # fmt: skip
    _axes(canvas, scale, _log_ticks(low, high), number)
    for start, end, count in bars:
        x0, x1 = scale.x(start), scale.x(end)
        y = scale.y(count)
        canvas.parts.append(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 0.4, 0.8):.1f}" '
            f'height="{scale.top + scale.height - y:.1f}" fill="{color}">'
            f"<title>{_seconds(start)} to {_seconds(end)}: {count}</title></rect>"
        )
    for row, (name, value) in enumerate(markers):
        x = scale.x(min(max(value, low), high))
        y_text = TOP + 10 + row * 13
        canvas.parts.append(
            f'<line x1="{x:.1f}" y1="{y_text + 2}" x2="{x:.1f}" y2="{scale.top + scale.height}" '
            f'stroke="#111" stroke-width="1.5" stroke-dasharray="{"4 3" if row else "none"}"/>'
            f'<text x="{x + 4:.1f}" y="{y_text}">{escape(name)} {escape(_seconds(value))}</text>'
        )
    return canvas.render()


def _seconds(value: float) -> str:
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"
