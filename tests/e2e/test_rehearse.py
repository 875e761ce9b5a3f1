"""`rostra rehearse` against a real `rostra serve`: real `rostra speak` speakers, a simulated
audience in Locust processes (one, or a master and two workers), attack traffic. A healthy
deployment gives GO and a count that follows the truth within its stated error; an admission
rate set far too low gives NO-GO naming join success; a server stopped mid-run gives NO-GO
naming the second it went down.

The healthy run keeps its 300 listeners in one load-generating process: on this two-core box,
a master and two workers beside the server starved the origin enough for the speakers to hear
0.3 s gaps in their mix-minus (a finding the rehearsal reports, not a flaw of the test)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, ROOT, Server, start_server, stop_server
from tests.rehearse.report_browser import assert_drawn_whole, draw_report

HEARTBEAT_S = 5
PROCESSES = "1"
# a loaded two-core test machine runs the server, speakers and generator side by side: the
# targets are those of such a box (a deployment sets its own in the file)
SCENARIO = """
[speakers]
count = {speakers}

[audience]
hls = 0.8
progressive = 0.1
interactive = 0.1
# legacy players (2 requests/s each, not LL-HLS's 8) keep 300 of them light on a shared two-core
# box, and fetch whole segments, whose bytes are checked below; LL listeners: tests/rehearse
hls_mode = "legacy"

[[audience.curve]]
at_s = 0
listeners = 0

[[audience.curve]]
at_s = 10
listeners = 100

[[audience.curve]]
at_s = 30
listeners = 100

[attack]
attackers = 2
interval_s = 1.0

