"""Speakers' path isolation: two voices on stage with mix-minus, first idle, then while a flood
saturates the listener side (wrk rotating over state.json, the live playlist, the latest segment
and joins as fast as they answer; 300 slow progressive listeners; 1,000 half-open connections).

Measured on the same run against today's single process (a worktree of the baseline commit) and
the working tree's server (supervisor, origin, listener workers; with and without the workers'
scheduling priority when the server has ROSTRA_WORKER_NICE):
  - speaker-to-speaker latency (marks decoded on the mix-minus packets' arrival), idle vs flood;
  - program frames dropped and mixer ticks late, from the server's /metrics;
  - a new speaker's WHIP answer time (a real offer POSTed to the space's whip_url, then DELETE);
  - segment cadence at the origin (mtimes of new seg_*.m4s in the data folder).

The flood runs in a child process (this script with --flood-worker) pinned with wrk to one core.

Run from the repository root:  .venv/bin/python bench/isolation.py [--idle-s 20] [--flood-s 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection

from bots import ReturnTap, TimedPcmTrack, join, sender_lateness
from gate_servers import free_port
from harness import (
    ADMIN_TOKEN,
    ROOT,
    STARTING_NICENESS,
    Server,
    create_space,
    percentiles,
    prioritize_clients,
    process_sample,
    process_tree,
    running_server,
    wait_for_segments,
    write_results,
)
from marks import SAMPLE_RATE_HZ, Mark, OnsetDetector, mark_train, match_marks
from rostra.media.opus import OpusDecoder, OpusError
from rostra.rehearse.speaker import whip_target
from wrk_load import REQUEST_TIMEOUT_S, RESULT_MARK, wrk_binary, wrk_version

NAME = "isolation"
# /metrics answers the admin token only
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BASELINE_COMMIT = "22cf42e"
BASELINE_TREE = Path("/tmp/rostra-baseline")  # noqa: S108 - the worktree the lead names
SEGMENT_S = 1.024
CADENCE_TOLERANCE_S = 0.050
S2S_P95_MARGIN_S = 0.020
WHIP_P95_TARGET_S = 0.250
LATE_TICK_S = 0.020
SETTLE_S = 3.0
# past this (p99 of the bots' loop lag or of the talker's sender lateness) a phase is flagged
CLIENT_LAG_LIMIT_S = 0.040
TAIL_S = 3.0
MARK_LEAD_S = 1.0
MARK_SLACK_S = 60.0
IDLE_WHIP_PROBES = 5
HTTP_TIMEOUT_S = 15.0
FLOOD_SETUP_TIMEOUT_S = 30.0
FLOOD_EXTRA_S = 60.0
READY_LINE = "FLOOD_READY "
RESULT_LINE = "FLOOD_RESULT "
LATE_METRIC = "rostra_mixer_late_ticks"
LATENESS_METRIC = "rostra_mixer_max_lateness_seconds"
DROPPED_METRIC = "rostra_program_frames_dropped"
# what we need when the server does not say how many ticks were late by more than 20 ms
WANTED_LATE_METRIC = (
    'rostra_mixer_tick_lateness_seconds histogram (buckets including le="0.02"), or a counter '
    "rostra_mixer_late_ticks_over_20ms_total, labelled by space"
)

# wrk rotates over the listener side's reads and joins; it learns the latest segment from the
# playlists it fetches. done() reports the answers by status from each thread's own table.
WRK_SCRIPT = """
local state, playlist, join, dir = "/", "/", "/", "/"
local segment = nil
local n = 0
statuses = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  state, playlist, join, dir = args[1], args[2], args[3], args[4]
end

function request()
  n = n + 1
  local k = n % 4
  if k == 1 then return wrk.format("GET", playlist) end
  if k == 2 and segment ~= nil then return wrk.format("GET", dir .. segment) end
  if k == 3 then return wrk.format("POST", join, nil, "") end
  return wrk.format("GET", state)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if body ~= nil and string.sub(body, 1, 7) == "#EXTM3U" then
    local last = nil
    for name in string.gmatch(body, "[%w_%-]+%.m4s") do last = name end
    if last ~= nil then segment = last end
  end
end

