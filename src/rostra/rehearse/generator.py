"""The rehearsal's load generator: the Locust processes that play the simulated audience
(one local runner, a master and local workers, or a master for workers elsewhere), their JSON
lines read back into observations, and their CPU and memory sampled while they run.

Rehearsal plane (a client). Never imports Locust or gevent: they run in the child processes
(`python -m rostra.rehearse.local_run --role ...`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from rostra.rehearse import report
from rostra.rehearse.observations import Observations, Second
from rostra.rehearse.scenario import Scenario
from rostra.rehearse.shape import ArrivalShape

LOCAL_MASTER_HOST = "127.0.0.1"
DEFAULT_MASTER_PORT = 5557  # Locust's


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_MASTER_HOST, 0))
        return int(sock.getsockname()[1])


class Generator:
    """The Locust processes: started, their JSON lines read into `observations` (and a running
    total for the progress line), their CPU and memory sampled while they run (local ones)."""

    def __init__(self, commands: list[list[str]], log_dir: Path, processes: int) -> None:
        self.processes = processes
        self.observations = Observations()
        self.total = Second()
        self.started_s: float | None = None
        self.is_done = False
        self._lock = threading.Lock()
        self._cpu_s: dict[int, float] = {}
        self._rss: dict[int, int] = {}
        self._rss_base: dict[int, int] = {}
        log_dir.mkdir(parents=True, exist_ok=True)
        self._procs: list[subprocess.Popen[bytes]] = []
        for index, command in enumerate(commands):
            with (log_dir / f"locust-{index}.log").open("wb") as log:
                # our own interpreter running our module, arguments as a list, no shell
                self._procs.append(
                    subprocess.Popen(  # noqa: S603
                        command, stdout=subprocess.PIPE if index == 0 else log, stderr=log
                    )
                )
        stdout = self._procs[0].stdout
        assert stdout is not None
        self._reader = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict):
                continue
            with self._lock:
                if "started" in line:
                    self.started_s = float(line["started"])
                if "observations" in line:
                    part = Observations.from_json(line["observations"])
                    self.observations.merge(part)
                    self.total.merge(part.total())
                if line.get("done"):
                    self.is_done = True

    def snapshot(self) -> tuple[Second, Observations]:
        with self._lock:
            total = Second()
            total.merge(self.total)
            return total, self.observations

    def sample(self) -> None:
        """Each local process's CPU seconds and peak memory so far, and its memory when the
        curve started (what its users' memory is counted above)."""
        for proc in self._procs:
            figures = process_figures(proc.pid)
            if figures is not None:  # an exited process reads 0: keep the largest
                cpu_s, rss = figures
                self._cpu_s[proc.pid] = max(cpu_s, self._cpu_s.get(proc.pid, 0.0))
                self._rss[proc.pid] = max(rss, self._rss.get(proc.pid, 0))
                if rss and proc.pid not in self._rss_base and self.started_s is not None:
                    self._rss_base[proc.pid] = rss  # Locust loaded, its users not yet

    @property
    def is_running(self) -> bool:
        return self._procs[0].poll() is None

    def wait(self, timeout_s: float) -> list[int | None]:
        deadline = time.monotonic() + timeout_s
        codes: list[int | None] = []
        for proc in self._procs:
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                codes.append(None)
        self._reader.join(timeout=5)
        return codes

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def figures(self) -> report.Generator:
        return report.Generator(
            processes=self.processes,
            cpu_s=sum(self._cpu_s.values()) or None,
            rss_bytes=sum(peak - self._rss_base.get(pid, 0) for pid, peak in self._rss.items())
            or None,
        )


def process_figures(pid: int) -> tuple[float, int] | None:
    """A process's CPU seconds (user + system) and peak resident bytes, from Linux's /proc
    (None elsewhere, or once it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak_kb = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0
    )
    return cpu_s, peak_kb * 1024


def locust_command(role: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "rostra.rehearse.local_run", "--role", role, *args]


def locust_config(scenario: Scenario, space_id: str) -> dict[str, Any]:
    shape = ArrivalShape(scenario.audience, attackers=scenario.attack.attackers)
    return {
        "host": scenario.target.media,
        "settings": {"space_id": space_id, "attack_interval_s": scenario.attack.interval_s},
        "audience": scenario.to_json()["audience"],
        "weights": shape.weights(),
        "attackers": scenario.attack.attackers,
        "join_within_s": scenario.targets.join_within_s,
    }


def generator_commands(
    scenario: Scenario,
    space_id: str,
    *,
    is_master: bool,
    expect_workers: int,
    master_port: int = DEFAULT_MASTER_PORT,
) -> list[list[str]]:
    """The Locust processes to start: the first one (local or master) reports on stdout."""
    config = json.dumps(locust_config(scenario, space_id))
    if is_master:
        port = str(master_port)
        return [
            locust_command(
                "master",
                "--config",
                config,
                "--master-host",
                "0.0.0.0",  # noqa: S104
                "--master-port",
                port,
                "--expect-workers",
                str(expect_workers),
            )
        ]
    workers = scenario.run.processes
    if workers == 1:
        return [locust_command("local", "--config", config)]
    port = str(_free_port())
    master = locust_command(
        "master",
        "--config",
        config,
        "--master-host",
        LOCAL_MASTER_HOST,
        "--master-port",
        port,
        "--expect-workers",
        str(workers),
    )
    worker = locust_command("worker", "--master-host", LOCAL_MASTER_HOST, "--master-port", port)
    return [master, *[worker] * workers]


def run_worker(master_host: str, master_port: int) -> int:
    """`rostra rehearse --worker`: one Locust worker joined to the master, until it quits."""
    command = locust_command(
        "worker", "--master-host", master_host, "--master-port", str(master_port)
    )
    return subprocess.call(command)  # noqa: S603 (our interpreter and module, no shell)
