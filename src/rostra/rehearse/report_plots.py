"""The plotted sections of the rehearsal's HTML report (listeners vs the reported count,
time to first audio and latency, join outcomes, stalls, speakers, the origin's health), and the
small HTML helpers the report's page shares with them.

Rehearsal plane. Pure: report.json in, escaped HTML out; a missing figure reads "no data".
"""

from __future__ import annotations

from html import escape
from typing import Any

from rostra.rehearse import report_svg as svg
from rostra.rehearse.report_data import (
    HEALTH_STATES,
    MAX_LINE_BINS,
    MAX_STACK_BINS,
    NO_DATA,
    Rows,
    as_dict,
    as_list,
    at_text,
    binned,
    column,
    figure_text,
    health_failures,
    health_runs,
    health_seconds,
    histogram_bars,
    join_layers,
    merged_spans,
    num,
    percent_text,
    quantile_s,
    seconds_text,
    stale_spans,
)

TRUTH_COLOR, REPORTED_COLOR = "#1e5aa8", "#c2410c"
TTFA_COLOR, LATENCY_COLOR = "#1e5aa8", "#7b3fa0"
DISTRIBUTIONS = (
    ("ttfa", "Time to first audio", "click to the first segment received", TTFA_COLOR),
    ("latency", "Latency to live", "wall clock minus the date-time of the audio played", "#7b3fa0"),
    ("pdt_lag", "Age of the first segment", "its PROGRAM-DATE-TIME lag at arrival", "#00796b"),
    ("progressive_ttfb", "Progressive stream: time to first byte", "stream.aac / .opus", "#5d4037"),
)
# gaps, problems and outages listed in words, the first ones (the plots show them all)
MAX_LISTED = 20
# the stall plot's axis shows at least 0..1 %
STALL_RATIO_MIN_AXIS = 0.01

SPEAKER_STATES = {
    "heard": svg.State("mix-minus continuous", "#2e7d32"),
    "gap": svg.State("gap", "#b3261e", "cross"),
}