[targets]
ttfa_p95_s = 8.0
stall_ratio_max = 0.05
join_success_min = 0.99
join_within_s = 15
speakers_continuity = {continuity}
"""
RUN_TIMEOUT_S = 180.0


def scenario(tmp_path: Path, *, speakers: int, continuity: bool = True) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(
        SCENARIO.format(speakers=speakers, continuity="true" if continuity else "false")
    )
    return path


def rehearse_command(path: Path, server: Server, report: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rostra",
        "rehearse",
        str(path),
        "--target",
        server.url,
        "--report",
        str(report),
        *flags,
    ]


def environment() -> dict[str, str]:
    return dict(os.environ, ROSTRA_ADMIN_TOKEN=ADMIN_TOKEN)


def rehearse(path: Path, server: Server, report: Path, *flags: str) -> tuple[int, str]:
    done = subprocess.run(
        rehearse_command(path, server, report, *flags),
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_report(report: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((report / "report.json").read_text())
    return data


def test_rehearsal_of_a_healthy_deployment_is_go_and_its_count_follows_the_truth(
    tmp_path: Path,
) -> None:
    server = start_server(
        tmp_path / "data", extra_env={"ROSTRA_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S)}
    )
    try:
        code, output = rehearse(
            scenario(tmp_path, speakers=2),
            server,
            tmp_path / "report",
            "--listeners",
            "300",
            "--duration-s",
            "30",
            "--processes",
            PROCESSES,
        )
    finally:
        stop_server(server)
    report = read_report(tmp_path / "report")
    assert code == 0, output[-4000:]
    assert report["verdict"] == "GO"
    assert report["failures"] == []
    # the report as its reader sees it: drawn whole in Chromium, with nothing fetched
    assert_drawn_whole(
        draw_report(tmp_path / "report" / "report.html", "rehearsal-report-go.png"),
        plots_at_least=6,
    )
    # the progress line, once a second
    assert sum("listeners" in line and "joins:" in line for line in output.splitlines()) >= 20

    summary = report["summary"]
    players = report["series"]
    peak = summary["listeners_peak"]
    assert 240 <= peak <= 300  # 90 % of the 300 hold tickets (the rest play the stream)
    assert summary["join_success"] == 1.0
    assert summary["server_errors"] == 0
    assert summary["generator_errors"] == {}
    assert summary["progressive_ttfb_p95_s"] is not None
    attacks = {kind.split(":")[0] for kind in summary["attacks"]}
    assert {"forged-ticket", "junk-join", "random-path"} <= attacks
    assert all(speaker["ok"] for speaker in report["speakers"]), report["speakers"]
    assert len(report["speakers"]) == 2
    assert report["generator"]["processes"] == int(PROCESSES)

    # count vs truth: every second read, within the error the report states
    check = report["count_check"]
    assert check["ok"]
    assert check["worst_error"] <= check["error_bound"]
    assert check["seconds_checked"] >= 25
    settled = [row for row in players if row["truth"] == peak and row["reported"] is not None]
    assert settled, players
    last = settled[-1]
    assert abs(last["reported"] - peak) <= (2 * last["reported_error"] + 0.02) * peak + 3
    assert report["unit_costs"]["listeners_per_generator_core"] > 0
    assert report["unit_costs"]["generator_bytes_per_listener"] > 0
    # what the players received, for `rostra plan --from`: a 1.024 s AAC segment at 128 kbit/s
    # is about 16.4 KB of audio in its container; a playlist and its headers are smaller
    costs = report["unit_costs"]
    assert 14_000 <= costs["segment_bytes"] <= 23_000, costs
    assert 200 <= costs["playlist_bytes"] <= 8_000, costs
    assert 100 <= costs["response_header_bytes"] <= 2_000, costs
    planned = subprocess.run(
        [
            *(sys.executable, "-m", "rostra", "plan", "--listeners", "1300000", "--json"),
            *("--from", str(tmp_path / "report" / "report.json")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "report.json: unit_costs.playlist_bytes" in planned.stdout, planned.stdout[-3000:]


def test_rehearsal_against_too_low_an_admission_rate_is_no_go_naming_join_success(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "data")
    try:
        space_id = server.create_space("Too narrow a door")["id"]
        defended = server.api(
            "PUT",
            f"/api/v1/spaces/{space_id}/defense",
            json={"admission_rate": 1.0, "admission_burst": 1},
        )
        assert defended.status_code == 200, defended.text
        time.sleep(1.2)  # each worker caches the defence about a second
        code, output = rehearse(
            scenario(tmp_path, speakers=1),
            server,
            tmp_path / "report",
            "--space",
            space_id,
            "--listeners",
            "150",
            "--duration-s",
            "20",
            "--processes",
            "2",  # a Locust master and two workers: their outcomes add up
        )
    finally:
        stop_server(server)
    assert code == 1, output[-4000:]
    assert (tmp_path / "report" / "report.json").exists(), output[-4000:]
    report = read_report(tmp_path / "report")
    assert report["verdict"] == "NO-GO"
    failed = {failure["target"]: failure for failure in report["failures"]}
    assert "join_success" in failed
    assert failed["join_success"]["figure"] < 0.5
    assert failed["join_success"]["text"].startswith("join success within 15 s: ")
    assert "FAIL join success within 15 s" in output
    assert report["summary"]["joins"]["queued"] > 0
    assert report["target_urls"]["space_id"] == space_id
    assert report["generator"]["processes"] == 2
    assert report["summary"]["listeners_peak"] > 0


def test_rehearsal_of_a_server_stopped_mid_run_is_no_go_naming_when(tmp_path: Path) -> None:
    """Run as across machines: `--master` here, and a `--worker` process joined to it."""
    server = start_server(tmp_path / "data")
    report_dir = tmp_path / "report"
    master_port = str(free_port())
    rehearsal = subprocess.Popen(
        rehearse_command(
            scenario(tmp_path, speakers=1, continuity=False),
            server,
            report_dir,
            "--listeners",
            "100",
            "--duration-s",
            "20",
            "--master",
            "--expect-workers",
            "1",
            "--master-port",
            master_port,
        ),
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rostra",
            "rehearse",
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            master_port,
        ],
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lines: list[str] = []
    stopped_at_t: int | None = None
    down_at_t = 0.0
    try:
        assert rehearsal.stdout is not None
        for line in rehearsal.stdout:
            lines.append(line)
            if stopped_at_t is None and line.startswith("t=") and int(line[2:6]) >= 8:
                stopped_at_t = int(line[2:6])
                run_started = time.monotonic() - stopped_at_t
                stop_server(server)  # a loaded machine may take seconds to stop it
                down_at_t = time.monotonic() - run_started
        rehearsal.wait(timeout=RUN_TIMEOUT_S)
        # the master tells its worker to quit at the end
        assert worker.wait(timeout=30) is not None
    finally:
        for process in (rehearsal, worker):
            if process.poll() is None:
                process.kill()
        stop_server(server)
    output = "".join(lines)
    assert stopped_at_t is not None, output[-4000:]
    assert rehearsal.returncode == 1, output[-4000:]
    report = read_report(report_dir)
    failed = {failure["target"]: failure for failure in report["failures"]}
    health = failed["origin_health"]
    assert stopped_at_t - 1 <= health["at_t"] <= down_at_t + 3, (stopped_at_t, down_at_t, health)
    assert f"from t={health['at_t']} s" in health["text"]
    assert f"FAIL origin down from t={health['at_t']} s" in output or (
        f"FAIL origin degraded from t={health['at_t']} s" in output
    )
    # the worker's simulated listeners reached the master's report
    assert report["summary"]["listeners_peak"] > 0, report["summary"]
    assert report["summary"]["joins"].get("admitted", 0) > 0, report["summary"]
    down = [row for row in report["series"] if row["health"] == "down"]
    assert down
    assert down[-1]["t"] >= 18
    with httpx.Client() as client:  # the server really is gone
        try:
            client.get(f"{server.url}/healthz", timeout=1)
            raise AssertionError("the server still answers")
        except httpx.HTTPError:
            pass
