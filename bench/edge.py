"""The origin's cost behind the nginx edge, from 10 to 5,000 simulated HLS listeners.

`rostra serve` with a live space and a tone speaker, `rostra edge` in front (Debian's nginx).
Each simulated listener behaves like a player, on its own keep-alive connection to the edge.
With `--hls-mode ll` (the default, as the listener page's hls.js plays, and as the rehearsal's
`LlHlsListener`): one plain playlist read, a start PART-HOLD-BACK behind the live edge, then a
blocking playlist reload (`_HLS_msn`, `_HLS_part`) for each next part and each part fetched
once; LL-HLS multiplies a listener's requests (about 8/s), the edge collapses them. With
`--hls-mode legacy`: the live playlist once per target duration (1 s, ±10 % jitter), each new
segment once, in real time.
Per level: the origin's HTTP requests/s (the edge's access log: entries with an upstream address,
background refreshes included), the CPU of the origin's process tree and of nginx's, errors,
fetch times through the edge beside a few listeners fetching straight from the origin, and the
waits nginx's cache lock imposed (a waiter re-checks every 500 ms). The load generator's own lag
and CPU are recorded: a level where it fell behind is flagged, not blamed on the server.

Run from the repository root:
    .venv/bin/python bench/edge.py [--hls-mode ll|legacy] [--levels 10,100,1000,5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gate_servers import tree_cpu_s
from harness import (
    CpuMeter,
    create_space,
    percentiles,
    prioritize_clients,
    running_server,
    wait_for_segments,
    write_results,
)
from rostra.rehearse.hls_player import next_position, parse_live_playlist, parts_after, start_part

# isort: split
# the tests' helpers, importable once harness has put the repository on sys.path
from tests.conftest import free_port
from tests.e2e.conftest import LOG_LINE_RE, Edge, start_edge, stop_edge

NAME = "edge"
TARGET_DURATION_S = 1.0
JITTER = 0.1
REQUEST_TIMEOUT_S = 10.0
DIRECT_LISTENERS = 5
# a fetch at least this long through the edge, served from the cache, waited on the cache lock
LOCK_WAIT_S = 0.4
# the generator is behind when its p95 start lag exceeds this, or it used this much of a core
BEHIND_LAG_S = 0.25
BEHIND_CORE_FRACTION = 0.9
LOG_FLUSH_S = 1.5
SEGMENT_RE = re.compile(rb"^(seg_\d+\.m4s)$", re.MULTILINE)
HLS_MODES = ("ll", "legacy")
# an LL listener that got an error waits this long before asking again
LL_ERROR_PAUSE_S = 1.0
# how often the event loop's own lag is sampled (LL listeners have no schedule to be late on)
LOOP_PROBE_S = 0.05


class HttpError(Exception):
    """A status other than 200, or a response this minimal client cannot read."""


class Connection:
    """One keep-alive HTTP/1.1 connection, GET only: cheap enough for thousands of listeners in
    one process (httpx costs about ten times more CPU per request)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> bytes:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n"
        self.writer.write(request.encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        match = re.search(rb"\r\ncontent-length: *(\d+)", lower)
        if match is None:
            await self.close()
            raise HttpError(f"no Content-Length: {head[:200]!r}")
        body = await self.reader.readexactly(int(match.group(1)))
        if b"\r\nconnection: close" in lower:
            await self.close()
        status = int(head[9:12])
        if status != 200:
            raise HttpError(f"{status} for {path}")
        return body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass
class Tally:
    """What a group of listeners saw."""

    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    playlist_s: list[float] = field(default_factory=list)
    segment_s: list[float] = field(default_factory=list)
    lag_s: list[float] = field(default_factory=list)
    # LL-HLS: wall clock at a part's arrival minus the date-time of its end (its age)
    part_age_s: list[float] = field(default_factory=list)


async def listener(base: str, playlist_path: str, tally: Tally, stop_at: float) -> None:
    """A player: the playlist every target duration, each new segment once, until `stop_at`."""
    parts = httpx.URL(base)
    connection = Connection(parts.host, parts.port or 80)
    folder = playlist_path.rsplit("/", 1)[0]
    seen: set[bytes] = set()
    planned = time.monotonic()
    try:
        while planned < stop_at:
            tally.lag_s.append(time.monotonic() - planned)
            try:
                await fetch_round(connection, playlist_path, folder, seen, tally)
            except (HttpError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                tally.errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
                await connection.close()
            planned += TARGET_DURATION_S * random.uniform(1 - JITTER, 1 + JITTER)
            await asyncio.sleep(max(0.0, planned - time.monotonic()))
    finally:
        await connection.close()


async def ll_listener(base: str, playlist_path: str, tally: Tally, stop_at: float) -> None:
    """A low-latency player (hls.js in lowLatencyMode): a plain playlist read, the parts from
    PART-HOLD-BACK behind the live edge, then a blocking reload for each next part and each new
    part once, until `stop_at`."""
    parts = httpx.URL(base)
    connection = Connection(parts.host, parts.port or 80)
    folder = playlist_path.rsplit("/", 1)[0]
    last: tuple[int, int] | None = None
    path = playlist_path
    try:
        while time.monotonic() < stop_at:
            try:
                last, path = await ll_round(connection, playlist_path, path, folder, last, tally)
            except (HttpError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                tally.errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
                await connection.close()
                await asyncio.sleep(LL_ERROR_PAUSE_S)
    finally:
        await connection.close()


async def ll_round(
    connection: Connection,
    playlist_path: str,
    path: str,
    folder: str,
    last: tuple[int, int] | None,
    tally: Tally,
) -> tuple[tuple[int, int] | None, str]:
    """One blocking reload (or the first, plain, read) and the new parts it lists; returns the
    last part fetched and the next reload's path."""
    started = time.monotonic()
    text = await asyncio.wait_for(connection.get(path), REQUEST_TIMEOUT_S)
    tally.requests += 1
    tally.playlist_s.append(time.monotonic() - started)
    playlist = parse_live_playlist(text.decode())
    if last is None:
        start = start_part(playlist)
        if start is None:
            raise HttpError("the live playlist lists no parts: not LL-HLS")
        new = parts_after(playlist, (start.sequence_number, start.index - 1))
    else:
        new = parts_after(playlist, last)
    for part in new:
        started = time.monotonic()
        await asyncio.wait_for(connection.get(f"{folder}/{part.uri}"), REQUEST_TIMEOUT_S)
        tally.requests += 1
        tally.segment_s.append(time.monotonic() - started)
        if part.program_date_time_s is not None:
            tally.part_age_s.append(time.time() - part.program_date_time_s - part.duration_s)
        last = part.position
    if last is None:
        return None, playlist_path
    msn, index = next_position(playlist, last)
    return last, f"{playlist_path}?_HLS_msn={msn}&_HLS_part={index}"


async def probe_loop(tally: Tally, stop_at: float) -> None:
    """The event loop's lateness, sampled: an LL listener's generator is behind when its
    loop wakes late."""
    while time.monotonic() < stop_at:
        planned = time.monotonic() + LOOP_PROBE_S
        await asyncio.sleep(LOOP_PROBE_S)
        tally.lag_s.append(time.monotonic() - planned)


async def fetch_round(
    connection: Connection, playlist_path: str, folder: str, seen: set[bytes], tally: Tally
) -> None:
    started = time.monotonic()
    playlist = await asyncio.wait_for(connection.get(playlist_path), REQUEST_TIMEOUT_S)
    tally.requests += 1
    tally.playlist_s.append(time.monotonic() - started)
    names = SEGMENT_RE.findall(playlist)
    new = [name for name in names if name not in seen]
    if not seen:
        new = new[-1:]  # a player joins at the live edge
        seen.update(names)
    for name in new:
        seen.add(name)
        started = time.monotonic()
        await asyncio.wait_for(connection.get(f"{folder}/{name.decode()}"), REQUEST_TIMEOUT_S)
        tally.requests += 1
        tally.segment_s.append(time.monotonic() - started)


async def run_level(
    count: int, edge: Edge, origin_url: str, playlist_path: str, args: argparse.Namespace
) -> tuple[Tally, Tally, float, float]:
    """`count` listeners through the edge and a few straight to the origin; returns their
    tallies and the wall-clock window measured (after the ramp)."""
    through, direct = Tally(), Tally()
    start = time.monotonic()
    stop_at = start + args.ramp_s + args.measure_s
    play = ll_listener if args.hls_mode == "ll" else listener
    tasks = []
    for index in range(count):
        delay = args.ramp_s * index / count
        tasks.append(
            asyncio.create_task(delayed(delay, play, edge.url, playlist_path, through, stop_at))
        )
    for index in range(DIRECT_LISTENERS):
        delay = args.ramp_s * index / DIRECT_LISTENERS
        tasks.append(
            asyncio.create_task(delayed(delay, play, origin_url, playlist_path, direct, stop_at))
        )
    await asyncio.sleep(args.ramp_s)
    measured_from = time.time()
    through.lag_s.clear()  # the ramp's own lag is not the steady state's
    through.part_age_s.clear()
    direct.part_age_s.clear()
    if args.hls_mode == "ll":
        tasks.append(asyncio.create_task(probe_loop(through, stop_at)))
    await asyncio.gather(*tasks)
    return through, direct, measured_from, time.time()


async def delayed(
    delay_s: float, play: Any, base: str, path: str, tally: Tally, stop_at: float
) -> None:
    await asyncio.sleep(delay_s)
    await play(base, path, tally, stop_at)


def edge_log(edge: Edge, since: float, until: float) -> dict[str, Any]:
    """Origin requests (an upstream address) and cache statuses in the window."""
    upstream = 0
    statuses: Counter[str] = Counter()
    lock_waits = 0
    for line in edge.access_log.read_text().splitlines():
        match = LOG_LINE_RE.match(line)
        if not match or not since <= float(match["at"]) <= until:
            continue
        if match["upstream"] not in ("-", "c"):
            upstream += 1
        if match["upstream"] == "b":  # Varnish logs each origin request on a line of its own
            continue
        statuses[match["cache"] or "-"] += 1
        waited = line.split(" time=")[1].split()[0] if " time=" in line else "0"
        if match["cache"] == "HIT" and float(waited) >= LOCK_WAIT_S:
            lock_waits += 1
    # a HIT that took LOCK_WAIT_S waited on nginx's cache lock; Varnish has no such poll (and
    # holds blocking reloads as HITs that wait for the part), so there it is not counted
    waits = lock_waits if edge.engine == "nginx" else None
    return {"origin_requests": upstream, "cache_status": dict(statuses), "lock_waits": waits}


async def measure_level(
    count: int, edge: Edge, server: Any, playlist_path: str, args: argparse.Namespace
) -> dict[str, Any]:
    edge_pid, origin_pid = edge.process.pid, server.process.pid
    generator = CpuMeter(os.getpid())
    cpu_before = (tree_cpu_s(origin_pid), tree_cpu_s(edge_pid), generator.seconds())
    through, direct, since, until = await run_level(count, edge, server.url, playlist_path, args)
    cpu_after = (tree_cpu_s(origin_pid), tree_cpu_s(edge_pid), generator.seconds())
    await asyncio.sleep(LOG_FLUSH_S)
    wall_s = args.ramp_s + args.measure_s
    window_s = until - since
    log = edge_log(edge, since, until)
    segment_fetches = len(through.segment_s)
    origin_s, edge_s, generator_s = (b - a for a, b in zip(cpu_before, cpu_after, strict=True))
    lag = percentiles(through.lag_s)
    is_behind = lag.get("p95", 0) > BEHIND_LAG_S or generator_s / wall_s > BEHIND_CORE_FRACTION
    return {
        "listeners": count,
        "hls_mode": args.hls_mode,
        "window_s": round(window_s, 2),
        "origin_requests_per_s": round(log["origin_requests"] / window_s, 2),
        "origin_cpu_core_pct": round(100 * origin_s / wall_s, 1),
        "edge_cpu_core_pct": round(100 * edge_s / wall_s, 1),
        "edge_requests_per_s": round(sum(log["cache_status"].values()) / window_s, 1),
        "cache_status": log["cache_status"],
        "lock_waits": log["lock_waits"],
        "lock_waits_per_segment_fetch": (
            None
            if log["lock_waits"] is None
            else round(log["lock_waits"] / max(1, segment_fetches), 5)
        ),
        "errors": sum(through.errors.values()) + sum(direct.errors.values()),
        "error_kinds": dict((through.errors + direct.errors).most_common(5)),
        "through_edge": {
            "segment_fetch_s": percentiles(through.segment_s, (50, 95, 99)),
            "playlist_fetch_s": percentiles(through.playlist_s, (50, 95, 99)),
            "part_age_s": percentiles(through.part_age_s, (50, 95, 99)),
        },
        "straight_to_origin": {
            "segment_fetch_s": percentiles(direct.segment_s, (50, 95, 99)),
            "playlist_fetch_s": percentiles(direct.playlist_s, (50, 95, 99)),
            "part_age_s": percentiles(direct.part_age_s, (50, 95, 99)),
        },
        "generator": {
            "start_lag_s": lag,
            "cpu_core_pct": round(100 * generator_s / wall_s, 1),
            "is_behind": bool(is_behind),
        },
    }


def start_speaker(invite_url: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rostra", "speak", invite_url, "--tone", "440"]
    command += ["--seconds", "3600", "--name", "Tone"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    edge_port = free_port()
    env = {
        "ROSTRA_PUBLIC_URL": f"http://127.0.0.1:{edge_port}",
        "ROSTRA_TRUSTED_PROXIES": "127.0.0.1",
    }
    with running_server(env) as server, tempfile.TemporaryDirectory(prefix="rostra-edge-") as tmp:
        whip_origin = f"http://127.0.0.1:{server.whip_port}"
        edge = start_edge(server.url, whip_origin, edge_port, Path(tmp), engine=args.engine)
        speaker = None
        try:
            space = create_space(server, "Edge bench")
            speaker = start_speaker(space["speaker_invite_url"])
            playlist_url = space["hls_url"].replace("index.m3u8", "audio.m3u8")
            await wait_for_segments(playlist_url)
            playlist_path = playlist_url.removeprefix(edge.url)
            levels = []
            for count in args.levels:
                print(f"  {count} listeners for {args.ramp_s + args.measure_s:.0f} s …", flush=True)
                level = await measure_level(count, edge, server, playlist_path, args)
                levels.append(level)
                print_level(level)
                await asyncio.sleep(args.pause_s)
        finally:
            if speaker is not None:
                speaker.terminate()
                speaker.wait(timeout=15)
            stop_edge(edge)
    return {"levels": levels, "nginx": nginx_version()}


def nginx_version() -> str:
    result = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True, check=False)
    return result.stderr.strip()


HEADER = (
    f"{'listeners':>9} {'origin req/s':>12} {'origin CPU%':>11} {'edge CPU%':>9} "
    f"{'edge req/s':>10} {'errors':>6} {'seg p95/max edge':>16} {'seg p95/max direct':>18} "
    f"{'lock waits':>10} {'gen lag p95':>11} {'gen CPU%':>8} {'part age p50/p95':>16}"
)


def print_level(level: dict[str, Any]) -> None:
    seg_edge, seg_direct = (
        level[group]["segment_fetch_s"] for group in ("through_edge", "straight_to_origin")
    )
    nan = float("nan")
    edge_text = f"{seg_edge.get('p95', nan):.3f}/{seg_edge.get('max', nan):.3f}"
    direct_text = f"{seg_direct.get('p95', nan):.3f}/{seg_direct.get('max', nan):.3f}"
    generator = level["generator"]
    flag = "  GENERATOR BEHIND" if generator["is_behind"] else ""
    age = level["through_edge"]["part_age_s"]
    age_text = f"{age.get('p50', nan):.3f}/{age.get('p95', nan):.3f}"
    print(
        f"{level['listeners']:>9} {level['origin_requests_per_s']:>12.2f} "
        f"{level['origin_cpu_core_pct']:>11.1f} {level['edge_cpu_core_pct']:>9.1f} "
        f"{level['edge_requests_per_s']:>10.1f} {level['errors']:>6} {edge_text:>16} "
        f"{direct_text:>18} {'-' if level['lock_waits'] is None else level['lock_waits']:>10} "
        f"{generator['start_lag_s'].get('p95', float('nan')):>11.3f} "
        f"{generator['cpu_core_pct']:>8.1f} {age_text:>16}{flag}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="10,100,1000,5000", help="listener counts, in order")
    parser.add_argument(
        "--hls-mode",
        choices=HLS_MODES,
        default="ll",
        help="ll: parts and blocking reloads, as the listener page; legacy: whole segments",
    )
    parser.add_argument(
        "--engine", choices=("nginx", "varnish"), default="nginx", help="what `rostra edge` runs"
    )
    parser.add_argument("--ramp-s", type=float, default=4.0, help="listeners join over this")
    parser.add_argument("--measure-s", type=float, default=26.0, help="then measured this long")
    parser.add_argument("--pause-s", type=float, default=3.0, help="rest between levels")
    parser.add_argument(
        "--same-priority", action="store_true", help="do not run the clients ahead of the server"
    )
    args = parser.parse_args()
    args.levels = [max(1, int(x)) for x in args.levels.split(",")]
    args.ramp_s = min(max(args.ramp_s, 1.0), 30.0)
    args.measure_s = min(max(args.measure_s, 5.0), 120.0)
    niceness = prioritize_clients(not args.same_priority)
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print(
        f"edge bench: {args.hls_mode} HLS, levels {args.levels}, "
        f"{args.ramp_s + args.measure_s:.0f} s each"
    )
    print(HEADER)
    result = asyncio.run(measure(args))
    result.update(
        load_average_at_start=load_at_start,
        niceness=niceness,
        settings={
            "ramp_s": args.ramp_s,
            "measure_s": args.measure_s,
            "jitter": JITTER,
            "hls_mode": args.hls_mode,
            "engine": args.engine,
        },
        definitions=DEFINITIONS,
    )
    print("\n" + HEADER)
    for level in result["levels"]:
        print_level(level)
    name = NAME if args.hls_mode == "legacy" else f"{NAME}_ll"
    name += "" if args.engine == "nginx" else f"_{args.engine}"
    path = write_results(name, result, started_at=started_at)
    print(f"wrote {path}")


DEFINITIONS = {
    "origin_requests_per_s": "entries of the edge's access log with an upstream address (misses, "
    "revalidations, background refreshes; log_subrequest on) over the measured window",
    "origin_cpu_core_pct": "user+system CPU of `rostra serve`'s process tree (supervisor, "
    "origin, listener workers; the speaker's media path included) over the level, % of one core",
    "edge_cpu_core_pct": "the same for nginx's master and workers",
    "lock_waits": "requests served from the cache (HIT) that took >= 0.4 s: they waited on "
    "proxy_cache_lock, whose waiters re-check every 500 ms",
    "segment_fetch_s": "request sent to last body byte, per segment (per part with --hls-mode "
    f"ll), through the edge and, for {DIRECT_LISTENERS} listeners, straight from the origin",
    "playlist_fetch_s": "the same per playlist; with --hls-mode ll most are blocking reloads, "
    "held until the next part exists (up to a part, 0.256 s, by design)",
    "part_age_s": "--hls-mode ll: wall clock when a part arrived minus the date-time of its "
    "last sample (how long after its making a listener had it)",
    "generator.start_lag_s": "legacy: how late a listener started its round against its plan; "
    "ll: how late the event loop woke from a 50 ms sleep; p95 above "
    f"{BEHIND_LAG_S} s or a generator above {BEHIND_CORE_FRACTION:.0%} of a core flags the level",
}


if __name__ == "__main__":
    main()