def table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """A table of already escaped cells; columns in `numeric` align right."""
    numeric = numeric or set()
    header = "".join(f"<th scope='col'>{h}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{c}</td>" if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def section(key: str, heading: str, *body: str) -> str:
    return f"<section id='{key}'><h2>{escape(heading)}</h2>{''.join(body)}</section>"


def no_data(what: str) -> str:
    return f"<p class='nodata'>{escape(what)}: {NO_DATA}.</p>"


# ---- the plotted sections ----


def count_section(report: dict[str, Any], rows: Rows) -> str:
    heading = "Listeners: the truth and the reported count"
    if not rows.rows:
        return section("count", heading, no_data("Listener series"))
    summary = as_dict(report.get("summary"))
    check = as_dict(report.get("count_check"))
    bins = binned(rows, MAX_LINE_BINS)
    x = bins.centres()
    truth = bins.mean(column("truth"))
    reported = bins.mean(column("reported"))
    errors = bins.mean(column("reported_error"))
    bands: list[svg.Band] = []
    run: list[tuple[float, float, float]] = []
    for t, value, error in [*zip(x, reported, errors, strict=True), (0.0, None, None)]:
        if value is not None and error is not None:
            run.append((t, value * (1 - error), value * (1 + error)))
        elif run:
            bands.append(svg.Band("reported ± its stated error (1σ)", run, REPORTED_COLOR))
            run = []
    stale = stale_spans(rows, bins.bin_s)
    stale_s = sum(1 for r in rows.rows if r.get("stale") is True)
    plot = svg.line_plot(
        svg.Figure(
            "plot-count",
            "Simulated listeners live (truth) and the count the server reported",
            "The truth is the number of simulated listeners holding a ticket and playing; the "
            "reported count is read from state.json, with its stated error as a band; hatched "
            f"stretches are seconds when the count was stale ({stale_s} s in all).",
            svg.time_axis(rows.duration_s)[1],
            "listeners",
        ),
        rows.duration_s,
        [
            svg.Line(
                "truth (simulated listeners live)", list(zip(x, truth, strict=True)), TRUTH_COLOR
            ),
            svg.Line(
                "reported (state.json)", list(zip(x, reported, strict=True)), REPORTED_COLOR, "6 4"
            ),
        ],
        bands=bands,
        spans=[svg.Span(a, b, f"count stale from t = {a:g} s to {b:g} s") for a, b in stale],
        span_style=svg.State("count stale", "#757575", "hatch"),
    )
    verdict = check.get("ok")
    within = (
        "<span class='pass'>✔ within</span>"
        if verdict is True
        else "<span class='fail'>✘ outside</span>"
        if verdict is False
        else NO_DATA
    )
    text = (
        f"<p>Peak: {escape(figure_text(summary.get('listeners_peak')))} simulated listeners. "
        f"Worst count error against the truth: {escape(percent_text(check.get('worst_error')))} "
        f"{escape(at_text(report, check.get('worst_at_t')))}; the bound is "
        f"±{escape(percent_text(check.get('error_bound')))} with a new count visible within "
        f"{escape(seconds_text(check.get('visibility_delay_s')))}: {within}. "
        f"The count was stale during {stale_s:,} s.</p>"
    )
    return section("count", heading, plot, text)


def distributions_section(report: dict[str, Any], rows: Rows) -> str:
    summary = as_dict(report.get("summary"))
    distributions = as_dict(report.get("distributions"))
    parts: list[str] = []
    for key, title, what, color in DISTRIBUTIONS:
        histogram = distributions.get(key)
        bars = histogram_bars(histogram)
        parts.append(f"<h3>{escape(title)}</h3>")
        if not bars:
            parts.append(no_data(title))
            continue
        p50 = num(summary.get(f"{key}_p50_s"))
        p95 = num(summary.get(f"{key}_p95_s"))
        p50 = quantile_s(histogram, 0.5) if p50 is None else p50
        p95 = quantile_s(histogram, 0.95) if p95 is None else p95
        markers = [(name, v) for name, v in (("p50", p50), ("p95", p95)) if v is not None]
        count = sum(c for _, _, c in bars)
        stated = ", ".join(f"{name} {v:.3g} s" for name, v in markers)
        parts.append(
            svg.histogram_plot(
                svg.Figure(
                    f"plot-{key}",
                    f"Distribution of {title.lower()}",
                    f"{title} ({what}) over {count} samples, in 5 % wide buckets; {stated}.",
                    "seconds (log scale)",
                    "samples",
                ),
                bars,
                markers,
                color,
            )
        )
        maximum = num(as_dict(histogram).get("max_s"))
        parts.append(
            f"<p>{count} samples; {escape(stated)}; max {escape(seconds_text(maximum))}.</p>"
        )
    parts.append(
        f"<p>Progressive stream: time to first byte p95 "
        f"{escape(seconds_text(summary.get('progressive_ttfb_p95_s')))}; gaps of more than a "
        f"second: {escape(figure_text(summary.get('progressive_gaps')))}.</p>"
    )
    parts.append("<h3>Over time</h3>")
    parts.append(_quantiles_over_time(rows))
    return section("distributions", "Time to first audio and latency", *parts)


def _quantiles_over_time(rows: Rows) -> str:
    bins = binned(rows, MAX_LINE_BINS)
    x = bins.centres()
    lines = [
        svg.Line(name, list(zip(x, bins.mean(column(key)), strict=True)), color, dash)
        for name, key, color, dash in (
            ("time to first audio p50", "ttfa_p50_s", TTFA_COLOR, ""),
            ("time to first audio p95", "ttfa_p95_s", TTFA_COLOR, "6 4"),
            ("latency p50", "latency_p50_s", LATENCY_COLOR, ""),
            ("latency p95", "latency_p95_s", LATENCY_COLOR, "6 4"),
        )
    ]
    if not any(y is not None for line in lines for _, y in line.points):
        return no_data("Time to first audio and latency over time")
    return svg.line_plot(
        svg.Figure(
            "plot-quantiles",
            "Time to first audio and latency to live over time",
            "Per second: p50 (solid) and p95 (dashed) of the time to first audio of the "
            "listeners who started then, and of the latency of the audio being played.",
            svg.time_axis(rows.duration_s)[1],
            "seconds",
        ),
        rows.duration_s,
        lines,
    )


def joins_section(report: dict[str, Any], rows: Rows) -> str:
    summary = as_dict(report.get("summary"))
    joins = {str(k): v for k, v in as_dict(summary.get("joins")).items() if num(v) is not None}
    bins = binned(rows, MAX_STACK_BINS)
    layers = join_layers(bins)
    parts = []
    if layers:
        unit = "joins per second" + (f" (mean over {bins.bin_s:g} s)" if bins.bin_s > 1 else "")
        parts.append(
            svg.stacked_plot(
                svg.Figure(
                    "plot-joins",
                    "Join outcomes over time",
                    "Join answers per second, stacked by outcome: "
                    + ", ".join(layer.name for layer in layers)
                    + ".",
                    svg.time_axis(rows.duration_s)[1],
                    unit,
                ),
                rows.duration_s,
                bins.starts,
                bins.bin_s,
                layers,
            )
        )
    else:
        parts.append(no_data("Join outcomes over time"))
    total = sum(float(v) for v in joins.values())
    if joins:
        parts.append(
            table(
                ["outcome", "joins", "share"],
                [
                    [
                        escape(k),
                        escape(figure_text(v)),
                        escape(percent_text(float(v) / total if total else None)),
                    ]
                    for k, v in sorted(joins.items(), key=lambda kv: -float(kv[1]))
                ],
                {1, 2},
            )
        )
    parts.append(
        f"<p>Join success: {escape(percent_text(summary.get('join_success')))}. Server errors "
        "(5xx other than 503, each a bug): "
        f"{escape(figure_text(summary.get('server_errors')))}"
        f"{escape(_kinds(as_dict(summary.get('server_error_kinds'))))}.</p>"
    )
    errors = bins.sum(column("server_errors"))
    if any(e for e in errors):
        parts.append(
            svg.line_plot(
                svg.Figure(
                    "plot-server-errors",
                    "Server errors over time",
                    "Answers with a 5xx status other than 503, per bin.",
                    svg.time_axis(rows.duration_s)[1],
                    "errors per second" if bins.bin_s == 1 else f"errors per {bins.bin_s:g} s",
                ),
                rows.duration_s,
                [
                    svg.Line(
                        "server errors", list(zip(bins.centres(), errors, strict=True)), "#b3261e"
                    )
                ],
            )
        )
    return section("joins", "Join outcomes", *parts)


def _kinds(kinds: dict[str, Any]) -> str:
    """` (join:500 × 3, media:502 × 1)`: the server errors by request kind and status."""
    listed = [f"{k} × {figure_text(v)}" for k, v in sorted(kinds.items()) if num(v)]
    return f" ({_listed(listed)})" if listed else ""


def stalls_section(report: dict[str, Any], rows: Rows) -> str:
    summary = as_dict(report.get("summary"))
    bins = binned(rows, MAX_LINE_BINS)
    stall_s = bins.sum(column("stall_s"))
    played_s = bins.sum(column("played_s"))
    # as the summary's stall ratio: stalled over listened (played + stalled), so an outage,
    # when nothing plays, reads 100 %
    ratio = [
        (s or 0.0) / ((s or 0.0) + (p or 0.0)) if (s or 0.0) + (p or 0.0) > 0 else None
        for s, p in zip(stall_s, played_s, strict=True)
    ]
    text = (
        f"<p>Stall ratio over the run: {escape(percent_text(summary.get('stall_ratio')))}; "
        f"stalls: {escape(figure_text(summary.get('stalls')))}.</p>"
    )
    if not any(r is not None for r in ratio):
        return section("stalls", "Stalls", no_data("Stalls over time"), text)
    down = [
        svg.Span(a, b, f"origin down from t = {a:g} s to {b:g} s")
        for a, b, s in health_runs(rows)[0]
        if s == "down"
    ]
    plot = svg.line_plot(
        svg.Figure(
            "plot-stalls",
            "Stalls over time",
            "Seconds the simulated players spent stalled over the seconds they were listening "
            "(played and stalled), per bin; hatched stretches are seconds when the origin "
            "was down.",
            svg.time_axis(rows.duration_s)[1],
            "stalled / listened (%)",
        ),
        rows.duration_s,
        [
            svg.Line(
                "stall seconds / (played + stall seconds)",
                list(zip(bins.centres(), ratio, strict=True)),
                "#b3261e",
            )
        ],
        spans=down,
        span_style=svg.State("origin down", HEALTH_STATES["down"].color, "cross"),
        y_max=svg.nice_max(max([STALL_RATIO_MIN_AXIS, *(r for r in ratio if r is not None)])),
        y_format=lambda v: f"{v * 100:.3g}",
    )
    return section("stalls", "Stalls", plot, text)


def _listed(items: list[str]) -> str:
    more = f"; and {len(items) - MAX_LISTED:,} more" if len(items) > MAX_LISTED else ""
    return "; ".join(items[:MAX_LISTED]) + more


def speakers_section(report: dict[str, Any], rows: Rows) -> str:
    speakers = [as_dict(s) for s in as_list(report.get("speakers"))]
    if not speakers:
        return section("speakers", "Speakers' continuity", no_data("Speakers"))
    lanes = []
    cells = []
    gap_count, merged = 0, False
    for index, speaker in enumerate(speakers):
        name = str(speaker.get("name") or f"speaker {index + 1}")
        gaps = [
            (float(g[0]), float(g[1]))
            for g in as_list(speaker.get("gaps"))
            if len(as_list(g)) == 2 and num(g[0]) is not None and num(g[1]) is not None
        ]
        drawn = merged_spans(gaps, rows.duration_s)
        gap_count += len(gaps)
        merged = merged or len(drawn) < len(gaps)
        segments = [(0.0, rows.duration_s, "heard"), *((a, b, "gap") for a, b in drawn)]
        lanes.append(svg.Lane(name, segments))
        hears = speaker.get("hears_itself")
        cells.append(
            [
                escape(name),
                "<span class='pass'>✔ ok</span>"
                if speaker.get("ok") is True
                else "<span class='fail'>✘ problem</span>",
                escape(f"{len(gaps):,} ({seconds_text(sum(b - a for a, b in gaps))})"),
                escape(_listed([f"{a:g}–{b:g} s" for a, b in gaps]) or "none"),
                "<span class='fail'>yes</span>"
                if hears is True
                else "no"
                if hears is False
                else NO_DATA,
                escape(_listed([str(p) for p in as_list(speaker.get("problems"))]) or "none"),
            ]
        )
    plot = svg.lane_plot(
        svg.Figure(
            "plot-speakers",
            "Speakers' continuity",
            "One row per speaker bot: the stretches of its mix-minus (everyone but itself) that "
            f"arrived continuously, and its gaps ({gap_count:,} in all"
            + (", those close together drawn as one)." if merged else ")."),
            svg.time_axis(rows.duration_s)[1],
        ),
        rows.duration_s,
        lanes,
        SPEAKER_STATES,
    )
    head = ["speaker", "result", "gaps (total)", "gaps at", "hears itself", "problems"]
    return section("speakers", "Speakers' continuity", plot, table(head, cells))


def health_section(rows: Rows) -> str:
    heading = "The origin's health"
    if not rows.rows:
        return section("health", heading, no_data("Origin health"))
    runs, bin_s = health_runs(rows)
    seconds = health_seconds(rows)
    binning = f" Each {bin_s:g} s bin shows its worst state." if bin_s > 1 else ""
    plot = svg.lane_plot(
        svg.Figure(
            "plot-health",
            "The origin's health over time",
            "The origin's health as sampled each second: "
            + "; ".join(f"{state.label} {seconds[key]:,} s" for key, state in HEALTH_STATES.items())
            + "."
            + binning,
            svg.time_axis(rows.duration_s)[1],
        ),
        rows.duration_s,
        [svg.Lane("origin", runs)],
        HEALTH_STATES,
    )
    failures = health_failures(rows)
    items = "".join(
        f"<li>{escape(HEALTH_STATES[state].label)} from t = {a:g} s to {b:g} s"
        f"{escape(f' (failed: {failed})' if failed else '')}</li>"
        for a, b, state, failed in failures[:MAX_LISTED]
    )
    if len(failures) > MAX_LISTED:
        items += f"<li>and {len(failures) - MAX_LISTED:,} more</li>"
    text = (
        f"<ul>{items}</ul>"
        if items
        else "<p>✔ Never degraded or down while sampled.</p>"
        if seconds["none"] < len(rows.rows)
        else ""
    )
    return section("health", heading, plot, text)
