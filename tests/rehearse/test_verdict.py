"""The rehearsal's verdict and its count check, on figures made by hand: GO when every target
holds; NO-GO naming each failed target with its figure, and the time an outage began; the
honest count held to the truth within the visibility delay, the presence window and its error."""

from __future__ import annotations

from typing import Any

from rostra.rehearse.scenario import Targets
from rostra.rehearse.verdict import GO, NO_GO, count_check, exit_code, judge, verdict_of

GOOD_SUMMARY: dict[str, Any] = {
    "ttfa_p95_s": 1.5,
    "stall_ratio": 0.0,
    "join_success": 1.0,
    "server_errors": 0,
}
GOOD_COUNT: dict[str, Any] = {
    "worst_error": 0.004,
    "error_bound": 0.03,
    "worst_at_t": 7,
    "visibility_delay_s": 10,
    "seconds_checked": 30,
    "ok": True,
}
SPEAKERS = [{"name": "voice-1", "ok": True, "problems": []}]


def rows(healths: list[str | None], *, errors_at: int | None = None) -> list[dict[str, Any]]:
    return [
        {
            "t": t,
            "health": health,
            "health_failed": None if health == "ok" else "unreachable",
            "server_errors": 3 if t == errors_at else 0,
        }
        for t, health in enumerate(healths)
    ]


def test_all_targets_met_is_go() -> None:
    results = judge(Targets(), GOOD_SUMMARY, rows(["ok"] * 30), SPEAKERS, GOOD_COUNT)
    assert [r.target for r in results] == [
        "ttfa_p95",
        "stall_ratio",
        "join_success",
        "count_error",
        "server_errors",
        "speakers_continuity",
        "origin_health",
    ]
    assert verdict_of(results) == GO
    assert exit_code(GO) == 0


def test_no_go_names_each_failed_target_with_its_figure() -> None:
    summary = dict(GOOD_SUMMARY, join_success=0.42, ttfa_p95_s=12.3, server_errors=3)
    speakers = [{"name": "voice-1", "ok": False, "problems": ["voice-1 heard 0.40 s of silence"]}]
    results = judge(Targets(), summary, rows(["ok"] * 30, errors_at=9), speakers, GOOD_COUNT)
    failed = {r.target: r for r in results if not r.ok}
    assert verdict_of(results) == NO_GO
    assert exit_code(NO_GO) == 1
    assert set(failed) == {"join_success", "ttfa_p95", "server_errors", "speakers_continuity"}
    assert failed["join_success"].text == "join success within 30 s: 42.0 % (target ≥ 99 %)"
    assert failed["join_success"].figure == 0.42
    assert failed["ttfa_p95"].text == "time to first audio p95: 12.30 s (target ≤ 5 s)"
    assert failed["server_errors"].at_t == 9
    assert "the first at t=9 s" in failed["server_errors"].text
    assert "voice-1 heard 0.40 s of silence" in failed["speakers_continuity"].text


def test_origin_down_names_when_it_began_and_a_single_slow_probe_is_forgiven() -> None:
    down = judge(Targets(), GOOD_SUMMARY, rows(["ok"] * 14 + ["down"] * 6), [], GOOD_COUNT)
    health = next(r for r in down if r.target == "origin_health")
    assert not health.ok
    assert health.at_t == 14
    assert health.text.startswith("origin down from t=14 s (unreachable), 6 s in all")

    slow = rows(["ok"] * 5 + ["degraded"] + ["ok"] * 5)
    blip = next(
        r
        for r in judge(Targets(), GOOD_SUMMARY, slow, [], GOOD_COUNT)
        if r.target == "origin_health"
    )
    assert blip.ok
    assert "1 slow or failed second(s) forgiven" in blip.text

    lasting = rows(["ok"] * 5 + ["degraded"] * 3)
    failed = next(
        r
        for r in judge(Targets(), GOOD_SUMMARY, lasting, [], GOOD_COUNT)
        if r.target == "origin_health"
    )
    assert not failed.ok
    assert failed.at_t == 5
    assert failed.text.startswith("origin degraded from t=5 s")


def test_no_audio_at_all_fails_rather_than_passing_silently() -> None:
    summary = {"ttfa_p95_s": None, "stall_ratio": None, "join_success": None, "server_errors": 0}
    no_count = {"seconds_checked": 0, "ok": False}
    results = judge(Targets(), summary, rows([None] * 5), [], no_count)
    assert {r.target for r in results if not r.ok} == {
        "ttfa_p95",
        "stall_ratio",
        "join_success",
        "count_error",
        "origin_health",
    }


def count_rows(
    truth: list[int], reported: list[int | None], error: float = 0.01
) -> list[dict[str, Any]]:
    return [
        {"t": t, "truth": tr, "reported": rep, "reported_error": error, "stale": False}
        for t, (tr, rep) in enumerate(zip(truth, reported, strict=True))
    ]


def test_count_may_lag_by_the_visibility_delay_but_no_more() -> None:
    truth = [0, 100, 200, 300, 300, 300, 300, 300, 300, 300]
    lagging = [0, 0, 0, 0, 100, 200, 300, 300, 300, 300]  # three seconds behind
    held = count_check(
        count_rows(truth, lagging), visibility_s=3, window_s=0, error_max=None, slack=0
    )
    assert held["ok"]
    assert held["worst_error"] == 0.0
    late = count_check(
        count_rows(truth, lagging), visibility_s=2, window_s=0, error_max=None, slack=0
    )
    assert not late["ok"]
    assert late["worst_at_t"] == 3  # shows 0 where the last 2 s held 100 to 300
    assert late["worst_error"] == 1.0
    assert late["error_bound"] == 0.04  # twice the stated 1 %, plus 2 %


def test_count_keeps_leavers_for_the_window_and_holds_the_stated_error() -> None:
    truth = [300] * 5 + [200] * 10
    reported = [300] * 15  # leavers still counted: the window has not passed
    kept = count_check(
        count_rows(truth, reported), visibility_s=2, window_s=20, error_max=None, slack=0
    )
    assert kept["ok"]
    forgot = count_check(
        count_rows(truth, reported), visibility_s=2, window_s=0, error_max=None, slack=0
    )
    assert not forgot["ok"]

    off = count_rows([300] * 10, [300] * 5 + [315] * 5)  # 5 % off, the server states 1 %
    assert not count_check(off, visibility_s=2, window_s=0, error_max=None, slack=0)["ok"]
    assert count_check(off, visibility_s=2, window_s=0, error_max=0.05, slack=0)["ok"]
    assert count_check(off, visibility_s=2, window_s=0, error_max=None, slack=15)["ok"]


def test_count_skips_unread_and_stale_seconds() -> None:
    checked = count_rows([10, 10, 10], [None, 10, 500])
    checked[2]["stale"] = True
    result = count_check(checked, visibility_s=1, window_s=0, error_max=None, slack=0)
    assert result["ok"]
    assert result["seconds_checked"] == 1


def test_count_before_the_rehearsal_starts_is_zero() -> None:
    # listeners join in the first second; the count shows them a few seconds later
    result = count_check(
        count_rows([8, 18, 30, 30], [0, 0, 8, 30]),
        visibility_s=3,
        window_s=0,
        error_max=None,
        slack=0,
    )
    assert result["ok"]
    assert result["seconds_checked"] == 4
