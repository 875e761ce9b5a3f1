"""Restarts keep a space live: kill -9 of the origin, K times, and SIGTERM of `rostra serve`
followed by a new start on the same data folder and ports, against a real server with a tone
speaker (`rostra speak --tone 440`) on stage and listeners polling.

For each kill -9 of the origin (the supervisor's child running `rostra.web.processes origin`):
time until the supervisor's new origin process exists (target ≤ 2 s), until it answers on the
WHIP port, until /healthz is 200 again, until the live playlist lists a segment made after the
crash (after an EXT-X-DISCONTINUITY: the gap a player sees), the hole in program time across the
discontinuity (PROGRAM-DATE-TIME), until the speaker is back on stage with a new session (it
publishes again by itself, with backoff), and what the listener workers answered for state.json
and the playlist, polled every 100 ms, while the origin was away. For the graceful restart: time
from SIGTERM to exit, from the new start to /healthz and to the first new segment listed, the
space's status, and the speaker again. At the end, with the server stopped: the segments on disk
(contiguous numbering, each decoded by PyAV; short and empty ones) and PROGRAM-DATE-TIME over
every segment any playlist listed (never back across a discontinuity).

Run from the repository root:  .venv/bin/python bench/restart.py [--crashes 5] [--pause-s 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import av
import httpx

from harness import (
    ROOT,
    STARTING_NICENESS,
    Server,
    create_space,
    percentiles,
    prioritize_clients,
    start_server,  # the tests' own server start (tests.conftest), which harness imports
    stop_server,
    write_results,
)

NAME = "restart"
ORIGIN_CMDLINE = "rostra.web.processes origin"
ORIGIN_RESTART_TARGET_S = 2.0
POLL_PERIOD_S = 0.1
POLL_TIMEOUT_S = 2.0
PID_PERIOD_S = 0.02
PROBE_TIMEOUT_S = 0.5
RECOVERY_TIMEOUT_S = 40.0
STEADY_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0
SETTLE_AFTER_START_S = 6.0
SEGMENT_S = 1.024
SAMPLE_RATE_HZ = 48_000
LOG_WORDS = ("error", "warning", "speaker", "process", "origin", "program", "whip")


# --- playlists ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One segment as a playlist lists it; `start` from the date-time before it or the end of
    the segment before it in the same playlist (RFC 8216 §4.3.2.6)."""

    number: int
    uri: str
    duration_s: float
    start: datetime | None
    is_discontinuity: bool

    @property
    def end(self) -> datetime | None:
        return None if self.start is None else self.start + timedelta(seconds=self.duration_s)


def parse_playlist(text: str) -> list[Entry]:
    """The media playlist's segments, read here (not with Rostra's own reader)."""
    entries: list[Entry] = []
    sequence = 0
    duration_s: float | None = None
    stamp: datetime | None = None
    is_discontinuity = False
    for raw in text.splitlines():
        line = raw.strip()
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-MEDIA-SEQUENCE":
            sequence = int(value)
        elif tag == "#EXT-X-DISCONTINUITY":
            is_discontinuity = True
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif tag == "#EXTINF":
            duration_s = float(value.split(",", 1)[0])
        elif line and not line.startswith("#"):
            if stamp is None and entries:
                stamp = entries[-1].end
            number = sequence + len(entries)
            entries.append(Entry(number, line, duration_s or 0.0, stamp, is_discontinuity))
            duration_s, stamp, is_discontinuity = None, None, False
    return entries


