"""The supervisor behind `rostra serve`: binds the listener and WHIP ports once, starts the origin
process and N listener workers on them, restarts any that dies, and stops them all on SIGTERM.

CLI (composition root). A child that dies is started again at once; one that keeps dying is
started again with a growing pause, so a broken install does not spin the CPU.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rostra.config import Settings

log = logging.getLogger(__name__)

POLL_S = 0.05
STOP_TIMEOUT_S = 25.0
# a child that lived this long had a clean run: its next crash restarts it at once
STABLE_AFTER_S = 10.0
MAX_PAUSE_S = 10.0
LISTEN_BACKLOG = 2048
# what a listener worker leaves in the run folder, named by its pid (feeds.py, worker_metrics.py)
PROCESS_FILE_PATTERNS = (
    "metrics-{pid}.prom",
    "metrics-{pid}.tmp",
    "streams-{pid}.json",
    "streams-{pid}.tmp",
)


def forget_process_files(run_dir: Path, pid: int | str = "*") -> int:
    """Remove the per-process files of a dead child (or of every child, before any starts):
    readers skip stale ones, but a crash-looping worker would otherwise leave one per pid."""
    removed = 0
    for pattern in PROCESS_FILE_PATTERNS:
        for path in run_dir.glob(pattern.format(pid=pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {error.strerror}") from error
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


@dataclass(slots=True)
class Child:
    name: str
    kind: str
    sock: socket.socket
    env: dict[str, str]
    run_dir: Path
    process: subprocess.Popen[bytes] | None = None
    started_at_s: float = 0.0
    quick_deaths: int = 0
    restart_at_s: float = 0.0
    restarts: int = field(default=0)

    def start(self) -> None:
        fd = self.sock.fileno()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "rostra.web.processes", self.kind, str(fd)],
            env=self.env,
            pass_fds=(fd,),
        )
        self.started_at_s = time.monotonic()
        log.info("process started", extra={"child": self.name, "pid": self.process.pid})

    def check(self, now_s: float) -> None:
        """Start it again if it died; called often by the supervisor's loop."""
        process = self.process
        if process is not None and process.poll() is None:
            return
        if process is not None:
            lived_s = now_s - self.started_at_s
            self.quick_deaths = 0 if lived_s > STABLE_AFTER_S else self.quick_deaths + 1
            pause_s = 0.0 if self.quick_deaths <= 1 else min(2.0**self.quick_deaths, MAX_PAUSE_S)
            log.error(
                "process died; restarting",
                extra={
                    "child": self.name,
                    "pid": process.pid,
                    "returncode": process.returncode,
                    "lived_s": round(lived_s, 1),
                    "pause_s": pause_s,
                },
            )
            forget_process_files(self.run_dir, process.pid)
            self.process = None
            self.restart_at_s = now_s + pause_s
        if now_s >= self.restart_at_s:
            self.restarts += 1
            self.start()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, deadline_s: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.0, deadline_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("process did not stop; killing it", extra={"child": self.name})
            self.process.kill()
            self.process.wait()


def child_environment(settings: Settings) -> dict[str, str]:
    """The children read their settings from ROSTRA_* variables: the supervisor's resolved ones."""
    env = dict(os.environ)
    values = {
        "HOST": settings.host,
        "PORT": str(settings.port),
        "DATA": str(settings.data.resolve()),
        "PUBLIC_URL": settings.public_url,
        "WHIP_PORT": str(settings.origin_whip_port),
        "WHIP_PUBLIC_URL": settings.whip_public_url,
        "TLS_CERT": settings.tls_cert,
        "TLS_KEY": settings.tls_key,
        "REDIS": settings.redis,
        "WORKERS": str(settings.workers),
        "CAPTIONS": "1" if settings.captions else "0",
    }
    env.update({f"ROSTRA_{key}": value for key, value in values.items() if value})
    return env


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        env = child_environment(settings)
        listener_socket = bind(settings.host, settings.port)
        whip_socket = bind(settings.host, settings.origin_whip_port)
        run_dir = settings.run_dir
        if run_dir.is_dir():
            forget_process_files(run_dir)
        self.children = [Child("origin", "origin", whip_socket, env, run_dir)]
        self.children += [
            Child(f"worker-{index}", "worker", listener_socket, env, run_dir)
            for index in range(max(1, settings.workers))
        ]
        self._stopping = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        for child in self.children:
            child.start()
        while not self._stopping:
            time.sleep(POLL_S)
            now_s = time.monotonic()
            for child in self.children:
                if not self._stopping:
                    child.check(now_s)
        self.stop()
        return 0

    def stop(self) -> None:
        deadline_s = time.monotonic() + STOP_TIMEOUT_S
        for child in self.children:
            child.terminate()
        for child in self.children:
            child.wait(deadline_s)
        log.info("server stopped; live spaces stay live until `rostra space end`")