function done(summary, latency, requests)
  local pairs_out = {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses")) do
      table.insert(pairs_out, string.format('["%s", %d]', k, v))
    end
  end
  local e = summary.errors
  io.write(string.format(
    '@MARK@{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"statuses": [%s]}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, table.concat(pairs_out, ", ")))
end
"""


# --- the flood (child process) -------------------------------------------------------------


@dataclass(slots=True)
class FloodStats:
    """What the flood's own clients saw."""

    reader_statuses: Counter[str] = field(default_factory=Counter)
    reader_bytes: int = 0
    reader_closed_by_server: int = 0
    reader_errors: Counter[str] = field(default_factory=Counter)
    readers_streaming: int = 0
    half_open_opened: int = 0
    half_open_now: int = 0
    half_open_closed_by_server: int = 0
    half_open_answered: int = 0
    half_open_connect_errors: Counter[str] = field(default_factory=Counter)
    half_open_held: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        held = self.half_open_held or [0]
        return {
            "progressive": {
                "answers_by_status": dict(self.reader_statuses),
                "bytes_read": self.reader_bytes,
                "closed_by_server": self.reader_closed_by_server,
                "errors": dict(self.reader_errors),
            },
            "half_open": {
                "opened": self.half_open_opened,
                "closed_by_server": self.half_open_closed_by_server,
                "answered": self.half_open_answered,
                "connect_errors": dict(self.half_open_connect_errors),
                "held_each_second": {"min": min(held), "mean": round(float(np.mean(held)), 1)},
            },
        }


async def progressive_reader(
    config: dict[str, Any], path: str, stop_at: float, stats: FloodStats
) -> None:
    """A progressive listener reading `read_bytes` every `read_pause_s` (slower than the
    stream), reconnecting when refused or cut off."""
    host, port, chunk = config["host"], config["port"], config["read_bytes"]
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    while time.monotonic() < stop_at:
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=chunk), REQUEST_TIMEOUT_S
            )
            writer.write(request)
            status_line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)
            status = status_line.split()[1].decode() if status_line else "closed"
            stats.reader_statuses[status] += 1
            if status == "200":
                await _read_slowly(reader, config, stop_at, stats)
            else:
                await asyncio.sleep(config["retry_s"])
        except (OSError, TimeoutError, IndexError) as exc:
            stats.reader_errors[type(exc).__name__] += 1
            await asyncio.sleep(config["retry_s"])
        finally:
            if writer is not None:
                writer.close()


async def _read_slowly(
    reader: asyncio.StreamReader, config: dict[str, Any], stop_at: float, stats: FloodStats
) -> None:
    stats.readers_streaming += 1
    try:
        while time.monotonic() < stop_at:
            data = await asyncio.wait_for(reader.read(config["read_bytes"]), REQUEST_TIMEOUT_S)
            if not data:
                stats.reader_closed_by_server += 1
                return
            stats.reader_bytes += len(data)
            await asyncio.sleep(config["read_pause_s"])
    finally:
        stats.readers_streaming -= 1


async def _half_open(config: dict[str, Any], stop_at: float, stats: FloodStats) -> None:
    """Connect, send part of a request line and headers, hold; again when the server lets go."""
    host, port = config["host"], config["port"]
    partial = f"GET {config['state_path']} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), REQUEST_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            stats.half_open_connect_errors[type(exc).__name__] += 1
            await asyncio.sleep(config["retry_s"])
            continue
        stats.half_open_opened += 1
        stats.half_open_now += 1
        try:
            writer.write(partial)
            data = await asyncio.wait_for(reader.read(1024), max(0.1, stop_at - time.monotonic()))
            if data:
                stats.half_open_answered += 1
            else:
                stats.half_open_closed_by_server += 1
        except (OSError, TimeoutError):
            pass
        finally:
            stats.half_open_now -= 1
            writer.close()
        await asyncio.sleep(config["retry_s"])


def _wrk_command(config: dict[str, Any]) -> list[str]:
    return [
        "taskset", "-c", str(config["core"]),
        wrk_binary(), "-t1", f"-c{config['wrk_connections']}", f"-d{config['flood_s']}s",
        f"--timeout={REQUEST_TIMEOUT_S}s", "-s", config["script"], config["base_url"], "--",
        config["state_path"], config["playlist_path"], config["join_path"],
        config["playlist_path"].rsplit("/", 1)[0] + "/",
    ]  # fmt: skip