@dataclass(slots=True)
class PlaylistLog:
    """Every segment any fetched playlist listed (the live window holds 6), with when it was
    first seen; a later playlist listing it otherwise is counted as a change."""

    entries: dict[int, Entry] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)
    changed: list[int] = field(default_factory=list)
    dates_back_within_a_playlist: int = 0
    has_endlist: bool = False

    def add(self, text: str, seen_at: float) -> None:
        listed = parse_playlist(text)
        self.has_endlist = self.has_endlist or "#EXT-X-ENDLIST" in text
        starts = [e.start for e in listed if e.start is not None]
        if any(later < earlier for earlier, later in itertools.pairwise(starts)):
            self.dates_back_within_a_playlist += 1
        for entry in listed:
            known = self.entries.get(entry.number)
            if known is None:
                self.entries[entry.number] = entry
                self.first_seen[entry.number] = seen_at
            elif (known.uri, known.is_discontinuity) != (entry.uri, entry.is_discontinuity):
                self.changed.append(entry.number)

    @property
    def last_number(self) -> int:
        return max(self.entries, default=-1)

    def first_new_after(self, number: int) -> Entry | None:
        """The first segment after a discontinuity numbered above `number`: made by a restarted
        origin."""
        found = [e for n, e in self.entries.items() if n > number and e.is_discontinuity]
        return min(found, key=lambda e: e.number) if found else None

    def program_gap_s(self, entry: Entry) -> float | None:
        """Program time missing before `entry`: its date-time minus the end of the one before."""
        before = self.entries.get(entry.number - 1)
        if before is None or before.end is None or entry.start is None:
            return None
        return round((entry.start - before.end).total_seconds(), 3)

    def date_checks(self) -> dict[str, Any]:
        """Across each discontinuity: PROGRAM-DATE-TIME never goes back (nor overlaps the
        segment before)."""
        went_back, overlapped, checked = [], [], 0
        for number, entry in sorted(self.entries.items()):
            before = self.entries.get(number - 1)
            if not entry.is_discontinuity or before is None:
                continue
            start, before_start, before_end = entry.start, before.start, before.end
            if start is None or before_start is None or before_end is None:
                continue
            checked += 1
            if start < before_start:
                went_back.append(number)
            elif start < before_end:
                overlapped.append(number)
        return {
            "discontinuities_checked": checked,
            "went_back_at": went_back,
            "overlapped_at": overlapped,
            "went_back_within_a_playlist": self.dates_back_within_a_playlist,
            "entries_changed_between_fetches": sorted(set(self.changed)),
        }


# --- the listeners' view: state.json and the playlist every 100 ms ------------------------


@dataclass(slots=True)
class Answer:
    at: float
    kind: str
    outcome: str  # the status code, or the exception's name
    latency_s: float


@dataclass(slots=True)
class Poller:
    """Polls state.json and the live playlist through the listener port every 100 ms."""

    state_url: str
    playlist_url: str
    answers: list[Answer] = field(default_factory=list)
    playlist: PlaylistLog = field(default_factory=PlaylistLog)
    stage_ids: set[str] = field(default_factory=set)
    stage_seen: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    status: str = ""

    async def run(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        next_at = time.monotonic()
        while not stop.is_set():
            await asyncio.gather(self._state(client), self._playlist(client))
            next_at = max(next_at + POLL_PERIOD_S, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())

    async def _get(self, client: httpx.AsyncClient, kind: str, url: str) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await client.get(url, timeout=POLL_TIMEOUT_S)
        except httpx.HTTPError as exc:
            elapsed_s = time.monotonic() - started
            self.answers.append(Answer(started, kind, type(exc).__name__, elapsed_s))
            return None
        self.answers.append(
            Answer(started, kind, str(response.status_code), time.monotonic() - started)
        )
        return response if response.status_code == 200 else None

    async def _state(self, client: httpx.AsyncClient) -> None:
        response = await self._get(client, "state.json", self.state_url)
        if response is None:
            return
        body = response.json()
        self.status = str(body.get("status", ""))
        ids = frozenset(str(voice["id"]) for voice in body.get("stage", []))
        if ids != self.stage_ids:
            self.stage_seen.append((time.monotonic(), ids))
        self.stage_ids = set(ids)

    async def _playlist(self, client: httpx.AsyncClient) -> None:
        response = await self._get(client, "playlist", self.playlist_url)
        if response is not None:
            self.playlist.add(response.text, time.monotonic())

    def summary(self, start: float, end: float) -> dict[str, Any]:
        """What the listener port answered between `start` and `end`, per kind."""
        figures: dict[str, Any] = {}
        for kind in ("state.json", "playlist"):
            window = [a for a in self.answers if a.kind == kind and start <= a.at <= end]
            outcomes = Counter(a.outcome for a in window)
            figures[kind] = {
                "requests": len(window),
                "ok_200": outcomes.pop("200", 0),
                "non_200": {k: v for k, v in outcomes.items() if k.isdigit()},
                "failures": {k: v for k, v in outcomes.items() if not k.isdigit()},
                "latency_s": percentiles([a.latency_s for a in window], (50, 95)),
            }
        return figures

    def new_voice_at(self, before: set[str], since: float) -> float | None:
        """When state.json first showed a stage session id not in `before`."""
        for at, ids in self.stage_seen:
            if at >= since and ids - before:
                return at
        return None


# --- processes ----------------------------------------------------------------------------


def _parent_and_cmdline(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1]), cmdline


