"""A long event in bounded memory: two voices and 100 listeners for M minutes, sampling the
resident memory (VmRSS) and open file descriptors of every process of the server's tree
(supervisor, origin, listener workers) and of the speaker bots; per process, the slope in MB per
hour and in descriptors per hour over the second half of the run (the first is warm-up).

The two voices are speaker bots over WHIP (the space's whip_url) in a child process of their own
(this script with --voices-worker), sending pre-encoded speech in a loop and receiving their
mix-minus. The listeners are HLS players (join, heartbeat, fetch the live playlist about every
second and each new segment once) and progressive readers of stream.aac and stream.opus.

Run from the repository root:  .venv/bin/python bench/soak.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx
import numpy as np

from bots import OpusPacketTrack, ReturnTap, join
from cost import MAX_VOICES, voice_packets
from harness import (
    RESULTS_DIR,
    ROOT,
    create_space,
    percentiles,
    prioritize_clients,
    process_sample,
    process_tree,
    running_server,
    write_results,
)
from isolation import FloodStats, SpaceUrls, progressive_reader
from latency import wait_for_segments

NAME = "soak"
VOICES = 2
HTTP_TIMEOUT_S = 10.0
PLAYLIST_PERIOD_S = 1.0
PLAYLIST_JITTER = 0.1
VOICES_READY = "VOICES_READY"
VOICES_START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
MB_PER_HOUR_NOISE = "slope ± its standard error (least squares over the second half)"
# listener workers' memory dumps (web/memory_diagnostics.py, on SIGUSR2) are copied here
MEMORY_DUMPS_DIR = RESULTS_DIR / "soak-memory"
LAST_DUMP_BEFORE_END_S = 10.0


# --- the voices (child process) ------------------------------------------------------------


async def _voices(space: dict[str, Any]) -> None:
    """Two bots on stage until stdin closes (the parent ends them so), then they leave."""
    packets = voice_packets("browser")
    urls = SpaceUrls.of(space)
    async with httpx.AsyncClient() as client:
        bots = []
        for index in range(VOICES):
            track = OpusPacketTrack(packets, first_packet=index * len(packets) // MAX_VOICES)
            bot = await join(
                client, urls.invite, track, name=f"voice {index + 1}", tap=ReturnTap(),
                whip_url=urls.whip,
            )  # fmt: skip
            await bot.wait_connected()
            bots.append(bot)
        print(VOICES_READY, flush=True)
        await asyncio.to_thread(sys.stdin.read)
        returned = [bot.tap.packets for bot in bots]
        for bot in bots:
            await bot.leave(client)
    print(json.dumps({"mix_minus_packets": returned}), flush=True)


# --- the listeners -------------------------------------------------------------------------


@dataclass(slots=True)
class HlsStats:
    playlists: int = 0
    segments: int = 0
    bytes: int = 0
    heartbeats: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    playlist_fetch_s: list[float] = field(default_factory=list)
    longest_without_new_segment_s: float = 0.0


async def hls_player(
    client: httpx.AsyncClient, urls: SpaceUrls, stop_at: float, stats: HlsStats
) -> None:
    """Joins, heartbeats at the interval it is given, fetches the media playlist about every
    second and each segment (and the init segment) once, in real time."""
    playlist_url = urls.listener_base + urls.playlist_path
    ticket, beat_every_s = await _join(client, urls, stats)
    next_beat = time.monotonic() + beat_every_s
    seen: set[str] = set()
    last_new = time.monotonic()
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            response = await client.get(playlist_url)
            stats.playlist_fetch_s.append(time.monotonic() - started)
            stats.playlists += 1
            if response.status_code != 200:
                stats.errors[f"playlist {response.status_code}"] += 1
            for uri in _media_uris(response.text) if response.status_code == 200 else []:
                if uri not in seen:
                    seen.add(uri)
                    last_new = time.monotonic()
                    await _fetch_segment(client, urljoin(playlist_url, uri), stats)
            if ticket and time.monotonic() >= next_beat:
                ticket = await _heartbeat(client, urls, ticket, stats)
                next_beat += beat_every_s
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
        stats.longest_without_new_segment_s = max(
            stats.longest_without_new_segment_s, time.monotonic() - last_new
        )
        period = PLAYLIST_PERIOD_S * random.uniform(1 - PLAYLIST_JITTER, 1 + PLAYLIST_JITTER)
        await asyncio.sleep(max(0.0, started + period - time.monotonic()))


def _media_uris(playlist: str) -> list[str]:
    uris = []
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-MAP:") and 'URI="' in line:
            uris.append(line.split('URI="', 1)[1].split('"', 1)[0])
        elif line and not line.startswith("#"):
            uris.append(line.strip())
    return uris


async def _fetch_segment(client: httpx.AsyncClient, url: str, stats: HlsStats) -> None:
    response = await client.get(url)
    if response.status_code == 200:
        stats.segments += 1
        stats.bytes += len(response.content)
    else:
        stats.errors[f"segment {response.status_code}"] += 1


async def _join(client: httpx.AsyncClient, urls: SpaceUrls, stats: HlsStats) -> tuple[str, float]:
    try:
        response = await client.post(urls.listener_base + urls.join_path)
    except httpx.HTTPError as exc:
        stats.errors[f"join {type(exc).__name__}"] += 1
        return "", 0.0
    if response.status_code != 201:
        stats.errors[f"join {response.status_code}"] += 1
        return "", 0.0
    body = response.json()
    return str(body["ticket"]), float(body["heartbeat_interval_s"])


async def _heartbeat(
    client: httpx.AsyncClient, urls: SpaceUrls, ticket: str, stats: HlsStats
) -> str:
    path = urls.join_path.removesuffix("/join") + "/heartbeat"
    response = await client.post(
        urls.listener_base + path, headers={"Authorization": f"Bearer {ticket}"}
    )
    stats.heartbeats += 1
    if response.status_code == 200:
        return str(response.json().get("ticket", ticket))
    if response.status_code != 204:
        stats.errors[f"heartbeat {response.status_code}"] += 1
    return ticket


# --- sampling ------------------------------------------------------------------------------


def role_of(pid: int, root: int, voices: int, command: str) -> str:
    if pid == root:
        return "server (root)"
    if pid == voices:
        return "speaker bots"
    if pid == os.getpid():
        return "this bench (listeners)"
    words = command.split()
    return " ".join(words[2:5]) if len(words) > 2 else command


def sample(pids: dict[int, str], elapsed_s: float) -> list[dict[str, Any]]:
    rows = []
    for pid, role in pids.items():
        found = process_sample(pid)
        if found is not None:
            rows.append({"t_s": round(elapsed_s, 1), "role": role, **found})
    return rows


def slopes(rows: list[dict[str, Any]], duration_s: float) -> list[dict[str, Any]]:
    """Per process: RSS and fds first, last and largest, and their least-squares slope per
    hour over the second half of the run (after warm-up)."""
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_pid.setdefault(row["pid"], []).append(row)
    report = []
    for pid, series in by_pid.items():
        late = [r for r in series if r["t_s"] >= duration_s / 2]
        hours = np.array([r["t_s"] / 3600 for r in late])
        figures: dict[str, Any] = {
            "pid": pid,
            "role": series[0]["role"],
            "command": series[0]["command"],
            "samples": len(series),
            "rss_mb": {
                "first": series[0]["rss_mb"],
                "last": series[-1]["rss_mb"],
                "max": max(r["rss_mb"] for r in series),
            },
            "fds": {"first": series[0]["fds"], "last": series[-1]["fds"]},
            "cpu_s": round(series[-1]["cpu_s"] - series[0]["cpu_s"], 1),
        }
        for key, unit in (("rss_mb", "mb_per_hour"), ("fds", "fds_per_hour")):
            figures[f"{unit}_second_half"] = _slope(hours, [r[key] for r in late])
        report.append(figures)
    return report


def _slope(hours: np.ndarray[Any, Any], values: list[float]) -> dict[str, float] | None:
    if hours.size < 4 or np.ptp(hours) == 0:
        return None
    (slope, _intercept), covariance = np.polyfit(hours, np.array(values, float), 1, cov=True)
    return {
        "slope": round(float(slope), 2),
        "stderr": round(float(np.sqrt(covariance[0][0])), 2),
        "points": int(hours.size),
    }


# --- the run -------------------------------------------------------------------------------


async def _start_voices(space: dict[str, Any]) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--voices-worker", json.dumps(space),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), VOICES_START_TIMEOUT_S)
    if line.decode().strip() != VOICES_READY:
        process.kill()
        raise RuntimeError(f"the speaker bots did not start: {line[-300:]!r}")
    return process


async def _stop_voices(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdin is not None
    process.stdin.close()
    try:
        out, _ = await asyncio.wait_for(process.communicate(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": "the speaker bots gave no summary"}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    duration_s = args.minutes * 60
    env = dict(item.split("=", 1) for item in args.env)
    with running_server(extra_env=env) as server:
        space = create_space(server, "Soak bench")
        urls = SpaceUrls.of(space)
        await wait_for_segments(urls.listener_base + urls.playlist_path)
        voices = await _start_voices(space)
        hls, streams = HlsStats(), FloodStats()
        base = urlparse(urls.listener_base)
        reader = {
            "host": base.hostname, "port": base.port, "read_bytes": 16_384,
            "read_pause_s": 0.0, "retry_s": 1.0,
        }  # fmt: skip
        started = time.monotonic()
        stop_at = started + duration_s
        limits = httpx.Limits(max_connections=args.hls + 8)
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, limits=limits) as client:
            tasks = [
                asyncio.create_task(hls_player(client, urls, stop_at, hls)) for _ in range(args.hls)
            ]
            tasks += [
                asyncio.create_task(
                    progressive_reader(reader, urls.stream_paths[k % 2], stop_at, streams)
                )
                for k in range(args.progressive)
            ]
            state_url = urls.listener_base + urls.state_path
            if args.memory_dumps_min:
                tasks.append(
                    asyncio.create_task(
                        _memory_dumps(server.process.pid, args.memory_dumps_min * 60, stop_at)
                    )
                )
            rows, counts = await _sample_until(
                server.process.pid, voices.pid, state_url, args.sample_s, stop_at
            )
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        voices_summary = await _stop_voices(voices)
        dumps = _keep_memory_dumps(server.data / "run") if args.memory_dumps_min else []
    return {
        "memory_dumps": dumps,
        "minutes": args.minutes,
        "server_env": env,
        "sample_s": args.sample_s,
        "listeners": {
            "hls_players": args.hls,
            "progressive_readers": args.progressive,
            "hls": _hls_json(hls),
            "progressive": streams.as_json()["progressive"],
            "state_json_over_time": counts,
        },
        "voices": {"count": VOICES, **voices_summary},
        "processes": slopes(rows, duration_s),
        "slope_definition": MB_PER_HOUR_NOISE,
        "samples": rows,
    }


def _hls_json(stats: HlsStats) -> dict[str, Any]:
    return {
        "playlists": stats.playlists,
        "segments": stats.segments,
        "bytes": stats.bytes,
        "heartbeats": stats.heartbeats,
        "errors": dict(stats.errors),
        "longest_without_new_segment_s": round(stats.longest_without_new_segment_s, 2),
        "playlist_fetch_s": percentiles(stats.playlist_fetch_s, (50, 95, 99)),
    }


def _listener_workers(root: int) -> list[int]:
    workers = []
    for pid in process_tree(root):
        found = process_sample(pid)
        if found is not None and "rostra.web.processes worker" in found["command"]:
            workers.append(pid)
    return workers


async def _memory_dumps(root: int, every_s: float, stop_at: float) -> None:
    """SIGUSR2 to each listener worker now (tracing starts: a baseline), then every
    `every_s`, the last one some seconds before the end (a dump takes a moment to write)."""
    while True:
        for pid in _listener_workers(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR2)
        left_s = stop_at - time.monotonic() - LAST_DUMP_BEFORE_END_S
        if left_s < 1.0:
            return
        await asyncio.sleep(min(every_s, left_s))


def _keep_memory_dumps(run_dir: Path) -> list[str]:
    """The workers' dumps, out of the server's temporary data folder."""
    if MEMORY_DUMPS_DIR.is_dir():
        shutil.rmtree(MEMORY_DUMPS_DIR)
    MEMORY_DUMPS_DIR.mkdir(parents=True)
    kept = []
    for path in sorted(run_dir.glob("memory-*.txt")):
        shutil.copy(path, MEMORY_DUMPS_DIR / path.name)
        kept.append(str((MEMORY_DUMPS_DIR / path.name).relative_to(ROOT)))
    return kept


async def _sample_until(
    root: int, voices: int, state_url: str, sample_s: float, stop_at: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every `sample_s`: each process of the server's tree (found anew each time: a restarted
    origin is a new process), the bots' process and this one; and what state.json counts."""
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    counts: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        while True:
            elapsed = time.monotonic() - started
            pids: dict[int, str] = {}
            for pid in [*process_tree(root), voices, os.getpid()]:
                found = process_sample(pid)
                if found is not None:
                    pids[pid] = role_of(pid, root, voices, found["command"])
            rows += sample(pids, elapsed)
            counts.append(await _state_counts(client, state_url, elapsed))
            if time.monotonic() >= stop_at:
                return rows, counts
            print(f"  {elapsed / 60:5.1f} min: " + _line(rows, elapsed), flush=True)
            await asyncio.sleep(min(sample_s, max(0.0, stop_at - time.monotonic())))


