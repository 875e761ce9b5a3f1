"""The rehearsal's report.json: per-second series (truth against the reported count, joins,
time to first audio, stalls, health), the summary the verdict reads, distributions, speakers,
the count check, unit costs for `rostra plan --from`, and the verdict itself.

Rehearsal plane (a client). Pure but for `write`: what was observed in, a JSON-ready dict out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rostra.rehearse.observations import Histogram, Observations, Second
from rostra.rehearse.report_html import write_report
from rostra.rehearse.verdict import Result, verdict_of
from rostra.rehearse.watch import HealthReading, StateReading

REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Generator:
    """The load generator's own figures: its local processes' CPU seconds, and their memory's
    growth from the curve's start to its peak (workers on other machines are not counted)."""

    processes: int
    cpu_s: float | None = None
    rss_bytes: int | None = None


@dataclass(slots=True)
class Watched:
    """What the orchestrator's watchers read, keyed by Unix second."""

    states: Mapping[int, StateReading] = field(default_factory=dict)
    healths: Mapping[int, HealthReading] = field(default_factory=dict)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def series(
    observations: Observations, watched: Watched, *, start_s: int, end_s: int
) -> list[dict[str, Any]]:
    """One row per wall-clock second from `start_s` to `end_s` (Unix seconds), `t` from 0."""
    rows = []
    for key in range(start_s, end_s + 1):
        second = observations.seconds.get(key)
        state = watched.states.get(key)
        health = watched.healths.get(key)
        seen = second or Second()
        reported = state.listeners if state is not None else None
        rows.append(
            {
                "t": key - start_s,
                "truth": second.live if second is not None else None,
                "reported": reported,
                "reported_error": state.error
                if state is not None and reported is not None
                else None,
                "stale": bool(state.is_stale) if state is not None else False,
                "joins": dict(seen.joins),
                "ttfa_p50_s": _round(seen.ttfa.quantile(0.5)),
                "ttfa_p95_s": _round(seen.ttfa.quantile(0.95)),
                "latency_p50_s": _round(seen.latency.quantile(0.5)),
                "latency_p95_s": _round(seen.latency.quantile(0.95)),
                "stalls": seen.stalls,
                "stall_s": round(seen.stall_s, 3),
                "played_s": round(seen.played_s, 3),
                "server_errors": sum(seen.server_errors.values()),
                "health": _health(state, health),
                "health_failed": health.failed if health is not None else None,
            }
        )
    return rows


def _health(state: StateReading | None, health: HealthReading | None) -> str | None:
    if health is not None:
        return health.health
    return state.health if state is not None else None


def join_success(observations: Observations, *, end_s: int, within_s: float) -> float | None:
    """Listeners admitted within `within_s` of starting, over those that started at least
    that long before the end (all of them when the run was shorter)."""
    started: Counter[str] = Counter()
    eligible: Counter[str] = Counter()
    for key, second in observations.seconds.items():
        started.update(second.players)
        if key <= end_s - within_s:
            eligible.update(second.players)
    counts = eligible if eligible["started"] else started
    if not counts["started"]:
        return None
    return min(1.0, counts["admitted-in-time"] / counts["started"])


def summary(
    observations: Observations,
    rows: Sequence[Mapping[str, Any]],
    *,
    end_s: int,
    within_s: float,
    count_error_max: float | None,
) -> dict[str, Any]:
    total = observations.total()
    heard_s = total.played_s + total.stall_s
    truths = [row["truth"] for row in rows if row["truth"] is not None]
    return {
        "listeners_peak": max(truths, default=0),
        "joins": dict(total.joins),
        "join_success": _round(join_success(observations, end_s=end_s, within_s=within_s)),
        "ttfa_p50_s": _round(total.ttfa.quantile(0.5)),
        "ttfa_p95_s": _round(total.ttfa.quantile(0.95)),
        "latency_p50_s": _round(total.latency.quantile(0.5)),
        "latency_p95_s": _round(total.latency.quantile(0.95)),
        "stall_ratio": _round(total.stall_s / heard_s, 6) if heard_s > 0 else None,
        "stalls": total.stalls,
        "progressive_ttfb_p95_s": _round(total.progressive_ttfb.quantile(0.95)),
        "progressive_gaps": total.progressive_gaps,
        "server_errors": sum(total.server_errors.values()),
        "server_error_kinds": dict(total.server_errors),
        "attacks": dict(total.attacks),
        "count_error_max": count_error_max,
        "generator_behind_ratio": _round(total.behind / total.steps, 6) if total.steps else None,
        "generator_errors": dict(total.generator_errors),
    }


