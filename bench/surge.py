"""A join surge and an attack at the gate, through a real nginx edge: does the space go live on
time, is admission bounded, is everyone who waits let in, and what does an attacker pay?

`rostra serve` behind `rostra edge` (Debian's nginx); a scheduled space with two voices (`rostra
speak --tone`) waiting in the green room. Per defence mode (`--modes off,auto`):
- an attacker process sends junk through the edge for `--junk-s` seconds from two source
  ranges: forged tickets, junk joins, random paths, oversized bodies, slowloris connections;
- `--listeners` simulated listeners arrive at `--surge-factor` times the admission rate, each
  from its own /24 (127.20.0.1, 127.20.1.1, …): they join through the edge, wait in the waiting
  room by `Retry-After` × U(1, 1.5) with their arrival token, solve the proof-of-work when asked
  (a plain Python/hashlib solver: what a bot would run), and heartbeat once when admitted;
- two seconds into the surge the space is started, and the first segment is fetched from the
  edge as soon as it is listed.
Figures: start → first segment at the edge, program frames dropped, admitted per second (and
whether any window exceeded the bucket), queued and admitted clients, server errors (5xx other
than 503, at the listeners and at the attacker), the CPU the simulated listeners spent per
counted listener (the attacker's price per bot), and the junk's answers by kind.

Run from the repository root:  .venv/bin/python bench/surge.py [--listeners 1000] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import random
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import altcha
import httpx

from harness import ADMIN_TOKEN, CpuMeter, percentiles, running_server, write_results

# isort: split
# the tests' helpers, importable once harness has put the repository on sys.path
from tests.conftest import Server, free_port
from tests.e2e.conftest import Edge, start_edge, stop_edge

NAME = "surge"
HTTP_TIMEOUT_S = 20.0
SPEAKER_TONES_HZ = (330, 550)
GREEN_ROOM_TIMEOUT_S = 40.0
SURGE_LEAD_S = 2.0
FIRST_SEGMENT_TIMEOUT_S = 30.0
# a listener that is still not admitted this long after the surge ends is counted as lost
ADMIT_GRACE_S = 90.0
SLOW_HEADER_EVERY_S = 5.0
OVERSIZED_BYTES = 1_000_000
ATTACK_PREFIXES = ("127.66.0", "127.67.3")
# the incident log is written about once a second by each worker
INCIDENT_FLUSH_S = 2.5


# one TLS context for every simulated client: httpx builds one per client otherwise, and that
# costs the generator more than the requests it sends (the edge is plain HTTP here anyway)
SHARED_TLS = ssl.create_default_context()


# proofs of work are solved in a process of their own: a solving thread would hold the GIL and
# put the simulated listeners behind their schedule
SOLVERS = concurrent.futures.ProcessPoolExecutor(max_workers=1)


def listener_address(index: int) -> str:
    """Each simulated listener its own /24, so only the admission bucket holds them back."""
    return f"127.{20 + index // 256}.{index % 256}.1"


def attacker_address(index: int) -> str:
    prefix = ATTACK_PREFIXES[index % len(ATTACK_PREFIXES)]
    return f"{prefix}.{1 + index % 50}"


def solve_altcha(challenge: dict[str, Any]) -> tuple[str, float]:
    """The ALTCHA answer a bot computes, with the `altcha` package's own solver (hashlib), and
    the CPU seconds it took."""
    started = time.thread_time()
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed, timeout=60.0)
    if solution is None:
        raise RuntimeError("no number solves the challenge")
    payload: str = altcha.Payload(parsed, solution).to_base64()
    return payload, time.thread_time() - started


def retry_after_s(response: httpx.Response, default_s: float = 1.0) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", default_s)))
    except ValueError:
        return default_s


@dataclass
class Listener:
    index: int
    arrives_at: float
    admitted_at: float | None = None
    joins: int = 0
    queued: int = 0
    first_position: int | None = None
    challenges: int = 0
    solve_cpu_s: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    heartbeat_status: int | None = None
    start_lag_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)


async def run_listener(
    listener: Listener, join_url: str, heartbeat_url: str, give_up: float
) -> None:
    await asyncio.sleep(max(0.0, listener.arrives_at - time.monotonic()))
    listener.start_lag_s = time.monotonic() - listener.arrives_at
    transport = httpx.AsyncHTTPTransport(
        local_address=listener_address(listener.index), verify=SHARED_TLS
    )
    body: dict[str, str] = {}
    async with httpx.AsyncClient(transport=transport, timeout=HTTP_TIMEOUT_S) as client:
        while time.monotonic() < give_up:
            listener.joins += 1
            try:
                response = await client.post(join_url, json=body or None)
            except httpx.HTTPError as error:
                listener.statuses[0] += 1
                listener.errors[type(error).__name__] += 1
                await asyncio.sleep(1.0)
                continue
            listener.statuses[response.status_code] += 1
            data = _json(response)
            if response.status_code == 201:
                listener.admitted_at = time.monotonic()
                ticket = data.get("ticket", "")
                with contextlib.suppress(httpx.HTTPError):
                    beat = await client.post(
                        heartbeat_url, headers={"Authorization": f"Bearer {ticket}"}
                    )
                    listener.heartbeat_status = beat.status_code
                return
            kind = str(data.get("type", "")).rsplit("/", 1)[-1]
            listener.problems[kind or str(response.status_code)] += 1
            if response.status_code == 503 and data.get("arrival"):
                listener.queued += 1
                if listener.first_position is None and "position" in data:
                    listener.first_position = int(data["position"])
                body = {"arrival": str(data["arrival"])}
                await asyncio.sleep(retry_after_s(response) * random.uniform(1.0, 1.5))
            elif response.status_code == 401 and "challenge" in data:
                listener.challenges += 1
                loop = asyncio.get_running_loop()
                payload, cpu_s = await loop.run_in_executor(
                    SOLVERS, solve_altcha, data["challenge"]
                )
                body = {"altcha": payload}
                listener.solve_cpu_s += cpu_s
            elif response.status_code == 401 and kind in ("challenge-spent", "challenge-failed"):
                body = {}
            else:
                await asyncio.sleep(retry_after_s(response) * random.uniform(1.0, 1.5))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# the attacker: a separate process, so that its CPU is its own and it cannot slow the listeners


async def _slowloris(host: str, port: int, count: int, stop_at: float, stats: Counter[str]) -> None:
    async def one(index: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(attacker_address(index), 0)
            )
        except OSError:
            stats["slowloris:refused"] += 1
            return
        stats["slowloris:opened"] += 1
        writer.write(b"GET / HTTP/1.1\r\nHost: edge\r\n")
        try:
            while time.monotonic() < stop_at:
                await asyncio.sleep(SLOW_HEADER_EVERY_S)
                writer.write(f"X-Slow-{random.randrange(10**6)}: 1\r\n".encode())
                await writer.drain()
                if reader.at_eof():
                    break
            stats["slowloris:held_to_end"] += 1
        except OSError:
            stats["slowloris:cut_by_server"] += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    await asyncio.gather(*(one(index) for index in range(count)))


async def _junk(config: dict[str, Any]) -> dict[str, Any]:
    edge, space_id = config["edge"], config["space_id"]
    stop_at = time.monotonic() + config["seconds"]
    stats: Counter[str] = Counter()
    api = f"{edge}/api/v1/spaces/{space_id}"
    forged = "eyJhbGciOiJIUzI1NiJ9.eyJzIjoiZm9yZ2VkIn0." + "A" * 43
    big = b"{" + b" " * OVERSIZED_BYTES + b"}"

    def request(kind: str) -> tuple[str, str, dict[str, Any]]:
        salt = random.randrange(10**9)
        if kind == "forged_ticket":
            return "POST", f"{api}/heartbeat", {"headers": {"Authorization": f"Bearer {forged}"}}
        if kind == "junk_join":
            return "POST", f"{api}/join", {}
        if kind == "random_path":
            return "GET", f"{edge}/live/{salt:x}/state.json?{salt}", {}
        if kind == "random_api":
            return "POST", f"{edge}/api/v1/spaces/{salt:x}/reactions", {"json": {"emoji": "x"}}
        return (
            "POST",
            f"{api}/leave",
            {
                "content": big,
                "headers": {"Content-Type": "application/json"},
            },
        )

    kinds = ["forged_ticket"] * 4 + ["junk_join"] * 3 + ["random_path"] * 2 + ["random_api"]
    kinds += ["oversized"]

    async def sender(index: int) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=attacker_address(index))
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            interval_s = config["workers"] / config["rate"]
            next_at = time.monotonic()
            while time.monotonic() < stop_at and stats["sent"] < config["max_requests"]:
                kind = random.choice(kinds)
                method, url, extra = request(kind)
                stats["sent"] += 1
                try:
                    response = await client.request(method, url, **extra)
                    stats[f"{kind}:{response.status_code}"] += 1
                except httpx.HTTPError as error:
                    stats[f"{kind}:{type(error).__name__}"] += 1
                next_at += interval_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    host, port = config["edge_host"], config["edge_port"]
    await asyncio.gather(
        _slowloris(host, port, config["slowloris"], stop_at, stats),
        *(sender(index) for index in range(config["workers"])),
    )
    return {"answers": dict(sorted(stats.items())), "cpu_s": round(time.process_time(), 2)}


def attacker_main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    figures = asyncio.run(_junk(config))
    Path(config["out"]).write_text(json.dumps(figures))


# the phases


@dataclass
class Deployment:
    server: Server
    edge: Edge
    edge_port: int


def metrics_text(server: Server) -> str:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return httpx.get(server.url + "/metrics", headers=headers, timeout=HTTP_TIMEOUT_S).text


def metric(text: str, name: str, space_id: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and f'space="{space_id}"' in line:
            with contextlib.suppress(ValueError):
                total += float(line.rsplit(" ", 1)[1])
    return total


def start_speakers(invite_url: str) -> list[subprocess.Popen[bytes]]:
    speakers = []
    for index, tone in enumerate(SPEAKER_TONES_HZ):
        command = [sys.executable, "-m", "rostra", "speak", invite_url, "--tone", str(tone)]
        command += ["--seconds", "3600", "--name", f"Voice {index + 1}"]
        speakers.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return speakers


def wait_for_stage(server: Server, space_id: str, voices: int) -> None:
    deadline = time.monotonic() + GREEN_ROOM_TIMEOUT_S
    while time.monotonic() < deadline:
        state = httpx.get(f"{server.url}/live/{space_id}/state.json", timeout=5)
        if state.status_code == 200 and len(state.json().get("stage", [])) >= voices:
            return
        time.sleep(0.3)
    raise RuntimeError(f"{voices} voices did not reach the green room of {space_id}")


def prober_main(server: str, edge: str, space_id: str) -> None:
    """In its own process, so that a busy load generator cannot delay it: start the space (the
    admin call straight to the server) and time the first segment served by the edge."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    started = time.monotonic()
    response = httpx.post(
        f"{server}/api/v1/spaces/{space_id}/start",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=HTTP_TIMEOUT_S,
    )
    answered_s = time.monotonic() - started
    if response.status_code != 200:
        print(json.dumps({"error": f"start: {response.status_code} {response.text[:300]}"}))
        return
    to_segment_s = asyncio.run(first_segment_at_edge(edge, space_id, started))
    print(json.dumps({"start_answered_s": answered_s, "first_segment_s": to_segment_s}))


