"""The rehearsal's verdict: each target of the scenario against what was measured, GO when all
pass, NO-GO naming each failed one with its figure (and, for health and server failures, when it
began); and the count check of `state.json` against the truth.

Rehearsal plane (a client). Pure: figures in, results out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rostra.rehearse.scenario import Targets

GO = "GO"
NO_GO = "NO-GO"
EXIT_GO = 0
EXIT_NO_GO = 1
EXIT_COULD_NOT_RUN = 2
# the count's own bound when the scenario gives none: twice the error the server states, + 2 %
STATED_ERROR_FACTOR = 2.0
COUNT_ERROR_FLOOR = 0.02
HEALTH_GRACE_S = 2


@dataclass(frozen=True, slots=True)
class Result:
    target: str
    figure: float | None
    limit: float | None
    ok: bool
    text: str
    at_t: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "figure": self.figure,
            "limit": self.limit,
            "ok": self.ok,
            "at_t": self.at_t,
            "text": self.text,
        }


def verdict_of(results: Sequence[Result]) -> str:
    return GO if all(result.ok for result in results) else NO_GO


def exit_code(verdict: str) -> int:
    return EXIT_GO if verdict == GO else EXIT_NO_GO


def count_check(
    rows: Sequence[Mapping[str, Any]],
    *,
    visibility_s: float,
    window_s: float,
    error_max: float | None,
    slack: int,
) -> dict[str, Any]:
    """The reported count at each second `t` against the truth: it may show any truth of
    [t − visibility, t] (a new listener takes that long to be seen) and, as listeners leave,
    any up to the window before that (a listener gone stays counted until the window passes
    their last heartbeat); `slack` listeners more or fewer are forgiven (attackers' genuine
    tickets). The error is the distance to that range over the truth; each second's bound is
    `error_max`, or twice the error the server states plus 2 %."""
    truth = {int(row["t"]): int(row["truth"]) for row in rows if row.get("truth") is not None}
    worst: tuple[float, int, float] | None = None  # (error over bound, t, error)
    worst_bound = error_max if error_max is not None else COUNT_ERROR_FLOOR
    is_ok = True
    checked = 0
    for row in rows:
        reported = row.get("reported")
        if reported is None or row.get("stale"):
            continue
        t = int(row["t"])
        recent = _known(truth, range(t - int(visibility_s), t + 1))
        kept = _known(truth, range(t - int(visibility_s + window_s), t + 1))
        if not recent:
            continue
        checked += 1
        low, high = max(0, min(recent) - slack), max(kept) + slack
        nearest = min(max(reported, low), high)
        error = abs(reported - nearest) / max(nearest, 1)
        stated = row.get("reported_error") or 0.0
        bound = (
            error_max
            if error_max is not None
            else STATED_ERROR_FACTOR * float(stated) + COUNT_ERROR_FLOOR
        )
        if error > bound:
            is_ok = False
        if worst is None or error - bound > worst[0]:
            worst = (error - bound, t, error)
            worst_bound = bound
    return {
        "error_bound": round(worst_bound, 6),
        "visibility_delay_s": visibility_s,
        "window_s": window_s,
        "worst_error": round(worst[2], 6) if worst is not None else None,
        "worst_at_t": worst[1] if worst is not None else None,
        "seconds_checked": checked,
        "ok": is_ok and checked > 0,
    }


def _known(truth: Mapping[int, int], seconds: range) -> list[int]:
    """The truth over `seconds`: none live before the rehearsal's first second, unknown in a
    second no load generator reported."""
    first = min(truth, default=0)
    return [truth.get(s, 0) for s in seconds if s in truth or s < first]


def judge(
    targets: Targets,
    summary: Mapping[str, Any],
    series: Sequence[Mapping[str, Any]],
    speakers: Sequence[Mapping[str, Any]],
    count: Mapping[str, Any],
) -> list[Result]:
    """Every target's result, in the scenario's order."""
    results = [
        _ttfa(targets, summary),
        _stalls(targets, summary),
        _join_success(targets, summary),
        _count(count),
        _server_errors(targets, summary, series),
    ]
    if targets.speakers_continuity and speakers:
        results.append(_speakers(speakers))
    if targets.origin_health:
        results.append(_health(series))
    return results


def _ttfa(targets: Targets, summary: Mapping[str, Any]) -> Result:
    limit = targets.ttfa_p95_s
    figure = summary.get("ttfa_p95_s")
    if figure is None:
        return Result(
            "ttfa_p95", None, limit, False, "time to first audio: no listener heard audio"
        )
    ok = figure <= limit
    return Result(
        "ttfa_p95",
        figure,
        limit,
        ok,
        f"time to first audio p95: {figure:.2f} s (target ≤ {limit:g} s)",
    )


def _stalls(targets: Targets, summary: Mapping[str, Any]) -> Result:
    limit = targets.stall_ratio_max
    figure = summary.get("stall_ratio")
    if figure is None:
        return Result("stall_ratio", None, limit, False, "stall ratio: no audio was played")
    return Result(
        "stall_ratio",
        figure,
        limit,
        figure <= limit,
        f"stall ratio: {figure * 100:.2f} % of listening time (target ≤ {limit * 100:g} %)",
    )


def _join_success(targets: Targets, summary: Mapping[str, Any]) -> Result:
    limit = targets.join_success_min
    figure = summary.get("join_success")
    within = f"join success within {targets.join_within_s:g} s"
    if figure is None:
        return Result("join_success", None, limit, False, f"{within}: no listener tried to join")
    return Result(
        "join_success",
        figure,
        limit,
        figure >= limit,
        f"{within}: {figure * 100:.1f} % (target ≥ {limit * 100:g} %)",
    )


def _count(count: Mapping[str, Any]) -> Result:
    figure = count.get("worst_error")
    bound = count.get("error_bound")
    at_t = count.get("worst_at_t")
    if not count.get("seconds_checked"):
        return Result("count_error", None, bound, False, "count vs truth: state.json never read")
    where = f" at t={at_t} s" if at_t is not None else ""
    return Result(
        "count_error",
        figure,
        bound,
        bool(count.get("ok")),
        f"count vs truth: worst error {(figure or 0) * 100:.1f} %{where} "
        f"(target ≤ {(bound or 0) * 100:.1f} %, seen within {count.get('visibility_delay_s'):g} s)",
        at_t=at_t if not count.get("ok") else None,
    )


def _server_errors(
    targets: Targets, summary: Mapping[str, Any], series: Sequence[Mapping[str, Any]]
) -> Result:
    figure = int(summary.get("server_errors") or 0)
    limit = targets.server_errors_max
    first = next((int(row["t"]) for row in series if row.get("server_errors")), None)
    where = f", the first at t={first} s" if first is not None and figure else ""
    return Result(
        "server_errors",
        figure,
        limit,
        figure <= limit,
        f"server errors (5xx other than 503): {figure}{where} (target ≤ {limit})",
        at_t=first if figure > limit else None,
    )


def _speakers(speakers: Sequence[Mapping[str, Any]]) -> Result:
    failed = [speaker for speaker in speakers if not speaker.get("ok")]
    problems = "; ".join(p for speaker in failed for p in speaker.get("problems", [])[:3])
    text = f"speakers' continuity: {len(speakers) - len(failed)} of {len(speakers)} continuous"
    return Result(
        "speakers_continuity",
        len(failed),
        0,
        not failed,
        f"{text} ({problems})" if problems else text,
    )


def _health(series: Sequence[Mapping[str, Any]]) -> Result:
    """Origin health: /healthz answered 200 every second. The origin down (no connection) fails
    at once; a 503 or a slow answer fails when it lasts HEALTH_GRACE_S seconds in a row (a
    probe that one busy second delayed is not an outage). A failure names when it began."""
    watched = [row for row in series if row.get("health") is not None]
    if not watched:
        return Result("origin_health", None, 0, False, "origin health: /healthz never read")
    bad = [row for row in watched if row["health"] != "ok"]
    health = {int(row["t"]): row.get("health") for row in series}
    first = next((row for row in bad if _is_outage(row, health)), None)
    if first is None:
        forgiven = f" ({len(bad)} slow or failed second(s) forgiven)" if bad else ""
        text = f"origin health: ok for all {len(watched)} s watched{forgiven}"
        return Result("origin_health", 0, 0, True, text)
    state = "down" if first["health"] == "down" else "degraded"
    failed = f" ({first['health_failed']})" if first.get("health_failed") else ""
    return Result(
        "origin_health",
        len(bad),
        0,
        False,
        f"origin {state} from t={int(first['t'])} s{failed}, {len(bad)} s in all (target: 0 s)",
        at_t=int(first["t"]),
    )


def _is_outage(row: Mapping[str, Any], health: Mapping[int, str | None]) -> bool:
    if row["health"] == "down":
        return True
    start = int(row["t"])
    return all(health.get(t) not in ("ok", None) for t in range(start, start + HEALTH_GRACE_S))