def _line(rows: list[dict[str, Any]], elapsed: float) -> str:
    now = [r for r in rows if r["t_s"] == round(elapsed, 1)]
    return ", ".join(f"{r['role']} {r['rss_mb']:.0f} MB/{r['fds']} fds" for r in now)


async def _state_counts(client: httpx.AsyncClient, url: str, elapsed: float) -> dict[str, Any]:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        body = (await client.get(url)).json()
        return {
            "t_s": round(elapsed, 1),
            "listeners": body.get("listeners"),
            "stream_listeners": body.get("stream_listeners"),
        }
    return {"t_s": round(elapsed, 1), "error": "state.json did not answer"}


def print_summary(result: dict[str, Any]) -> None:
    print(f"\n{'process':40} {'RSS first→last MB':>20} {'MB/h (2nd half)':>18} {'fds/h':>12}")
    for p in result["processes"]:
        rss, mb, fd = p["rss_mb"], p["mb_per_hour_second_half"], p["fds_per_hour_second_half"]
        slope = "-" if mb is None else f"{mb['slope']:+.1f} ± {mb['stderr']:.1f}"
        fds = "-" if fd is None else f"{fd['slope']:+.0f} ± {fd['stderr']:.0f}"
        label = f"{p['role']} ({p['pid']})"
        print(f"{label:40} {rss['first']:>9.1f} → {rss['last']:<8.1f} {slope:>18} {fds:>12}")
    hls = result["listeners"]["hls"]
    print(f"HLS players: {hls['segments']} segments, {hls['playlists']} playlists, ", end="")
    print(f"errors {hls['errors']}; progressive: {result['listeners']['progressive']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the run")
    parser.add_argument("--sample-s", type=float, default=10.0, help="time between samples")
    parser.add_argument("--hls", type=int, default=80, help="HLS players")
    parser.add_argument("--progressive", type=int, default=20, help="progressive readers")
    parser.add_argument(
        "--same-priority", action="store_true", help="do not run the clients ahead of the server"
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="ROSTRA_X=V", help="server setting"
    )
    parser.add_argument(
        "--memory-dumps-min",
        type=float,
        default=0.0,
        metavar="M",
        help="SIGUSR2 the listener workers at the start and every M minutes: their memory dumps "
        "(tracemalloc from the first) go to bench/results/soak-memory/",
    )
    parser.add_argument("--voices-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.voices_worker:
        asyncio.run(_voices(json.loads(args.voices_worker)))
        return
    niceness = prioritize_clients(not args.same_priority)
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print(f"soak bench: {args.minutes:g} min, {VOICES} voices, {args.hls} HLS players, ", end="")
    print(f"{args.progressive} progressive readers, a sample every {args.sample_s:g} s")
    result = asyncio.run(measure(args))
    result["load_average_at_start"] = load_at_start
    result["niceness"] = niceness
    print_summary(result)
    path = write_results(NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
