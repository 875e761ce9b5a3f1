"""The edge for end-to-end tests: `rostra edge` (Debian's nginx, or Varnish with
`engine="varnish"`) started on a free loopback port and stopped by PID, and a module's
`rostra serve` behind it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Server, free_port, start_server, stop_server

NGINX = Path("/usr/sbin/nginx")
VARNISHD = Path("/usr/sbin/varnishd")
ENGINE_BINARIES = {"nginx": NGINX, "varnish": VARNISHD}
EDGE_STARTUP_TIMEOUT_S = 20.0
LOG_LINE_RE = re.compile(
    r'^(?P<at>\d+\.\d+) (?P<status>\d+) (?P<method>\S+) "(?P<uri>[^"]*)" '
    r"cache=(?P<cache>\S*) upstream=(?P<upstream>\S+)"
)


@dataclass
class Edge:
    url: str
    process: subprocess.Popen[bytes]
    access_log: Path
    stderr_path: Path
    engine: str = "nginx"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def origin_requests(self, since: float, until: float) -> list[str]:
        """URIs the edge asked the origin for between two wall-clock times (its access log:
        nginx's `$upstream_addr` is set exactly when a request, or a background update, went
        there; Varnish's log has a line of its own, `upstream=b`, for each origin request)."""
        asked: list[str] = []
        for line in self.access_log.read_text().splitlines():
            match = LOG_LINE_RE.match(line)
            is_origin = match is not None and match["upstream"] not in ("-", "c")
            if match and is_origin and since <= float(match["at"]) <= until:
                asked.append(match["uri"])
        return asked


def start_edge(
    origin: str, whip_origin: str, port: int, folder: Path, engine: str = "nginx"
) -> Edge:
    folder.mkdir(parents=True, exist_ok=True)
    access_log = folder / "access.log"
    stderr_path = folder / "edge.log"
    command = [sys.executable, "-m", "rostra", "edge", "--origin", origin, "--port", str(port)]
    command += ["--whip-origin", whip_origin]
    command += ["--cache-dir", str(folder / "cache"), "--access-log", str(access_log)]
    command += ["--engine", engine]
    with stderr_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + EDGE_STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the edge exited: {stderr_path.read_text()}")
        try:
            httpx.get(url + "/healthz", timeout=1)
            return Edge(
                url=url,
                process=process,
                access_log=access_log,
                stderr_path=stderr_path,
                engine=engine,
            )
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the edge did not start: {stderr_path.read_text()}")


def stop_edge(edge: Edge) -> None:
    """`rostra edge` became nginx (or varnishd): its PID is the engine's master, which stops
    on SIGTERM."""
    if edge.process.poll() is None:
        edge.process.send_signal(signal.SIGTERM)
        try:
            edge.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            edge.process.kill()
            edge.process.wait()


@dataclass
class EdgeDeployment:
    server: Server
    edge: Edge


@pytest.fixture(scope="module")
def edge_server_env() -> dict[str, str]:
    """More environment for the server behind the edge: a test module overrides this fixture."""
    return {}


@pytest.fixture(scope="module")
def edge_engine() -> str:
    """The engine of the module's edge: a test module overrides this fixture (or parametrises
    it over nginx and varnish)."""
    return "nginx"


@pytest.fixture(scope="module")
def edge_deployment(
    tmp_path_factory: pytest.TempPathFactory, edge_server_env: dict[str, str], edge_engine: str
) -> Iterator[EdgeDeployment]:
    """A `rostra serve` whose public URL is the edge's, trusting it as its proxy, for a module."""
    if not ENGINE_BINARIES[edge_engine].is_file():
        pytest.fail(f"Debian's {edge_engine} is needed: `make system-test-deps` installs it")
    folder = tmp_path_factory.mktemp("edge")
    edge_port = free_port()
    server = start_server(
        folder / "data",
        extra_env={
            "ROSTRA_PUBLIC_URL": f"http://127.0.0.1:{edge_port}",
            "ROSTRA_TRUSTED_PROXIES": "127.0.0.1",
            **edge_server_env,
        },
    )
    try:
        whip_origin = f"http://127.0.0.1:{server.whip_port}"
        edge = start_edge(server.url, whip_origin, edge_port, folder / "edge", edge_engine)
    except BaseException:
        stop_server(server)
        raise
    try:
        yield EdgeDeployment(server=server, edge=edge)
    finally:
        stop_edge(edge)
        stop_server(server)
