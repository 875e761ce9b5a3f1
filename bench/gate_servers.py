"""The gate servers under load: `rostra serve` (in-memory store), `rostra gate` on Redis, and the
same gate app under other ASGI server settings, each pinned with `taskset` to one core and run at
the niceness the benchmark started with; the CPU time of a server's whole process tree.

Servers bind 127.0.0.1 on a free port and are stopped by PID.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from harness import ADMIN_TOKEN, CLOCK_TICKS_PER_S, ROOT, STARTING_NICENESS

if TYPE_CHECKING:
    from tests.redis_server import RedisServer

STARTUP_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 20.0
GATE_FACTORY = "rostra.web.gate_app:create_gate_app"


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to start one server: `argv` gets `--port` appended; `is_embedded`: `rostra serve`."""

    name: str
    description: str
    argv: tuple[str, ...]
    workers: int = 1
    is_embedded: bool = False
    env: dict[str, str] = field(default_factory=dict)


def embedded() -> ServerSpec:
    return ServerSpec(
        "serve",
        "`rostra serve` as shipped (uvicorn, auto loop/http: uvloop + httptools), in-memory store",
        (sys.executable, "-m", "rostra", "serve"),
        is_embedded=True,
    )


def gate(redis_url: str, workers: int) -> ServerSpec:
    return ServerSpec(
        f"gate-{workers}w",
        f"`rostra gate --workers {workers}` as shipped (uvicorn, uvloop + httptools), Redis",
        (sys.executable, "-m", "rostra", "gate", "--redis", redis_url, "--workers", str(workers)),
        workers=workers,
    )


def uvicorn_gate(redis_url: str, *, loop: str, http: str) -> ServerSpec:
    argv = (
        sys.executable, "-m", "uvicorn", "--factory", GATE_FACTORY, "--host", "127.0.0.1",
        "--loop", loop, "--http", http, "--no-access-log", "--log-level", "warning",
    )  # fmt: skip
    return ServerSpec(
        f"uvicorn-{http}-{loop}",
        f"the gate app under uvicorn --loop {loop} --http {http}, Redis",
        argv,
        env={"ROSTRA_REDIS": redis_url},
    )


def granian_gate(redis_url: str, *, task_impl: str) -> ServerSpec:
    argv = (
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host",
        "127.0.0.1", "--workers", "1", "--loop", "uvloop", "--task-impl", task_impl,
        "--no-access-log", "--log-level", "warning", GATE_FACTORY,
    )  # fmt: skip
    return ServerSpec(
        f"granian-{task_impl}",
        f"the gate app under granian (ASGI, uvloop, --task-impl {task_impl}), Redis",
        argv,
        env={"ROSTRA_REDIS": redis_url},
    )


def plain_gate(redis_url: str, *, is_mounted: bool = False) -> ServerSpec:
    factory = "plain_gate:create_mounted_app" if is_mounted else "plain_gate:create_app"
    argv = (
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--log-level", "warning",
    )  # fmt: skip
    if is_mounted:
        name = "fastapi-plain-routes"
        what = "the shipped FastAPI gate app with plain Starlette routes for heartbeat and join"
    else:
        name = "plain-starlette"
        what = "the same Gate behind a bare Starlette app"
    return ServerSpec(
        name,
        f"experiment, not shipped: {what} (bench/plain_gate.py), uvicorn uvloop + httptools, Redis",
        argv,
        env={"ROSTRA_REDIS": redis_url},
    )


def is_granian_installed() -> bool:
    return importlib.util.find_spec("granian") is not None


def _descendants(pid: int) -> list[int]:
    found = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in children:
                found += _descendants(int(child))
    return found


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (all threads)."""
    total = 0
    for member in _descendants(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{member}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS_PER_S


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(argv: list[str] | tuple[str, ...], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *argv]


def _server_niceness() -> None:
    os.setpriority(os.PRIO_PROCESS, 0, STARTING_NICENESS)


@dataclass(slots=True)
class RunningServer:
    spec: ServerSpec
    url: str
    process: subprocess.Popen[bytes]
    command: list[str]

    def cpu_s(self) -> float:
        return tree_cpu_s(self.process.pid)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running(spec: ServerSpec, *, secret: str, core: int) -> Iterator[RunningServer]:
    """The server pinned to `core`, data and log in a temporary folder, stopped by PID."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rostra-bench-gate-") as folder:
        env = dict(os.environ, ROSTRA_SIGNING_SECRET=secret, ROSTRA_LOG_LEVEL="warning")
        # the gate's own cost is measured: the admission bucket must not turn joins into 503s
        env.update(ROSTRA_ADMISSION_RATE="10000000", ROSTRA_ADMISSION_BURST="100000000")
        env.update(spec.env)
        if spec.is_embedded:
            env.update(
                ROSTRA_ADMIN_TOKEN=ADMIN_TOKEN,
                ROSTRA_HOST="127.0.0.1",
                ROSTRA_PORT=str(port),
                ROSTRA_DATA=str(Path(folder) / "data"),
                ROSTRA_ICE_HOST_ADDRESSES="127.0.0.1",
            )
            argv = list(spec.argv)
        else:
            argv = [*spec.argv, "--port", str(port)]
        command = pinned(argv, core)
        log = Path(folder) / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                preexec_fn=_server_niceness,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log)
            yield RunningServer(spec, url, process, command)
        finally:
            _stop(process)


@contextlib.contextmanager
def pinned_redis(core: int) -> Iterator[RedisServer]:
    """A redis-server (no persistence) on a free port, all its threads pinned to `core`."""
    # the tests' own helper; importable once harness has put the repository root on sys.path
    from tests.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="rostra-bench-redis-") as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            assert server.process is not None
            pid = server.process.pid
            subprocess.run(
                ["taskset", "-a", "-p", "-c", str(core), str(pid)], capture_output=True, check=True
            )
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, int(task.name), STARTING_NICENESS)
            yield server
        finally:
            server.stop()


def redis_version() -> str:
    result = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "missing"