async def _flood(config: dict[str, Any]) -> dict[str, Any]:
    stats = FloodStats()
    deadline = time.monotonic() + FLOOD_SETUP_TIMEOUT_S + config["flood_s"]
    streams = config["stream_paths"]
    tasks = [
        asyncio.create_task(progressive_reader(config, streams[k % len(streams)], deadline, stats))
        for k in range(config["readers"])
    ]
    tasks += [
        asyncio.create_task(_half_open(config, deadline, stats)) for _ in range(config["half_open"])
    ]
    setup_until = time.monotonic() + FLOOD_SETUP_TIMEOUT_S
    while time.monotonic() < setup_until and (  # noqa: ASYNC110 - counters of 1,300 tasks
        stats.half_open_now < config["half_open"] or sum(stats.reader_statuses.values()) == 0
    ):
        await asyncio.sleep(0.1)
    command = _wrk_command(config)
    wrk = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    started_at = time.time()
    print(READY_LINE + json.dumps({"at": started_at}), flush=True)
    ended_at = started_at + config["flood_s"]
    while time.time() < ended_at:
        stats.half_open_held.append(stats.half_open_now)
        await asyncio.sleep(1.0)
    try:
        out, err = await asyncio.wait_for(wrk.communicate(), FLOOD_EXTRA_S)
    except TimeoutError:
        wrk.kill()
        out, err = await wrk.communicate()
    ended_at = time.time()
    readers_at_end = stats.readers_streaming
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return {
        "started_at": started_at,
        "ended_at": ended_at,
        "cpu_s": {
            "flood_clients": round(own.ru_utime + own.ru_stime, 2),
            "wrk": round(children.ru_utime + children.ru_stime, 2),
        },
        "wrk": _wrk_figures(out.decode(), err.decode(), command),
        "progressive_streaming_at_end": readers_at_end,
        **stats.as_json(),
    }


def _wrk_figures(stdout: str, stderr: str, command: list[str]) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARK)]
    if not lines:
        return {"error": stderr[-500:] or stdout[-500:], "command": shlex.join(command)}
    raw = json.loads(lines[-1].removeprefix(RESULT_MARK))
    statuses: Counter[str] = Counter()
    for status, count in raw.pop("statuses"):
        statuses[status] += count
    duration_s = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "duration_s": round(duration_s, 3),
        "rate_per_s": round(raw["requests"] / duration_s, 1),
        "answers_by_status": dict(sorted(statuses.items())),
        "not_2xx_3xx": raw["status"],
        "socket_errors": raw["connect"] + raw["read"] + raw["write"],
        "timeouts": raw["timeout"],
        "latency_ms": {k: round(raw[f"{k}_us"] / 1000, 2) for k in ("p50", "p99", "max")},
        "command": shlex.join(command),
    }


def flood_worker(config_json: str) -> None:
    """The child process: run the flood, print when it is on and what it saw."""
    config = json.loads(config_json)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(_flood(config))
    print(RESULT_LINE + json.dumps(result), flush=True)


# --- the space under test ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpaceUrls:
    """Every URL from the space JSON: speakers' (whip_url) and listeners' (the rest)."""

    space_id: str
    invite: str
    whip: str
    token: str
    listener_base: str
    state_path: str
    playlist_path: str
    join_path: str
    stream_paths: tuple[str, ...]

    @classmethod
    def of(cls, space: dict[str, Any]) -> SpaceUrls:
        state = urlparse(space["state_url"])
        playlist = urlparse(space["hls_url"].replace("index.m3u8", "audio.m3u8"))
        return cls(
            space_id=space["id"],
            invite=space["speaker_invite_url"],
            whip=space["whip_url"],
            token=whip_target(space["speaker_invite_url"]).token,
            listener_base=f"{state.scheme}://{state.netloc}",
            state_path=state.path,
            playlist_path=playlist.path,
            join_path=f"/api/v1/spaces/{space['id']}/join",
            stream_paths=tuple(urlparse(space[k]).path for k in ("stream_url", "opus_stream_url")),
        )

    @property
    def whip_base(self) -> str:
        parsed = urlparse(self.whip)
        return f"{parsed.scheme}://{parsed.netloc}"


def parse_metrics(text: str, space_id: str) -> dict[str, float]:
    """The space's samples (and unlabelled rostra_* samples), keyed by name plus any labels
    besides `space` (`name{le="0.02"}`); counters without their `_total`."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("rostra_"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        pairs = [p for p in labels.rstrip("}").split(",") if p]
        if pairs and f'space="{space_id}"' not in pairs:
            continue
        others = [p for p in pairs if not p.startswith("space=")]
        key = name.removesuffix("_total") + ("{" + ",".join(others) + "}" if others else "")
        with contextlib.suppress(ValueError):
            values[key] = float(value)
    return values


async def read_metrics(client: httpx.AsyncClient, urls: list[str], space_id: str) -> dict[str, Any]:
    """/metrics from the first of `urls` that reports the space's mixer clock."""
    for url in urls:
        with contextlib.suppress(httpx.HTTPError):
            response = await client.get(url, headers=ADMIN_AUTH, timeout=HTTP_TIMEOUT_S)
            values = parse_metrics(response.text, space_id)
            if LATE_METRIC in values:
                return {"url": url, "values": values}
    return {"url": None, "values": {}}


