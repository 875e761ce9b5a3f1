"""The rehearsal's HTML report: one self-contained page from report.json, with the verdict and
each failed target on top, a section per part of the run, every outside text escaped, no request
to anywhere, plots that Chromium draws, "no data" for a run that could not start, and a bounded
size for a two-hour run."""

from __future__ import annotations

import json
import math
import random
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from rostra.rehearse.observations import Histogram
from rostra.rehearse.report_html import render_html, write_report
from tests.rehearse.report_browser import assert_drawn_whole, draw_report

HOSTILE_TITLE = '<script>alert("x")</script> Town hall & "friends"'
HOSTILE_SPEAKER = "<img src=http://attacker.example/x.png onerror=alert(1)>"
OUTAGE_FROM_S = 14
SPEAKER_GAP = [14.2, 30.0]
SECTIONS = (
    "verdict",
    "targets",
    "count",
    "distributions",
    "joins",
    "stalls",
    "speakers",
    "health",
    "attacks",
    "generator",
    "scenario",
)
TWO_HOURS_S = 7_200
MAX_PAGE_BYTES = 2_000_000


def histogram(rng: random.Random, count: int, median_s: float, sigma: float) -> dict[str, Any]:
    h = Histogram()
    for _ in range(count):
        h.add(rng.lognormvariate(math.log(median_s), sigma))
    return h.to_json()


def target(name: str, figure: float | None, limit: float, ok: bool, text: str) -> dict[str, Any]:
    return {"target": name, "figure": figure, "limit": limit, "ok": ok, "text": text}


def series_row(t: int, listeners: int, *, is_down: bool, rng: random.Random) -> dict[str, Any]:
    reported = None if is_down or t < 5 else round(listeners * rng.uniform(0.99, 1.01))
    joins = (
        {"error:502": 4, "transport": 3}
        if is_down
        else {"admitted": 9, "queued": 2 if t % 5 == 0 else 0, "rate-limited": 1 if t == 3 else 0}
    )
    return {
        "t": t,
        "truth": listeners,
        "reported": reported,
        "reported_error": None if reported is None else 0.0081,
        "stale": is_down,
        "joins": joins,
        "ttfa_p50_s": None if is_down else 1.1 + 0.01 * (t % 7),
        "ttfa_p95_s": None if is_down else 2.2 + 0.02 * (t % 5),
        "latency_p50_s": None if is_down else 4.0,
        "latency_p95_s": None if is_down else 4.9,
        "stalls": 30 if is_down else 0,
        "stall_s": float(listeners) if is_down else 0.0,
        "played_s": 0.0 if is_down else float(listeners),
        "server_errors": 4 if is_down else 0,
        "health": "down" if is_down else ("degraded" if t == 8 else "ok"),
        "health_failed": "origin" if is_down else None,
    }


