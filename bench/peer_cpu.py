"""A server's CPU and bytes per listener over one window: N listeners (bench/peer_load.py) in
separate client processes, the server's whole process tree read from /proc at the window's ends,
and the same server with no listener as the baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import process_sample, process_tree

LISTENERS_PER_PROCESS = 250
MAX_CLIENT_PROCESSES = 4
READY_TIMEOUT_S = 60.0
RESULT_TIMEOUT_S = 30.0
# connected listeners still receive a server's burst on connect for a moment: not counted
SETTLE_S = 3.0
SECONDS_PER_HOUR = 3600
CLIENT_BUSY_FRACTION = 0.9  # a client process above this share of a core may be the bottleneck
LOAD_SCRIPT = Path(__file__).resolve().parent / "peer_load.py"


@dataclass(slots=True)
class LoadWindow:
    """What one window measured; `idle` is the same server's window with no listener."""

    listeners: int
    window_s: float
    server_cpu_s: float
    processes: list[str]
    clients: list[dict[str, Any]] = field(default_factory=list)
    idle: LoadWindow | None = None

    @property
    def cores(self) -> float:
        return self.server_cpu_s / self.window_s

    def figures(self) -> dict[str, Any]:
        received = sum(c["bytes"] for c in self.clients)
        connected = sum(c["connected"] for c in self.clients)
        idle_cores = self.idle.cores if self.idle is not None else 0.0
        per_1000 = (self.cores - idle_cores) * 1000 / self.listeners if self.listeners else None
        busiest = max((c["client_cpu_s"] / self.window_s for c in self.clients), default=0.0)
        return {
            "listeners": self.listeners,
            "connected": connected,
            "window_s": round(self.window_s, 2),
            "server_cores": round(self.cores, 4),
            "server_cores_with_no_listener": round(idle_cores, 4),
            "cpu_cores_per_1000_listeners": None if per_1000 is None else round(per_1000, 4),
            "bytes_per_listener_hour": (
                round(received / max(1, connected) * SECONDS_PER_HOUR / self.window_s)
                if connected
                else None
            ),
            "hls_requests": sum(c["requests"] for c in self.clients),
            "client_errors": sum(c["errors"] for c in self.clients),
            "client_first_errors": [e for c in self.clients for e in c["first_errors"]][:3],
            "client_processes": len(self.clients),
            "busiest_client_core_share": round(busiest, 3),
            "client_may_be_bottleneck": busiest > CLIENT_BUSY_FRACTION,
            "server_processes": self.processes,
        }


def tree_cpu_s(pid: int) -> tuple[float, list[str]]:
    samples = [s for p in process_tree(pid) if (s := process_sample(p)) is not None]
    return sum(s["cpu_s"] for s in samples), [s["command"][:80] for s in samples]


def _trees_cpu_s(pids: tuple[int, ...]) -> tuple[float, list[str]]:
    """Several servers' process trees together (an edge and the origin behind it)."""
    trees = [tree_cpu_s(pid) for pid in pids]
    return sum(cpu for cpu, _ in trees), [command for _, commands in trees for command in commands]


def _spawn(kind: str, url: str, count: int, ready_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(LOAD_SCRIPT), kind, url, str(count), str(ready_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _send(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def measure_load(
    kind: str,
    url: str,
    listeners: int,
    window_s: float,
    pid: int | tuple[int, ...],
    *,
    idle: LoadWindow | None = None,
) -> LoadWindow:
    """`listeners` of `kind` ("progressive" or "hls") on `url` while server `pid`'s process
    tree (or the trees of several PIDs, summed) is measured for `window_s`; with no listener,
    the baseline window."""
    pids = pid if isinstance(pid, tuple) else (pid,)
    count = -(-listeners // LISTENERS_PER_PROCESS) if listeners else 0
    count = min(count, MAX_CLIENT_PROCESSES)
    shares = [listeners // count + (i < listeners % count) for i in range(count)] if count else []
    ready_s = 1.0 if kind == "hls" else 0.0  # pollers spread over one target duration
    clients = [_spawn(kind, url, share, ready_s) for share in shares]
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for client in clients:
            assert client.stdout is not None
            line = client.stdout.readline()
            if line.strip() != "ready" or time.monotonic() > deadline:
                raise RuntimeError(f"a {kind} client process did not get ready: {line!r}")
        time.sleep(SETTLE_S if clients else 0.0)
        for client in clients:
            _send(client, "go")
        cpu_start, processes = _trees_cpu_s(pids)
        started = time.monotonic()
        time.sleep(window_s)
        cpu_end, _ = _trees_cpu_s(pids)
        wall_s = time.monotonic() - started
        for client in clients:
            _send(client, "stop")
        results = []
        for client in clients:
            out, _ = client.communicate(timeout=RESULT_TIMEOUT_S)
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
    return LoadWindow(
        listeners=listeners,
        window_s=wall_s,
        server_cpu_s=cpu_end - cpu_start,
        processes=processes,
        clients=results,
        idle=idle,
    )