def late_over_20ms(values: dict[str, float]) -> float | None:
    """Ticks late by more than 20 ms, if the server says: a counter, or a lateness histogram."""
    for key, value in values.items():
        if key.startswith("rostra_mixer_late_ticks_over_20ms"):
            return value
    for key, value in values.items():
        if key.startswith("rostra_mixer_") and key.endswith('_bucket{le="0.02"}'):
            count = values.get(key.split("_bucket{")[0] + "_count")
            if count is not None:
                return count - value
    return None


def clock_figures(
    before: dict[str, float], after: dict[str, float], span_s: float
) -> dict[str, Any]:
    def delta(name: str) -> float | None:
        if name not in after:
            return None
        return after[name] - before.get(name, 0.0)

    late = delta(LATE_METRIC)
    over_20 = late_over_20ms(after)
    over_20_before = late_over_20ms(before)
    if over_20 is not None:
        over_20 -= over_20_before or 0.0
    return {
        "program_frames_dropped": delta(DROPPED_METRIC),
        "late_ticks": late,
        "late_ticks_per_min": None if late is None else round(60 * late / span_s, 1),
        "late_ticks_over_20ms": over_20,
        "late_ticks_over_20ms_per_min": None
        if over_20 is None
        else round(60 * over_20 / span_s, 2),
        "max_lateness_s_so_far": after.get(LATENESS_METRIC),
    }


def segment_times(data: Path, space_id: str) -> list[tuple[int, float]]:
    """(sequence, mtime) of every segment the origin wrote for the space, in order."""
    found: list[tuple[int, float]] = []
    for path in data.rglob("seg_*.m4s"):
        if space_id in path.parts:
            with contextlib.suppress(OSError, ValueError):
                found.append((int(path.stem.split("_")[1]), path.stat().st_mtime))
    return sorted(found)


def cadence(times: list[tuple[int, float]], start: float, end: float) -> dict[str, Any]:
    """Intervals between consecutive segments whose later one was written in [start, end]."""
    intervals = [
        b[1] - a[1]
        for a, b in itertools.pairwise(times)
        if b[0] == a[0] + 1 and start <= b[1] <= end
    ]
    deviations = [abs(x - SEGMENT_S) for x in intervals]
    return {
        "intervals": len(intervals),
        "interval_s": percentiles(intervals),
        "deviation_s": percentiles(deviations, (50, 95)),
        "outside_50ms": sum(d > CADENCE_TOLERANCE_S for d in deviations),
    }


def cpu_by_process(
    before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]], span_s: float
) -> list[dict[str, Any]]:
    rows = []
    for pid, sample in after.items():
        used = sample["cpu_s"] - before.get(pid, {"cpu_s": 0.0})["cpu_s"]
        rows.append(
            {
                "pid": pid,
                "command": "this bench (bots, WHIP probes)"
                if pid == os.getpid()
                else sample["command"],
                "nice": sample["nice"],
                "cores": sample["cores"],
                "core_pct": round(100 * used / span_s, 1),
                "rss_mb": sample["rss_mb"],
                "fds": sample["fds"],
            }
        )
    return rows


def samples_of(pids: list[int]) -> dict[int, dict[str, Any]]:
    return {pid: s for pid in pids if (s := process_sample(pid)) is not None}


# --- speakers ------------------------------------------------------------------------------