def process_ids() -> set[int]:
    return {int(entry) for entry in os.listdir("/proc") if entry.isdigit()}


def origin_pid(supervisor: int, among: set[int] | None = None) -> int | None:
    """The supervisor's child running the origin (as tests/e2e/test_restart.py finds it); only
    `among` those pids when given (the processes new since a kill: a cheap look every 20 ms)."""
    for pid in sorted(process_ids() if among is None else among):
        found = _parent_and_cmdline(pid)
        if found is not None and found[0] == supervisor and ORIGIN_CMDLINE in found[1]:
            return pid
    return None


def start_at_server_niceness(data: Path, *, port: int | None, whip_port: int | None) -> Server:
    """`rostra serve` (the tests' start: free ports unless given, ROSTRA_WHIP_PORT set, output to
    DATA/server.log), started from this thread at the niceness the bench started with."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, STARTING_NICENESS)
    try:
        return start_server(data, port=port, whip_port=whip_port)
    finally:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, before)


def log_excerpt(path: Path, *, last: int = 40) -> list[str]:
    """The server log's lines that say something about processes, speakers or errors."""
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    return [line for line in lines if any(w in line.lower() for w in LOG_WORDS)][-last:]


# --- segments on disk ---------------------------------------------------------------------


def segments_on_disk(media: Path) -> dict[str, Any]:
    """Numbering and decoding of every seg_*.m4s (with init.mp4) of the space."""
    init = (media / "init.mp4").read_bytes()
    numbers = sorted(int(p.stem[4:]) for p in media.glob("seg_*.m4s"))
    missing = sorted(set(range(numbers[-1] + 1)) - set(numbers)) if numbers else []
    undecodable: dict[int, str] = {}
    not_full: dict[int, int] = {}
    empty: list[int] = []
    full = round(SEGMENT_S * SAMPLE_RATE_HZ)
    for number in numbers:
        data = (media / f"seg_{number:06d}.m4s").read_bytes()
        try:
            with av.open(io.BytesIO(init + data), "r") as container:
                samples = sum(frame.samples for frame in container.decode(audio=0))
        except (av.FFmpegError, ValueError) as exc:
            undecodable[number] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        if samples == 0:
            empty.append(number)
        elif samples < full:
            not_full[number] = samples
    return {
        "count": len(numbers),
        "first": numbers[0] if numbers else None,
        "last": numbers[-1] if numbers else None,
        "missing_numbers": missing,
        "undecodable": undecodable,
        "empty": empty,
        "not_full_samples": not_full,
        "lost": len(missing) + len(undecodable) + len(empty),
        "full_segment_samples": full,
    }


# --- one kill -9 of the origin ------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """What every step shares."""

    server: Server
    space: dict[str, Any]
    poller: Poller
    logs: Path
    client: httpx.AsyncClient = field(default_factory=httpx.AsyncClient)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def media(self) -> Path:
        return self.server.data / "spaces" / str(self.space["id"])

    def fail(self, step: str, what: str) -> None:
        entry = {"step": step, "what": what, "server_log": log_excerpt(self.server.log_path)}
        self.failures.append(entry)
        print(f"FAILED {step}: {what}", flush=True)
        for line in entry["server_log"][-15:]:
            print("   ", line, flush=True)