async def first_segment_at_edge(edge: str, space_id: str, started: float) -> float:
    """Seconds from `started` until the edge lists a segment of the space and serves it."""
    playlist = f"{edge}/live/{space_id}/audio.m3u8"
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() - started < FIRST_SEGMENT_TIMEOUT_S:
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(playlist)  # as a listener gets it: cached
                names = [line for line in response.text.splitlines() if line.endswith(".m4s")]
                if response.status_code == 200 and names:
                    segment = await client.get(f"{edge}/live/{space_id}/{names[0]}")
                    if segment.status_code == 200 and segment.content:
                        return time.monotonic() - started
            await asyncio.sleep(0.05)
    raise RuntimeError(f"no segment of {space_id} at the edge in {FIRST_SEGMENT_TIMEOUT_S} s")


def admitted_per_second(times: list[float], rate: float, burst: int) -> dict[str, Any]:
    """The most admissions in any 1 s and any 10 s window, against what the bucket allows."""
    times = sorted(times)
    worst_excess = 0.0
    most: dict[int, int] = {}
    for window_s in (1, 10):
        start = 0
        best = 0
        for end, at in enumerate(times):
            while at - times[start] > window_s:
                start += 1
            best = max(best, end - start + 1)
        most[window_s] = best
        worst_excess = max(worst_excess, best - (rate * window_s + burst))
    return {
        "max_in_1s": most[1],
        "max_in_10s": most[10],
        "bucket_allows_1s": rate + burst,
        "bucket_allows_10s": rate * 10 + burst,
        "never_above_bucket": worst_excess <= 0,
    }