def distributions(observations: Observations) -> dict[str, Any]:
    total = observations.total()
    kinds: dict[str, Histogram] = {
        "ttfa": total.ttfa,
        "latency": total.latency,
        "pdt_lag": total.pdt_lag,
        "progressive_ttfb": total.progressive_ttfb,
    }
    return {name: histogram.to_json() for name, histogram in kinds.items()}


def unit_costs(
    generator: Generator, total: Second, *, listeners_peak: int, duration_s: float
) -> dict[str, float]:
    """The unit costs this rehearsal measured (docs/rehearse.md): playlist, segment (or LL-HLS
    part) and header bytes as the simulated players received them; the load generator's CPU and
    memory per simulated listener, when its processes ran here; others are left out."""
    costs: dict[str, float] = {}
    transfer = total.transfer
    kinds = ("playlist", "segment", "part")  # parts: LL-HLS players
    for kind in kinds:
        if transfer[f"{kind}:count"]:
            costs[f"{kind}_bytes"] = round(transfer[f"{kind}:body"] / transfer[f"{kind}:count"])
    answers = sum(transfer[f"{kind}:count"] for kind in kinds)
    if answers:
        heads = sum(transfer[f"{kind}:head"] for kind in kinds)
        costs["response_header_bytes"] = round(heads / answers)
    if listeners_peak <= 0 or duration_s <= 0:
        return costs
    if generator.cpu_s:
        cores = generator.cpu_s / duration_s
        costs["listeners_per_generator_core"] = round(listeners_peak / cores, 1)
    if generator.rss_bytes:
        costs["generator_bytes_per_listener"] = round(generator.rss_bytes / listeners_peak)
    return costs


def iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build(
    *,
    scenario: Mapping[str, Any],
    target_urls: Mapping[str, str],
    started_s: float,
    ended_s: float,
    rows: list[dict[str, Any]],
    summary_figures: dict[str, Any],
    observations: Observations,
    speakers: list[dict[str, Any]],
    count: dict[str, Any],
    results: Sequence[Result],
    generator: Generator,
) -> dict[str, Any]:
    """The report.json dict (the contract the HTML report and `rostra plan --from` read)."""
    total = observations.total()
    duration_s = round(ended_s - started_s, 3)
    return {
        "version": REPORT_VERSION,
        "verdict": verdict_of(results),
        "failures": [result.to_json() for result in results if not result.ok],
        "targets": [result.to_json() for result in results],
        "scenario": dict(scenario),
        "target_urls": dict(target_urls),
        "started_at": iso(started_s),
        "ended_at": iso(ended_s),
        "duration_s": duration_s,
        "summary": summary_figures,
        "series": rows,
        "distributions": distributions(observations),
        "speakers": speakers,
        "count_check": count,
        "unit_costs": unit_costs(
            generator,
            total,
            listeners_peak=int(summary_figures.get("listeners_peak") or 0),
            duration_s=duration_s,
        ),
        "generator": {
            "processes": generator.processes,
            "steps": total.steps,
            "behind": total.behind,
            "cpu_s": _round(generator.cpu_s, 3),
        },
    }


def write(directory: Path, report: dict[str, Any]) -> None:
    """report.json and report.html, each written whole (see `report_html.write_report`)."""
    write_report(directory, report)