async def wait_steady(run: Run, step: str) -> bool:
    """A voice on stage and a segment listed within the last 3 s, before the next disturbance."""
    deadline = time.monotonic() + STEADY_TIMEOUT_S
    while time.monotonic() < deadline:
        log = run.poller.playlist
        recent = log.first_seen.get(log.last_number, 0.0) > time.monotonic() - 3.0
        if run.poller.stage_ids and recent:
            return True
        await asyncio.sleep(0.1)
    run.fail(step, f"no steady state within {STEADY_TIMEOUT_S} s (stage {run.poller.stage_ids})")
    return False


async def first_time(condition: Any, deadline: float, period_s: float = 0.05) -> float | None:
    """The monotonic time `condition()` (sync or async) first held, or None past `deadline`."""
    while time.monotonic() < deadline:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic()
        await asyncio.sleep(period_s)
    return None


async def _answers(client: httpx.AsyncClient, method: str, url: str, *, ok: set[int]) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        response = await client.request(method, url, timeout=PROBE_TIMEOUT_S)
        return response.status_code in ok or not ok
    return False


async def new_origin_at(supervisor: int, killed: int, before: set[int], deadline: float) -> Any:
    """(time, pid) of the supervisor's new origin process: looked for among new pids only."""
    while time.monotonic() < deadline:
        fresh = await asyncio.to_thread(process_ids)
        pid = await asyncio.to_thread(origin_pid, supervisor, fresh - before)
        if pid is not None and pid != killed:
            return time.monotonic(), pid
        await asyncio.sleep(PID_PERIOD_S)
    return None, None


def _since(at: float | None, start: float) -> float | None:
    return None if at is None else round(at - start, 3)


async def crash_origin(run: Run, index: int) -> dict[str, Any]:
    """One kill -9 of the origin and what followed, each wait bounded by RECOVERY_TIMEOUT_S."""
    step = f"crash {index + 1}"
    await wait_steady(run, step)
    supervisor = run.server.process.pid
    killed = await asyncio.to_thread(origin_pid, supervisor)
    if killed is None:
        run.fail(step, "no origin child of the supervisor")
        return {"index": index + 1}
    stage_before = set(run.poller.stage_ids)
    last_before = run.poller.playlist.last_number
    pids_before = await asyncio.to_thread(process_ids)
    killed_wall, killed_at = time.time(), time.monotonic()
    os.kill(killed, signal.SIGKILL)
    deadline = killed_at + RECOVERY_TIMEOUT_S
    base = run.server.url
    log = run.poller.playlist
    (origin_at, new_pid), answers_at, healthz_at, listed_at, voice_at = await asyncio.gather(
        new_origin_at(supervisor, killed, pids_before, deadline),
        first_time(
            lambda: _answers(run.client, "OPTIONS", run.space["whip_url"], ok=set()), deadline
        ),
        first_time(lambda: _answers(run.client, "GET", base + "/healthz", ok={200}), deadline, 0.1),
        first_time(lambda: log.first_new_after(last_before) is not None, deadline),
        first_time(lambda: run.poller.new_voice_at(stage_before, killed_at), deadline),
    )
    new = log.first_new_after(last_before)
    if new is not None:  # when the poller first saw it listed
        listed_at = log.first_seen[new.number]
    figures: dict[str, Any] = {
        "index": index + 1,
        "killed_pid": killed,
        "new_pid": new_pid,
        "origin_process_s": _since(origin_at, killed_at),
        "origin_answers_whip_s": _since(answers_at, killed_at),
        "healthz_200_s": _since(healthz_at, killed_at),
        "first_new_segment_listed_s": _since(listed_at, killed_at),
        "speaker_back_s": _since(run.poller.new_voice_at(stage_before, killed_at), killed_at),
        "last_listed_before": last_before,
    }
    if new is not None:
        mtime = (run.media / new.uri).stat().st_mtime if (run.media / new.uri).exists() else None
        figures |= {
            "first_new_segment": new.number,
            "first_new_segment_written_s": None if mtime is None else round(mtime - killed_wall, 3),
            "program_gap_s": log.program_gap_s(new),
        }
    # from the kill until every figure above was in (or its time was up)
    figures["listeners_during_outage"] = run.poller.summary(killed_at, time.monotonic())
    for name, at, limit in (
        ("origin process", origin_at, ORIGIN_RESTART_TARGET_S),
        ("new segment listed", listed_at, None),
        ("speaker back on stage", voice_at, None),
    ):
        if at is None:
            run.fail(step, f"{name}: not within {RECOVERY_TIMEOUT_S} s")
        elif limit is not None and at - killed_at > limit:
            run.fail(step, f"{name} after {at - killed_at:.3f} s, over the {limit} s target")
    print(f"{step}: {_brief(figures)}", flush=True)
    return figures