def make_report(*, is_go: bool, duration_s: int = 30) -> dict[str, Any]:
    """A schema-exact report.json: a GO run, or a NO-GO one whose origin stops at t = 14 s."""
    rng = random.Random(9)
    down_from = duration_s + 1 if is_go else OUTAGE_FROM_S
    series = [
        series_row(t, min(300, 10 * (t + 1)), is_down=t >= down_from, rng=rng)
        for t in range(duration_s)
    ]
    targets = [
        target("ttfa_p95", 2.3, 3.0, True, "time to first audio p95: 2.3 s (target ≤ 3 s)"),
        target(
            "stall_ratio",
            0.0 if is_go else 0.47,
            0.01,
            is_go,
            f"stall ratio: {0 if is_go else 47} % (target ≤ 1 %)",
        ),
        target(
            "join_success",
            0.99 if is_go else 0.42,
            0.99,
            is_go,
            f"join success within 30 s: {99 if is_go else 42.0} % (target ≥ 99 %)",
        ),
        target("count_error", 0.012, 0.02, True, "count error vs truth: 1.2 % (target ≤ 2 %)"),
        target("speakers", 1.0 if is_go else 0.5, 1.0, is_go, "speakers continuous"),
        target("server_errors", 0 if is_go else 64, 0, is_go, "server errors: 0 (target 0)"),
        target("origin_health", 1.0 if is_go else 0.0, 1.0, is_go, "origin healthy throughout"),
    ]
    failures = [
        {
            "target": t["target"],
            "figure": t["figure"],
            "limit": t["limit"],
            "at_t": None
            if t["target"] == "speakers"
            else (17 if t["target"] == "join_success" else OUTAGE_FROM_S),
            "text": t["text"] + (" — origin down" if t["target"] == "origin_health" else ""),
        }
        for t in targets
        if not t["ok"]
    ]
    return {
        "version": 1,
        "verdict": "GO" if is_go else "NO-GO",
        "failures": failures,
        "targets": targets,
        "scenario": {
            "title": HOSTILE_TITLE,
            "duration_s": duration_s,
            "target": {"media": "http://127.0.0.1:8088", "gate": "http://127.0.0.1:8080"},
            "arrival": {"listeners": 300, "ramp_s": 30, "leave_share": 0.3, "leave_s": 10},
            "attack": {"forged_ticket_per_s": 2, "junk_join_per_s": 1, "slow_connections": 2},
            "speakers": [{"name": "voice-1", "file": "speech.wav"}, {"name": HOSTILE_SPEAKER}],
            "targets": {"ttfa_p95_s": 3.0, "stall_ratio": 0.01, "join_success": 0.99},
        },
        "target_urls": {
            "media": "http://127.0.0.1:8088",
            "gate": "http://127.0.0.1:8080",
            "space_id": "a1b2c3",
        },
        "started_at": "2026-11-29T14:02:00Z",
        "ended_at": "2026-11-29T14:02:30Z",
        "duration_s": float(duration_s),
        "summary": {
            "listeners_peak": 300,
            "joins": {"admitted": 290, "queued": 12, "rate-limited": 1}
            if is_go
            else {"admitted": 140, "queued": 6, "error:502": 64, "transport": 48},
            "join_success": 0.99 if is_go else 0.42,
            "ttfa_p50_s": 1.2,
            "ttfa_p95_s": 2.3,
            "latency_p50_s": 4.1,
            "latency_p95_s": 5.0,
            "stall_ratio": 0.0 if is_go else 0.47,
            "stalls": 0 if is_go else 480,
            "progressive_ttfb_p95_s": 0.2,
            "progressive_gaps": 0,
            "server_errors": 0 if is_go else 64,
            "server_error_kinds": {} if is_go else {"join:502": 40, "media:502": 24},
            "attacks": {"forged-ticket:401": 20, "junk-join:422": 9, "oversized:413": 4},
            "count_error_max": 0.012,
            "generator_behind_ratio": 0.001,
            "generator_errors": {} if is_go else {"ConnectionResetError": 2},
        },
        "series": series,
        "distributions": {
            "ttfa": histogram(rng, 300, 1.2, 0.35),
            "latency": histogram(rng, 2000, 4.1, 0.1),
            "pdt_lag": histogram(rng, 300, 1.5, 0.2),
            "progressive_ttfb": histogram(rng, 10, 0.12, 0.3),
        },
        "speakers": [
            {"name": "voice-1", "ok": True, "problems": [], "gaps": [], "hears_itself": False},
            {
                "name": HOSTILE_SPEAKER,
                "ok": is_go,
                "problems": [] if is_go else ["mix-minus silent from 14.2 s"],
                "gaps": [] if is_go else [SPEAKER_GAP],
                "hears_itself": False,
            },
        ],
        "count_check": {
            "error_bound": 0.02,
            "visibility_delay_s": 5,
            "worst_error": 0.012,
            "worst_at_t": 12,
            "ok": True,
        },
        "unit_costs": {"playlist_bytes": 1400, "response_header_bytes": 320},
        "generator": {"processes": 1, "steps": 12345, "behind": 3, "cpu_s": 12.3},
    }


def null_report() -> dict[str, Any]:
    """What a rehearsal that could not start writes: the keys, no figures."""
    return {
        "version": 1,
        "verdict": "NO-GO",
        "failures": [
            {
                "target": "run",
                "figure": None,
                "limit": None,
                "at_t": None,
                "text": "the target did not answer",
            }
        ],
        "targets": [],
        "scenario": {},
        "target_urls": {"media": None, "gate": None, "space_id": None},
        "started_at": None,
        "ended_at": None,
        "duration_s": None,
        "summary": {
            "listeners_peak": None,
            "joins": {},
            "join_success": None,
            "attacks": {},
            "generator_errors": {},
        },
        "series": [],
        "distributions": {"ttfa": {"count": 0, "sum_s": 0, "max_s": 0, "buckets": {}}},
        "speakers": [],
        "count_check": {"error_bound": 0.02, "worst_error": None, "ok": None},
        "unit_costs": {},
        "generator": {},
    }


