"""What every benchmark shares: a real Rostra server on loopback, the machine it ran on, CPU time
read from /proc, Prometheus figures from /metrics, and the results file it writes.

Benchmarks are scripts run from the repository root (`.venv/bin/python bench/NAME.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the tests' own helpers: a real server process, and listening with ffmpeg
from tests import audio_check  # noqa: E402
from tests.conftest import ADMIN_TOKEN, Server, start_server, stop_server  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
CHROMIUM = Path("/usr/bin/chromium")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
HTTP_TIMEOUT_S = 15.0
# Clients (bots, listeners, the browser and ffmpeg they start) run ahead of other work on the
# shared machine, so that a late client is never taken for a late server; the server keeps the
# niceness this process started with.
CLIENT_NICENESS = -5
STARTING_NICENESS = os.getpriority(os.PRIO_PROCESS, 0)
PACKAGES = ("aiortc", "aioice", "av", "numpy", "scipy", "pesq", "playwright", "httpx", "uvicorn")

__all__ = [
    "ADMIN_TOKEN",
    "CHROMIUM",
    "ROOT",
    "CpuMeter",
    "Server",
    "audio_check",
    "create_space",
    "machine_info",
    "metric_values",
    "percentiles",
    "prioritize_clients",
    "process_sample",
    "process_tree",
    "running_server",
    "write_results",
]


def prioritize_clients(is_wanted: bool = True) -> dict[str, int]:
    """Call first in main(), before any thread starts: threads inherit their creator's niceness.
    Returns the niceness of clients and server (unchanged where the system refuses)."""
    if is_wanted:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, CLIENT_NICENESS)
    return {"clients": os.getpriority(os.PRIO_PROCESS, 0), "server": STARTING_NICENESS}


def _renice(pid: int, niceness: int) -> None:
    """Every thread of `pid` (Linux keeps niceness per thread); later threads inherit it."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)


@contextlib.contextmanager
def _thread_niceness(niceness: int) -> Iterator[None]:
    """The calling thread at `niceness` for the block (processes it starts inherit it)."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    try:
        yield
    finally:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, before)


@contextlib.contextmanager
def running_server(extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """A `rostra serve` process on a free loopback port, with its data in a temporary folder,
    at the niceness this benchmark started with."""
    with tempfile.TemporaryDirectory(prefix="rostra-bench-") as folder:
        # a supervisor's children inherit the niceness of the thread that started it
        with _thread_niceness(STARTING_NICENESS):
            server = start_server(Path(folder) / "data", extra_env=extra_env)
        _renice(server.process.pid, STARTING_NICENESS)
        try:
            yield server
        finally:
            stop_server(server)


def create_space(server: Server, title: str) -> dict[str, Any]:
    """A live space: its program is encoded from now on."""
    response = server.api("POST", "/api/v1/spaces", json={"title": title, "live": True})
    if response.status_code != 201:
        raise RuntimeError(f"cannot create a space: {response.status_code} {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def metrics_text(server: Server) -> str:
    """The server's /metrics, read with the admin token."""
    return httpx.get(
        server.url + "/metrics",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=HTTP_TIMEOUT_S,
    ).text


async def wait_for_segments(playlist_url: str, count: int = 3, timeout_s: float = 30.0) -> None:
    """A player (hls.js, ffmpeg) that joins a live playlist with no segments yet only retries or
    gives up: wait until it lists a few."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            response = await client.get(playlist_url)
            if response.status_code == 200 and response.text.count("#EXTINF") >= count:
                return
            await asyncio.sleep(0.25)
    raise RuntimeError(f"{playlist_url} listed fewer than {count} segments in time")


def metric_values(server: Server, space_id: str) -> dict[str, float]:
    """The space's samples in /metrics, by metric name (counters without their `_total`)."""
    text = metrics_text(server)
    values: dict[str, float] = {}
    pattern = re.compile(r'^(rostra_\w+)\{space="' + re.escape(space_id) + r'"\} (\S+)$')
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            values[match.group(1).removesuffix("_total")] = float(match.group(2))
    return values


class CpuMeter:
    """CPU time (user + system, all threads) of one process, from /proc/<pid>/stat."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def seconds(self) -> float:
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # the command name may hold spaces: fields are counted after its closing parenthesis
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / CLOCK_TICKS_PER_S

    @contextlib.contextmanager
    def window(self) -> Iterator[dict[str, float]]:
        """Measures the block: yields a dict filled with cpu_s, wall_s and core_pct at its end."""
        figures: dict[str, float] = {}
        cpu_start, wall_start = self.seconds(), time.monotonic()
        yield figures
        cpu_s = self.seconds() - cpu_start
        wall_s = time.monotonic() - wall_start
        figures.update(
            cpu_s=round(cpu_s, 3), wall_s=round(wall_s, 3), core_pct=round(100 * cpu_s / wall_s, 2)
        )


def process_tree(pid: int) -> list[int]:
    """`pid` and every live descendant (children of a supervisor, their children...), read from
    the parent field of /proc/*/stat; the root first."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        member = pending.pop(0)
        found.append(member)
        pending += sorted(parents.get(member, []))
    return found


def process_sample(pid: int) -> dict[str, Any] | None:
    """One process now: its command line, resident memory (VmRSS), open file descriptors, CPU
    seconds (user + system, all threads), niceness and the cores it may run on; None once gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        cores = sorted(os.sched_getaffinity(pid))
    except (OSError, ValueError):
        return None
    rss_kb = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
    )
    fields = stat[stat.rindex(")") + 2 :].split()
    return {
        "pid": pid,
        "command": command.strip()[:160],
        "rss_mb": round(rss_kb / 1024, 2),
        "fds": fds,
        "cpu_s": (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S,
        "nice": int(fields[16]),
        "threads": int(fields[17]),
        "cores": cores,
    }


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 95)) -> dict[str, float]:
    """p50/p95 (and min, max, count) of `values`, rounded to the millisecond when in seconds."""
    if not values:
        return {"count": 0}
    array = np.asarray(values, dtype=np.float64)
    figures: dict[str, float] = {"count": int(array.size)}
    for point in points:
        figures[f"p{point}"] = round(float(np.percentile(array, point)), 4)
    figures["min"] = round(float(array.min()), 4)
    figures["max"] = round(float(array.max()), 4)
    return figures


def _version_line(command: Sequence[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    lines = result.stdout.strip().splitlines()
    return lines[0] if lines else "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def machine_info() -> dict[str, Any]:
    """What the figures were measured on; the load average shows other work sharing the cores."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "packages": _package_versions(),
        "ffmpeg": _version_line(["ffmpeg", "-version"]),
        "chromium": _version_line([str(CHROMIUM), "--version"]) if CHROMIUM.is_file() else "",
    }


def write_results(name: str, figures: dict[str, Any], *, started_at: datetime) -> Path:
    """bench/results/NAME.json: the figures, the machine, and the command that made them."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    script = Path(sys.argv[0]).name if sys.argv[0].endswith(".py") else f"{name}.py"
    document = {
        "benchmark": name,
        # the script that ran (several write more than one results file)
        "command": shlex.join([".venv/bin/python", f"bench/{script}", *sys.argv[1:]]),
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **figures,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