def _brief(figures: dict[str, Any]) -> str:
    keys = [k for k, v in figures.items() if k.endswith("_s") and v is not None]
    return ", ".join(f"{k.removesuffix('_s')} {figures[k]} s" for k in keys)


# --- SIGTERM and a new start --------------------------------------------------------------


def _timed_start(data: Path, port: int, whip_port: int) -> tuple[Server, float]:
    """The server, and when its start returned (once /healthz answered 200)."""
    server = start_at_server_niceness(data, port=port, whip_port=whip_port)
    return server, time.monotonic()


async def graceful_restart(run: Run) -> dict[str, Any]:
    """SIGTERM of `rostra serve`, then a new start on the same data folder and ports."""
    step = "graceful restart"
    await wait_steady(run, step)
    old = run.server
    port = int(urlparse(old.url).port or 0)
    stage_before = set(run.poller.stage_ids)
    last_before = run.poller.playlist.last_number
    sigterm_at = time.monotonic()
    old.process.send_signal(signal.SIGTERM)
    try:
        code: int | None = await asyncio.to_thread(old.process.wait, STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        code = None
        run.fail(step, f"rostra serve did not exit within {STOP_TIMEOUT_S} s of SIGTERM")
        old.process.kill()
        await asyncio.to_thread(old.process.wait)
    exited_at = time.monotonic()
    on_disk = (run.media / "audio.m3u8").read_text()
    shutil.copy(old.log_path, run.logs / "server-1.log")  # the new start writes it afresh
    started_at = time.monotonic()
    start = asyncio.create_task(asyncio.to_thread(_timed_start, old.data, port, old.whip_port))
    log = run.poller.playlist
    deadline = started_at + START_TIMEOUT_S
    listed_at = await first_time(lambda: log.first_new_after(last_before) is not None, deadline)
    try:
        run.server, healthz_at = await start
    except RuntimeError as exc:  # start_server's "did not start" / "exited", with the log
        run.fail(step, f"the new start failed: {str(exc)[-2000:]}")
        return {"exit_code": code, "sigterm_to_exit_s": round(exited_at - sigterm_at, 3)}
    await first_time(
        lambda: run.poller.new_voice_at(stage_before, exited_at), exited_at + RECOVERY_TIMEOUT_S
    )
    voice_at = run.poller.new_voice_at(stage_before, exited_at)  # when state.json first showed it
    await asyncio.sleep(SETTLE_AFTER_START_S)
    new = log.first_new_after(last_before)
    if new is not None:  # when the poller first saw it listed
        listed_at = log.first_seen[new.number]
    state = (await run.client.get(run.space["state_url"], timeout=POLL_TIMEOUT_S)).json()
    figures: dict[str, Any] = {
        "exit_code": code,
        "sigterm_to_exit_s": round(exited_at - sigterm_at, 3),
        "playlist_left_open": "#EXT-X-ENDLIST" not in on_disk,
        "start_to_healthz_200_s": round(healthz_at - started_at, 3),
        "start_to_first_new_segment_s": _since(listed_at, started_at),
        "sigterm_to_first_new_segment_s": _since(listed_at, sigterm_at),
        "speaker_back_after_start_s": _since(voice_at, started_at),
        "last_listed_before": last_before,
        "first_new_segment": None if new is None else new.number,
        "program_gap_s": None if new is None else log.program_gap_s(new),
        "status_after": state.get("status"),
        "listeners_while_down": run.poller.summary(sigterm_at, healthz_at),
    }
    if listed_at is None:
        run.fail(step, f"no new segment listed within {START_TIMEOUT_S} s of the new start")
    if voice_at is None:
        run.fail(step, f"speaker not back on stage within {RECOVERY_TIMEOUT_S} s of the exit")
    if state.get("status") != "live":
        run.fail(step, f"the space is {state.get('status')!r} after the restart, not live")
    print(f"{step}: {_brief(figures)}, status {state.get('status')}", flush=True)
    return figures


# --- the run ------------------------------------------------------------------------------


def speaker_command(invite_url: str, seconds: float) -> list[str]:
    return [
        sys.executable, "-m", "rostra", "speak", invite_url, "--tone", "440",
        "--seconds", f"{seconds:g}", "--name", "Tone 440",
    ]  # fmt: skip


async def measure(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    crashes = []
    for index in range(args.crashes + 1):
        # a pause before each disturbance: the origin has lived past the supervisor's 10 s
        # (STABLE_AFTER_S), so each kill is restarted at once, as the first would be
        print(f"   pause {args.pause_s:g} s", flush=True)
        await asyncio.sleep(args.pause_s)
        if index < args.crashes:
            crashes.append(await crash_origin(run, index))
    graceful = await graceful_restart(run)
    return {"crashes": crashes, "graceful_restart": graceful}


async def drive(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """The measurements, with the listeners' poller running throughout."""
    async with httpx.AsyncClient() as client, httpx.AsyncClient() as poll_client:
        run.client = client
        stop = asyncio.Event()
        polling = asyncio.create_task(run.poller.run(poll_client, stop))
        try:
            return await measure(run, args)
        finally:
            stop.set()
            await polling


CRASH_FIGURES = (
    "origin_process_s",
    "origin_answers_whip_s",
    "healthz_200_s",
    "first_new_segment_listed_s",
    "first_new_segment_written_s",
    "program_gap_s",
    "speaker_back_s",
)


def summary(crashes: list[dict[str, Any]], graceful: dict[str, Any]) -> dict[str, Any]:
    """p50 and max of each kill -9 figure over the crashes, the listeners' answers while the
    origin was away, and the graceful restart's figures."""
    figures: dict[str, Any] = {}
    for key in CRASH_FIGURES:
        values = [c[key] for c in crashes if c.get(key) is not None]
        spread = percentiles(values, (50,))
        figures[f"kill9_{key}"] = {
            "p50": spread.get("p50"), "max": spread.get("max"), "measured": len(values),
            "of": len(crashes),
        }  # fmt: skip
    for kind in ("state.json", "playlist"):
        answered = [
            c["listeners_during_outage"][kind] for c in crashes if "listeners_during_outage" in c
        ]
        figures[f"kill9_listeners_{kind}"] = {
            "polls": sum(a["requests"] for a in answered),
            "not_200": sum(sum(a["non_200"].values()) for a in answered),
            "failed": sum(sum(a["failures"].values()) for a in answered),
        }
    figures |= {f"sigterm_{k}": v for k, v in graceful.items() if k.endswith("_s")}
    return figures


def table(figures: dict[str, Any]) -> list[str]:
    rows = []
    for key, value in figures.items():
        if isinstance(value, dict) and "p50" in value:
            p50, top = value["p50"], value["max"]
            count = f"({value['measured']} of {value['of']})"
            rows.append(f"  {key:<38} p50 {p50!s:>7}  max {top!s:>7}  {count}")
        elif isinstance(value, dict):
            rows.append(f"  {key:<38} {value['polls']} polls, {value['not_200']} not 200, "
                        f"{value['failed']} failed")  # fmt: skip
        else:
            rows.append(f"  {key:<38} {value}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crashes", type=int, default=5, help="kill -9 of the origin, K times")
    parser.add_argument("--pause-s", type=float, default=15.0, help="pause after each recovery")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and data in this folder")
    parser.add_argument("--same-priority", action="store_true")
    args = parser.parse_args()
    niceness = prioritize_clients(not args.same_priority)
    started = datetime.now(UTC)
    load_start = [round(x, 2) for x in os.getloadavg()]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="rostra-restart-"))
    folder.mkdir(parents=True, exist_ok=True)
    server = start_at_server_niceness(folder / "data", port=None, whip_port=None)
    space = create_space(server, "Restart bench")
    speaker_s = args.crashes * (args.pause_s + RECOVERY_TIMEOUT_S) + 120
    command = speaker_command(space["speaker_invite_url"], speaker_s)
    speaker_log = folder / "speaker.log"
    with speaker_log.open("wb") as out:
        speaker = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    playlist_url = space["hls_url"].replace("index.m3u8", "audio.m3u8")
    poller = Poller(space["state_url"], playlist_url)
    run = Run(server=server, space=space, poller=poller, logs=folder)
    try:
        figures = asyncio.run(drive(run, args))
    finally:
        speaker.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            speaker.wait(timeout=10)
        if speaker.poll() is None:
            speaker.kill()
            speaker.wait()
        stop_server(run.server)
        # server-1.log is copied before the new start (which writes DATA/server.log afresh)
        first = folder / "server-1.log"
        shutil.copy(run.server.log_path, folder / ("server-2.log" if first.exists() else first))
    disk = segments_on_disk(run.media)
    figures["segments_on_disk"] = disk
    figures["program_date_time"] = run.poller.playlist.date_checks()
    figures["listeners_whole_run"] = run.poller.summary(0.0, time.monotonic())
    if disk["lost"]:
        run.fail("segments on disk", f"{disk['lost']} lost: {disk}")
    dates = figures["program_date_time"]
    if dates["went_back_at"] or dates["went_back_within_a_playlist"]:
        run.fail("PROGRAM-DATE-TIME", f"went back: {dates}")
    server_command = (
        f"ROSTRA_ADMIN_TOKEN=… ROSTRA_HOST=127.0.0.1 ROSTRA_PORT={urlparse(server.url).port} "
        f"ROSTRA_WHIP_PORT={server.whip_port} ROSTRA_DATA={server.data} "
        f"ROSTRA_ICE_HOST_ADDRESSES=127.0.0.1 {sys.executable} -m rostra serve"
    )
    figures |= {
        "options": {"crashes": args.crashes, "pause_s": args.pause_s},
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "niceness": niceness,
        "commands": {
            "server": server_command,
            "speaker": shlex.join(speaker_command("INVITE_URL", speaker_s)),
        },
        "speaker_output_tail": speaker_log.read_text(errors="replace").splitlines()[-5:],
        "speaker_joins_in_log": sum(
            (folder / name).read_text(errors="replace").count('"speaker joined"')
            for name in ("server-1.log", "server-2.log")
            if (folder / name).is_file()
        ),
        "logs": str(folder),
        "failures": run.failures,
    }
    figures["summary"] = summary(figures["crashes"], figures["graceful_restart"])
    path = write_results(NAME, figures, started_at=started)
    print("\n".join(table(figures["summary"])))
    print(f"segments on disk: {disk['count']}, lost {disk['lost']}", end=", ")
    print(f"not full (number: samples) {disk['not_full_samples']}")
    print(f"PROGRAM-DATE-TIME: {dates}")
    print(f"failures: {len(run.failures)}; logs in {folder}; wrote {path}")
    if not args.keep and not run.failures:
        shutil.rmtree(folder / "data", ignore_errors=True)


if __name__ == "__main__":
    main()