async def run_phase(deployment: Deployment, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    server, edge = deployment.server, deployment.edge
    space = server.create_space(f"Surge, proof-of-work {mode}", live=False)
    space_id = space["id"]
    defense = server.api(
        "PUT",
        f"/api/v1/spaces/{space_id}/defense",
        json={"pow": mode, "admission_rate": args.rate, "admission_burst": args.burst},
    )
    if defense.status_code != 200:
        raise RuntimeError(f"cannot set the defence: {defense.status_code} {defense.text[:300]}")
    speakers = start_speakers(space["speaker_invite_url"])
    try:
        wait_for_stage(server, space_id, len(speakers))
        before = metrics_text(server)
        with tempfile.TemporaryDirectory(prefix="rostra-surge-") as folder:
            out = Path(folder) / "attacker.json"
            config = {
                "edge": edge.url,
                "edge_host": "127.0.0.1",
                "edge_port": deployment.edge_port,
                "space_id": space_id,
                "seconds": args.junk_s,
                "rate": args.junk_rate,
                "workers": 20,
                "max_requests": int(args.junk_rate * args.junk_s),
                "slowloris": args.slowloris,
                "out": str(out),
            }
            config_path = Path(folder) / "attacker-config.json"
            config_path.write_text(json.dumps(config))
            attacker = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for off the loop
                [sys.executable, __file__, "--attacker", str(config_path)],
                stdout=subprocess.DEVNULL,
            )
            figures = await surge_and_start(server, edge, space_id, args)
            await asyncio.to_thread(attacker.wait, args.junk_s + 120)
            junk = json.loads(out.read_text()) if out.exists() else {"answers": {}}
        after = metrics_text(server)
        await asyncio.sleep(INCIDENT_FLUSH_S)
        incident = server.api("GET", f"/api/v1/spaces/{space_id}/incident")
    finally:
        for speaker in speakers:
            speaker.terminate()
        for speaker in speakers:
            speaker.wait(timeout=15)
        server.api("POST", f"/api/v1/spaces/{space_id}/end")
    junk_errors = sum(
        count
        for key, count in junk["answers"].items()
        if key.rsplit(":", 1)[-1].isdigit()
        and int(key.rsplit(":", 1)[-1]) >= 500
        and not key.endswith(":503")
    )
    figures["program_frames_dropped"] = metric(
        after, "rostra_program_frames_dropped", space_id
    ) - metric(before, "rostra_program_frames_dropped", space_id)
    figures["late_ticks_over_20ms"] = metric(
        after, "rostra_mixer_late_ticks_over_20ms", space_id
    ) - metric(before, "rostra_mixer_late_ticks_over_20ms", space_id)
    figures["junk"] = junk
    figures["server_errors"] = figures.pop("listener_server_errors") + junk_errors
    figures["incident_report"] = (
        _incident_summary(incident.json()) if incident.status_code == 200 else incident.status_code
    )
    figures["incident_log_vs_sent"] = _incident_check(figures, junk, incident)
    if incident.status_code == 200:
        figures["admitted_per_second_at_server"] = _server_admissions(
            incident.json(), args.rate, args.burst
        )
    return {"mode": mode, "space": space_id, **figures}