async def whip_probe(urls: SpaceUrls) -> dict[str, Any]:
    """A new speaker: a real offer POSTed to whip_url on a new connection, timed to the answer;
    then its resource is DELETEd."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    auth = {"Authorization": f"Bearer {urls.token}"}
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            started = time.monotonic()
            try:
                response = await client.post(
                    urls.whip + "?name=probe",
                    content=pc.localDescription.sdp.encode(),
                    headers={"Content-Type": "application/sdp", **auth},
                )
            except httpx.HTTPError as exc:
                return {"at": time.time(), "answer_s": None, "error": type(exc).__name__}
            answer_s = time.monotonic() - started
            if response.status_code == 201:
                with contextlib.suppress(httpx.HTTPError):
                    await client.delete(
                        urljoin(urls.whip, response.headers["Location"]), headers=auth
                    )
            return {"at": time.time(), "answer_s": answer_s, "status": response.status_code}
    finally:
        await pc.close()


async def whip_probes(urls: SpaceUrls, count: int, span_s: float) -> list[dict[str, Any]]:
    """`count` probes spread over `span_s`, one after another."""
    start = time.monotonic()
    results = []
    for k in range(count):
        await asyncio.sleep(max(0.0, start + k * span_s / count - time.monotonic()))
        results.append(await whip_probe(urls))
    return results


def whip_figures(probes: list[dict[str, Any]]) -> dict[str, Any]:
    answered = [p["answer_s"] for p in probes if p.get("status") == 201]
    figures: dict[str, Any] = {
        "probes": len(probes),
        "answered_201": len(answered),
        "answer_s": percentiles(answered),
        "failures": [p for p in probes if p.get("status") != 201][:10],
    }
    if answered:
        figures["meets_target"] = figures["answer_s"]["p95"] <= WHIP_P95_TARGET_S
    return figures


class LoopLag:
    """How late this process's event loop (the bots' WebRTC, the mix-minus taps) wakes up: a
    late client must not be taken for a late server."""

    PERIOD_S = 0.020

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.PERIOD_S)
            self.samples.append((time.time(), time.monotonic() - started - self.PERIOD_S))

    def within(self, start: float, end: float) -> dict[str, float]:
        return percentiles([lag for at, lag in self.samples if start <= at <= end], (50, 99))


class Hearer:
    """Decodes the second voice's mix-minus on packet arrival and finds the marks in it."""

    def __init__(self) -> None:
        self.detector = OnsetDetector()
        self._decoder = OpusDecoder(channels=1)
        self.decode_errors = 0

    def on_packet(self, payload: bytes, arrived_at: float) -> None:
        try:
            pcm = self._decoder.decode(payload)
        except OpusError:
            self.decode_errors += 1
            return
        self.detector.feed(pcm, arrived_at)


# --- one server ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    description: str
    env: dict[str, str]


@dataclass(slots=True)
class Phase:
    start: float = 0.0
    end: float = 0.0
    metrics: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    cpu: tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]] = ({}, {})
    probes: list[dict[str, Any]] = field(default_factory=list)
    metrics_span_s: float = 0.0


class Run:
    """One server under test: the space, the two voices, the phases' snapshots."""

    def __init__(self, server: Server, space: dict[str, Any], args: argparse.Namespace) -> None:
        self.server = server
        self.urls = SpaceUrls.of(space)
        self.args = args
        self.metrics_urls = [self.urls.listener_base + "/metrics", self.urls.whip_base + "/metrics"]
        self.client = httpx.AsyncClient()
        self.script = Path(tempfile.mkstemp(prefix="rostra-isolation-", suffix=".lua")[1])
        self.script.write_text(WRK_SCRIPT.replace("@MARK@", RESULT_MARK))

    def pids(self) -> list[int]:
        return process_tree(self.server.process.pid)

    async def snapshot(self) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
        metrics = await read_metrics(self.client, self.metrics_urls, self.urls.space_id)
        return metrics, samples_of([*self.pids(), os.getpid()])

    async def idle(self) -> Phase:
        phase = Phase(start=time.time())
        before = await self.snapshot()
        read_at = time.monotonic()
        phase.probes = await whip_probes(self.urls, IDLE_WHIP_PROBES, self.args.idle_s)
        await asyncio.sleep(max(0.0, phase.start + self.args.idle_s - time.time()))
        after = await self.snapshot()
        phase.end = time.time()
        phase.metrics_span_s = time.monotonic() - read_at
        phase.metrics, phase.cpu = (before[0], after[0]), (before[1], after[1])
        return phase

    async def flood(self) -> tuple[Phase, dict[str, Any]]:
        before = await self.snapshot()
        read_at = time.monotonic()
        process = await self._start_flood()
        phase = Phase()
        try:
            ready = await self._line(process, READY_LINE, FLOOD_SETUP_TIMEOUT_S + 10)
            phase.start = ready["at"]
            span_s = max(1.0, self.args.flood_s - 2.0)
            phase.probes = await whip_probes(self.urls, self.args.whip_probes, span_s)
            result = await self._line(process, RESULT_LINE, self.args.flood_s + FLOOD_EXTRA_S)
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
        phase.end = result["ended_at"]
        after = await self.snapshot()
        phase.metrics_span_s = time.monotonic() - read_at
        phase.metrics, phase.cpu = (before[0], after[0]), (before[1], after[1])
        result["generator"] = {"pid": process.pid, "core": self.args.load_core}
        return phase, result

    async def _start_flood(self) -> asyncio.subprocess.Process:
        script = self.script
        base = urlparse(self.urls.listener_base)
        config = {
            "host": base.hostname, "port": base.port, "base_url": self.urls.listener_base,
            "state_path": self.urls.state_path, "playlist_path": self.urls.playlist_path,
            "join_path": self.urls.join_path, "stream_paths": list(self.urls.stream_paths),
            "readers": self.args.readers, "half_open": self.args.half_open,
            "read_bytes": 4096, "read_pause_s": 1.0, "retry_s": 0.5,
            "wrk_connections": self.args.wrk_connections, "flood_s": int(self.args.flood_s),
            "core": self.args.load_core, "script": str(script),
        }  # fmt: skip
        command = [sys.executable, __file__, "--flood-worker", json.dumps(config)]
        if self.args.load_core >= 0:
            command = ["taskset", "-c", str(self.args.load_core), *command]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, STARTING_NICENESS),
            limit=1 << 22,
        )
        return process

    @staticmethod
    async def _line(
        process: asyncio.subprocess.Process, prefix: str, timeout_s: float
    ) -> dict[str, Any]:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = await asyncio.wait_for(process.stdout.readline(), deadline - time.monotonic())
            if not line:
                break
            text = line.decode()
            if text.startswith(prefix):
                result: dict[str, Any] = json.loads(text.removeprefix(prefix))
                return result
        raise RuntimeError(f"the flood process gave no {prefix.strip()} line")