class Page(HTMLParser):
    """What a test reads in the page: section ids, texts under each, every src/href, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.current: str | None = None
        self.links: list[str] = []
        self.tags: list[str] = []
        self.svg_titles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "section" and values.get("id"):
            self.current = values["id"]
            self.sections[self.current] = []
        for name in ("src", "href", "xlink:href", "action"):
            if values.get(name):
                self.links.append(str(values[name]))

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.sections[self.current].append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections[section]).split())


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    return parsed


def test_no_go_page_names_each_failed_target_with_its_figure_and_time() -> None:
    page = render_html(make_report(is_go=False))
    parsed = parse(page)

    assert list(parsed.sections) == list(SECTIONS)
    verdict = parsed.text("verdict")
    assert verdict.startswith("NO-GO")
    assert "join success within 30 s: 42.0 % (target ≥ 99 %)" in verdict
    assert "figure 0.42, limit 0.99 at t = 17 s (14:02:17 UTC)" in verdict
    assert "origin healthy throughout — origin down" in verdict
    assert "at t = 14 s (14:02:14 UTC)" in verdict
    assert verdict.count("✘") == 5
    assert parsed.text("targets").count("✘ FAIL") == 5
    assert parsed.text("targets").count("✔ pass") == 2
    assert "down from t = 14 s to 30 s (failed: origin)" in parsed.text("health")
    assert "14.2–30 s" in parsed.text("speakers")
    assert "The count was stale during 16 s" in parsed.text("count")
    assert "Server errors (5xx other than 503, each a bug): 64 (join:502 × 40; media:502 × 24)" in (
        parsed.text("joins")
    )
    # the outside texts are escaped wherever they appear, and nothing is fetched
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert HOSTILE_SPEAKER in parsed.text("speakers")
    assert parsed.links == []
    assert {"script", "link", "img", "iframe", "object"}.isdisjoint(parsed.tags)
    # every plot says what it shows
    assert page.count("<svg") == page.count("<title id=") == page.count("<desc id=") >= 8


def test_go_page_says_go_and_all_targets_met() -> None:
    parsed = parse(render_html(make_report(is_go=True)))

    assert parsed.text("verdict") == "GO ✔ All 7 targets met."
    assert "✘" not in parsed.text("targets")
    assert "Never degraded or down" not in parsed.text("health")  # one degraded second, t = 8
    assert "degraded from t = 8 s to 9 s" in parsed.text("health")


def test_run_that_could_not_start_renders_no_data_instead_of_failing() -> None:
    parsed = parse(render_html(null_report()))

    assert list(parsed.sections) == list(SECTIONS)
    assert parsed.text("verdict").startswith("NO-GO")
    assert "the target did not answer" in parsed.text("verdict")
    for section in ("targets", "count", "distributions", "joins", "stalls", "speakers"):
        assert "no data" in parsed.text(section), section
    assert parse(render_html({})).text("verdict").startswith("NO VERDICT")


def flapping(report: dict[str, Any]) -> dict[str, Any]:
    """The worst case for the page's size: every second differs from the one before."""
    rng = random.Random(7)
    for row in report["series"][OUTAGE_FROM_S:]:
        t = row["t"]
        row["health"] = ("ok", "degraded", "down", None)[t % 4]
        row["stale"] = t % 2 == 0
        row["reported"] = None if row["stale"] else rng.randint(250, 350)
        row["reported_error"] = None if row["stale"] else 0.0081
        row["joins"] = {k: rng.randint(0, 9) for k in ("admitted", "queued", "error:502")}
        row["joins"][f"error:{500 + t % 7}"] = 1
        row["played_s"] = rng.uniform(200, 300)
        row["stall_s"] = rng.uniform(0, 5)
        for key in ("ttfa_p50_s", "ttfa_p95_s", "latency_p50_s", "latency_p95_s"):
            row[key] = rng.uniform(0.5, 6)
    speaker = report["speakers"][1]
    speaker["gaps"] = [[t + 0.2, t + 0.7] for t in range(OUTAGE_FROM_S, TWO_HOURS_S, 3)]
    return report


def test_two_hour_report_stays_under_two_megabytes(tmp_path: Path) -> None:
    report = flapping(make_report(is_go=False, duration_s=TWO_HOURS_S))
    assert len(report["series"]) == TWO_HOURS_S

    started = time.perf_counter()
    write_report(tmp_path, report)
    elapsed_s = time.perf_counter() - started

    page = (tmp_path / "report.html").read_bytes()
    assert len(page) < MAX_PAGE_BYTES, len(page)
    assert elapsed_s < 5.0
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]
    health = parse(page.decode()).text("health")
    # the plot bins the flapping health; the words count every second
    assert "down 1,797 s; degraded 1,797 s; ok 1,809 s; no data 1,797 s." in health
    assert "Each 18 s bin shows its worst state." in health
    assert "down from t = 14 s to 15 s (failed: origin)" in health


@pytest.mark.browser
def test_chromium_draws_the_no_go_report_without_any_request(tmp_path: Path) -> None:
    write_report(tmp_path, make_report(is_go=False))
    drawn = draw_report(tmp_path / "report.html", "rehearsal-report-no-go.png")

    assert_drawn_whole(drawn, plots_at_least=8)