def _incident_check(
    figures: dict[str, Any], junk: dict[str, Any], incident: httpx.Response
) -> dict[str, Any]:
    """What the incident log counted beside what the clients of this run received."""
    answers = junk["answers"]
    sent = {
        "admitted": figures["join_answers"].get("201", 0) + answers.get("junk_join:201", 0),
        "queued": figures["join_answers"].get("503", 0) + answers.get("junk_join:503", 0),
        "bad-ticket": answers.get("forged_ticket:401", 0),
        "rate-limited": sum(v for k, v in answers.items() if k.endswith(":429"))
        + figures["join_answers"].get("429", 0),
        "challenged": figures["join_problems"].get("challenge-required", 0)
        + answers.get("junk_join:401", 0),
    }
    totals = incident.json().get("totals", {}) if incident.status_code == 200 else {}
    return {key: {"sent": value, "logged": totals.get(key, 0)} for key, value in sent.items()}


def _server_admissions(report: dict[str, Any], rate: float, burst: int) -> dict[str, Any]:
    """Admissions per second as the server logged them (the incident log's timeline): the
    clients' clocks bunch answers together when the generator falls behind."""
    timeline = report["timeline"]
    bin_s = int(timeline["bin_s"])
    counts = [int(n) for n in timeline["verdicts"].get("admitted", [])]
    windows = {1: counts, 10: [sum(counts[i : i + 10]) for i in range(max(1, len(counts) - 9))]}
    most = {span: max(values, default=0) for span, values in windows.items()}
    return {
        "bin_s": bin_s,
        "max_in_1s": most[1],
        "max_in_10s": most[10],
        "bucket_allows_1s": rate + burst,
        "bucket_allows_10s": rate * 10 + burst,
        "never_above_bucket": bin_s == 1
        and most[1] <= rate + burst
        and most[10] <= rate * 10 + burst,
    }