async def measure_target(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    with running_server(extra_env=target.env) as server:
        space = create_space(server, "Isolation bench")
        run = Run(server, space, args)
        urls = run.urls
        await wait_for_segments(urls.listener_base + urls.playlist_path)
        total_s = SETTLE_S + args.idle_s + args.flood_s + FLOOD_SETUP_TIMEOUT_S + MARK_SLACK_S
        train = mark_train(int(total_s / 1.05), lead_s=MARK_LEAD_S, seed=args.seed)
        hearer = Hearer()
        loop_lag = LoopLag()
        lag_task = asyncio.create_task(loop_lag.run())
        async with httpx.AsyncClient() as client:
            listening = TimedPcmTrack(np.zeros(int(total_s * SAMPLE_RATE_HZ), np.float32))
            bots = [
                await join(client, urls.invite, listening, name="hearer",
                           tap=ReturnTap(hearer.on_packet), whip_url=urls.whip),
            ]  # fmt: skip
            talking = TimedPcmTrack(train.pcm)
            bots.append(
                await join(client, urls.invite, talking, name="talker", tap=ReturnTap(),
                           whip_url=urls.whip)
            )  # fmt: skip
            for bot in bots:
                await bot.wait_connected()
            await asyncio.sleep(SETTLE_S)
            print(f"  {target.name}: idle {args.idle_s:.0f} s …", flush=True)
            idle = await run.idle()
            print(f"  {target.name}: flood {args.flood_s:.0f} s …", flush=True)
            flood, generated = await run.flood()
            await asyncio.sleep(TAIL_S)
            for bot in bots:
                await bot.leave(client)
        lag_task.cancel()
        await run.client.aclose()
        run.script.unlink(missing_ok=True)
        sent = [
            Mark(at=talking.handed_at[start], tone=tone)
            for start, tone in zip(train.starts, train.tones, strict=True)
            if start in talking.handed_at
        ]
        times = segment_times(server.data, urls.space_id)
        phases = {"idle": idle, "flood": flood}
        result = {
            name: phase_figures(phase, sent, hearer, talking, times)
            for name, phase in phases.items()
        }
        for name, phase in phases.items():
            result[name]["bench_loop_lag_s"] = loop_lag.within(phase.start, phase.end)
    return {
        "target": target.name,
        "description": target.description,
        "env": target.env,
        "whip_url_port_differs": urlparse(urls.whip).port != urlparse(urls.listener_base).port,
        "metrics_url": idle.metrics[1].get("url"),
        "return_decode_errors": hearer.decode_errors,
        **result,
        "flood_generated": generated,
        "verdicts": verdicts(result),
    }


def phase_figures(
    phase: Phase,
    sent: list[Mark],
    hearer: Hearer,
    talking: TimedPcmTrack,
    times: list[tuple[int, float]],
) -> dict[str, Any]:
    span_s = phase.end - phase.start
    matched = match_marks(sent, hearer.detector.onsets)
    in_phase = [
        latency
        for mark, latency in zip(sent, matched.per_mark_s, strict=True)
        if phase.start <= mark.at <= phase.end
    ]
    first = min(talking.handed_at.values(), default=0.0)
    late = [
        at - (first + pts / SAMPLE_RATE_HZ)
        for pts, at in talking.handed_at.items()
        if phase.start <= at <= phase.end
    ]
    return {
        "span_s": round(span_s, 2),
        "speaker_to_speaker_s": percentiles([x for x in in_phase if x is not None]),
        "marks_sent": len(in_phase),
        "marks_missed": sum(x is None for x in in_phase),
        "mixer_clock": clock_figures(
            phase.metrics[0].get("values", {}),
            phase.metrics[1].get("values", {}),
            phase.metrics_span_s,
        ),
        "whip": whip_figures(phase.probes),
        "segment_cadence": cadence(times, phase.start, phase.end),
        "processes": cpu_by_process(phase.cpu[0], phase.cpu[1], phase.metrics_span_s),
        "talker_sender_lateness": sender_lateness(late),
    }


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    idle, flood = result["idle"], result["flood"]
    p95 = (idle["speaker_to_speaker_s"].get("p95"), flood["speaker_to_speaker_s"].get("p95"))
    clock_idle, clock_flood = idle["mixer_clock"], flood["mixer_clock"]
    late_key = (
        "late_ticks_over_20ms_per_min"
        if clock_flood["late_ticks_over_20ms_per_min"] is not None
        else "late_ticks_per_min"
    )
    late = (clock_idle[late_key], clock_flood[late_key])
    cadence_max = flood["segment_cadence"]["deviation_s"].get("max")
    return {
        "s2s_p95_increase_s": None if None in p95 else round(p95[1] - p95[0], 4),
        "s2s_p95_within_20ms": None if None in p95 else p95[1] - p95[0] <= S2S_P95_MARGIN_S,
        "no_program_frames_dropped": None
        if clock_flood["program_frames_dropped"] is None
        else clock_flood["program_frames_dropped"] == 0,
        "late_ticks_compared": late_key,
        "late_ticks_no_more_than_idle": None if None in late else late[1] <= late[0],
        "whip_p95_within_250ms": flood["whip"].get("meets_target"),
        "cadence_within_50ms": None if cadence_max is None else cadence_max <= CADENCE_TOLERANCE_S,
        "clients_behind": [name for name in ("idle", "flood") if _is_client_behind(result[name])],
    }


def _is_client_behind(phase: dict[str, Any]) -> bool:
    """The bots' own loop or sender ran late: the phase's latency is not the server's alone."""
    lag = phase.get("bench_loop_lag_s", {}).get("p99", 0.0)
    sender = phase["talker_sender_lateness"].get("p99_s", 0.0)
    return bool(lag > CLIENT_LAG_LIMIT_S or sender > CLIENT_LAG_LIMIT_S)


# --- the targets ---------------------------------------------------------------------------


def settings_fields(env: dict[str, str]) -> set[str]:
    """The settings a server build knows (its ROSTRA_* variables), asked of its own config."""
    code = (
        "import dataclasses, rostra.config as c;"
        "print(*[f.name for f in dataclasses.fields(c.Settings)])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return set(result.stdout.split())


def baseline_tree() -> Path:
    if not (BASELINE_TREE / "src" / "rostra").is_dir():
        print(f"  adding a worktree of {BASELINE_COMMIT} at {BASELINE_TREE}", flush=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(BASELINE_TREE),
             BASELINE_COMMIT],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    return BASELINE_TREE


def targets(args: argparse.Namespace) -> list[Target]:
    chosen: list[Target] = []
    if args.only in (None, "baseline"):
        tree = baseline_tree()
        chosen.append(
            Target(
                "baseline",
                f"today's single process (commit {BASELINE_COMMIT}, {tree})",
                {"PYTHONPATH": str(tree / "src")},
            )
        )
    if args.only in (None, "new"):
        known = settings_fields({})
        env = {"ROSTRA_WORKERS": str(args.workers)} if "workers" in known else {}
        if "whip_port" in known:
            # port + 1, the default, may be taken: the space JSON's whip_url says where it is
            env["ROSTRA_WHIP_PORT"] = str(free_port())
        if "worker_nice" in known:
            chosen.append(
                Target("new", "the working tree's server, workers at their default niceness", env)
            )
            chosen.append(
                Target("new-niced", "the working tree's server, ROSTRA_WORKER_NICE=5",
                       {**env, "ROSTRA_WORKER_NICE": "5"})
            )  # fmt: skip
        else:
            chosen.append(
                Target("new", "the working tree's server (no ROSTRA_WORKER_NICE yet)", env)
            )
    return chosen


def print_summary(results: list[dict[str, Any]]) -> None:
    def cell(value: Any, scale: float = 1000.0) -> str:
        return "-" if value is None else f"{value * scale:.0f}"

    print(f"\n{'':34}" + "".join(f"{r['target']:>20}" for r in results))
    rows = [
        ("s2s p50 ms idle / flood", ("speaker_to_speaker_s", "p50")),
        ("s2s p95 ms idle / flood", ("speaker_to_speaker_s", "p95")),
        ("WHIP answer p50 ms idle / flood", ("whip", "answer_s", "p50")),
        ("WHIP answer p95 ms idle / flood", ("whip", "answer_s", "p95")),
        ("cadence |dev| p95 ms idle / flood", ("segment_cadence", "deviation_s", "p95")),
        ("cadence |dev| max ms idle / flood", ("segment_cadence", "deviation_s", "max")),
        ("late ticks /min idle / flood", ("mixer_clock", "late_ticks_per_min")),
        ("late >20 ms /min idle / flood", ("mixer_clock", "late_ticks_over_20ms_per_min")),
        ("frames dropped idle / flood", ("mixer_clock", "program_frames_dropped")),
    ]
    for label, keys in rows:
        scale = 1000.0 if " ms " in label else 1.0
        cells = [
            f"{cell(_dig(r['idle'], keys), scale)} / {cell(_dig(r['flood'], keys), scale)}"
            for r in results
        ]
        print(f"{label:34}" + "".join(f"{c:>20}" for c in cells))
    print(
        f"{'flood: wrk requests/s':34}"
        + "".join(f"{r['flood_generated']['wrk'].get('rate_per_s', '-'):>20}" for r in results)
    )
    print(
        f"{'flood: streams 200 / 503':34}"
        + "".join(f"{_statuses(r, '200')} / {_statuses(r, '503'):<8}".rjust(20) for r in results)
    )
    print(
        f"{'flood: half-open held (mean)':34}"
        + "".join(
            f"{r['flood_generated']['half_open']['held_each_second']['mean']:>20}" for r in results
        )
    )
    for r in results:
        print(f"{r['target']}: {r['verdicts']}")


def _dig(figures: dict[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = figures
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _statuses(result: dict[str, Any], status: str) -> int:
    return int(result["flood_generated"]["progressive"]["answers_by_status"].get(status, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle window")
    parser.add_argument("--flood-s", type=float, default=60.0, help="flood window")
    parser.add_argument("--only", choices=("new", "baseline"), help="one server, not both")
    parser.add_argument("--workers", type=int, default=2, help="listener workers of the new server")
    parser.add_argument("--whip-probes", type=int, default=20, help="new speakers during the flood")
    parser.add_argument("--readers", type=int, default=300, help="slow progressive listeners")
    parser.add_argument("--half-open", type=int, default=1000, help="half-open connections")
    parser.add_argument("--wrk-connections", type=int, default=64, help="wrk's connections")
    parser.add_argument("--load-core", type=int, default=1, help="core of the flood (-1: any)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the mark intervals")
    parser.add_argument(
        "--same-priority", action="store_true", help="do not run the bots ahead of the server"
    )
    parser.add_argument("--flood-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood_worker:
        flood_worker(args.flood_worker)
        return
    args.idle_s = max(args.idle_s, 5.0)
    args.flood_s = max(args.flood_s, 5.0)
    niceness = prioritize_clients(not args.same_priority)
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print(f"isolation bench: idle {args.idle_s:.0f} s, flood {args.flood_s:.0f} s, {wrk_version()}")
    results = [asyncio.run(measure_target(target, args)) for target in targets(args)]
    print_summary(results)
    figures = {
        "load_average_at_start": load_at_start,
        "niceness": niceness,
        "placement": {
            "flood_generator_and_wrk_core": args.load_core,
            "bots_and_bench": f"this process, niceness {niceness['clients']}, any core",
            "server": f"any core, started at niceness {niceness['server']}",
        },
        "flood": {
            "wrk": f"1 thread, {args.wrk_connections} connections, rotating state.json, the live "
            "media playlist, the latest segment and POST join, as fast as they answer",
            "progressive_listeners": f"{args.readers}, stream.aac and stream.opus alternately, "
            "each reading 4 KiB a second (slower than the stream), reconnecting when cut off",
            "half_open_connections": f"{args.half_open}, each sending a request line and one "
            "header without the blank line, held; reconnected when the server lets go",
        },
        "targets": {
            "speaker_to_speaker_p95": "flood p95 within +20 ms of idle",
            "program_frames_dropped": 0,
            "late_ticks": "late by more than 20 ms: no more than idle (per minute)",
            "whip_answer_p95_s": WHIP_P95_TARGET_S,
            "segment_cadence_s": f"{SEGMENT_S} ± {CADENCE_TOLERANCE_S}",
        },
        "wanted_from_server": []
        if any(r["idle"]["mixer_clock"]["late_ticks_over_20ms"] is not None for r in results)
        else [WANTED_LATE_METRIC],
        "results": results,
    }
    path = write_results(NAME, figures, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