def _incident_summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("totals", "verdicts", "top_prefixes", "summary", "verdict")
    return {key: report[key] for key in keys if key in report}


async def surge_and_start(
    server: Server, edge: Edge, space_id: str, args: argparse.Namespace
) -> dict[str, Any]:
    arrival_rate = args.rate * args.surge_factor
    surge_s = args.listeners / arrival_rate
    now = time.monotonic()
    listeners = [
        Listener(index=index, arrives_at=now + index / arrival_rate)
        for index in range(args.listeners)
    ]
    give_up = now + surge_s + args.listeners / args.rate + ADMIT_GRACE_S
    api = f"{edge.url}/api/v1/spaces/{space_id}"
    meter = CpuMeter(os.getpid())
    cpu_before = meter.seconds()
    tasks = [
        asyncio.create_task(run_listener(one, f"{api}/join", f"{api}/heartbeat", give_up))
        for one in listeners
    ]
    await asyncio.sleep(SURGE_LEAD_S)
    prober = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--probe",
        server.url,
        edge.url,
        space_id,
        stdout=asyncio.subprocess.PIPE,
    )
    probe_out, _ = await prober.communicate()
    probe = json.loads(probe_out.decode().strip().splitlines()[-1])
    if "error" in probe:
        raise RuntimeError(probe["error"])
    await asyncio.gather(*tasks)
    cpu_s = meter.seconds() - cpu_before
    admitted = [one for one in listeners if one.admitted_at is not None]
    queued = [one for one in listeners if one.queued]
    statuses: Counter[int] = Counter()
    problems: Counter[str] = Counter()
    for one in listeners:
        statuses.update(one.statuses)
        problems.update(one.problems)
    waits = [one.admitted_at - one.arrives_at for one in admitted if one.admitted_at]
    solve_cpu_s = sum(one.solve_cpu_s for one in listeners)
    return {
        "start_to_first_segment_at_edge_s": round(probe["first_segment_s"], 2),
        "start_call_answered_s": round(probe["start_answered_s"], 3),
        "generator": {
            "start_lag_s": percentiles([one.start_lag_s for one in listeners], (50, 95, 100)),
            "cpu_core_pct": round(100 * cpu_s / max(1e-6, time.monotonic() - now), 1),
            "transport_errors": dict(sum((one.errors for one in listeners), Counter())),
        },
        "listeners": len(listeners),
        "arrival_rate_per_s": arrival_rate,
        "admitted": len(admitted),
        "queued": len(queued),
        "queued_then_admitted": sum(1 for one in queued if one.admitted_at is not None),
        "first_positions": percentiles(
            [float(one.first_position) for one in queued if one.first_position is not None]
        )
        if queued
        else {},
        "wait_to_admission_s": percentiles(waits, (50, 95, 100)) if waits else {},
        "admitted_per_second": admitted_per_second(
            [one.admitted_at for one in admitted if one.admitted_at], args.rate, args.burst
        ),
        "heartbeats_after_admission": dict(Counter(str(one.heartbeat_status) for one in admitted)),
        "join_answers": {str(code): count for code, count in sorted(statuses.items())},
        "join_problems": dict(problems),
        "listener_server_errors": sum(
            count for code, count in statuses.items() if code >= 500 and code != 503
        ),
        "challenges_solved": sum(one.challenges for one in listeners),
        "client_cpu_s_per_counted_listener": round(cpu_s / max(1, len(admitted)), 4),
        "solve_cpu_s_per_counted_listener": round(solve_cpu_s / max(1, len(admitted)), 4),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    edge_port = free_port()
    env = {
        "ROSTRA_PUBLIC_URL": f"http://127.0.0.1:{edge_port}",
        "ROSTRA_TRUSTED_PROXIES": "127.0.0.1",
        # every simulated source is on loopback: only IPv6's exempt, so the limits apply to them
        "ROSTRA_LIMITS_EXEMPT": "::1/128",
    }
    phases = []
    with running_server(env) as server, tempfile.TemporaryDirectory() as folder:
        whip_origin = f"http://127.0.0.1:{server.whip_port}"
        edge = start_edge(server.url, whip_origin, edge_port, Path(folder) / "edge")
        try:
            deployment = Deployment(server=server, edge=edge, edge_port=edge_port)
            for mode in args.modes.split(","):
                phase = await run_phase(deployment, mode, args)
                print(json.dumps(_headline(phase)), flush=True)
                phases.append(phase)
        finally:
            stop_edge(edge)
    return {"phases": phases}


def _headline(phase: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "mode",
        "start_to_first_segment_at_edge_s",
        "program_frames_dropped",
        "admitted",
        "queued",
        "queued_then_admitted",
        "server_errors",
        "client_cpu_s_per_counted_listener",
        "solve_cpu_s_per_counted_listener",
    )
    headline = {key: phase.get(key) for key in keys}
    at_server = phase.get("admitted_per_second_at_server", {})
    headline["never_above_bucket_at_server"] = at_server.get("never_above_bucket")
    headline["max_admitted_in_1s_at_server"] = at_server.get("max_in_1s")
    headline["max_admitted_in_1s_at_clients"] = phase["admitted_per_second"]["max_in_1s"]
    return headline


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--attacker":
        attacker_main(sys.argv[2])
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        prober_main(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="admission rate per second")
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--surge-factor", type=float, default=10.0)
    parser.add_argument("--junk-s", type=float, default=60.0)
    parser.add_argument("--junk-rate", type=float, default=200.0, help="junk requests per s")
    parser.add_argument("--slowloris", type=int, default=200)
    parser.add_argument("--modes", default="off,auto")
    args = parser.parse_args()
    started_at = datetime.now(UTC)
    figures = asyncio.run(measure(args))
    figures["settings"] = vars(args)
    path = write_results(NAME, figures, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
