"""A real Icecast 2.4 (Debian's icecast2) for tests: a temporary folder, a free loopback port, the
mount settings of docs/relays.md (burst 0 on every mount), stopped by PID. As root it drops to
Debian's icecast2 user, as Icecast refuses to run as root."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

SOURCE_PASSWORD = "test-source"  # a loopback-only test server's
ADMIN_PASSWORD = "test-admin"
STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
USER, GROUP = "icecast2", "icecast"  # Debian's icecast2 package creates them


def icecast_binary() -> str:
    found = shutil.which("icecast2") or (
        "/usr/bin/icecast2" if Path("/usr/bin/icecast2").is_file() else None
    )
    if found is None:
        pytest.fail("icecast2 is missing: `make test` installs it (Debian package icecast2)")
    return found


def icecast_config(
    folder: Path, port: int, *, relay_of: tuple[int, list[str]] | None = None, clients: int = 100
) -> str:
    """The docs/relays.md settings; `relay_of` = (master port, mounts) makes a relay."""
    relays = ""
    if relay_of is not None:
        master_port, mounts = relay_of
        relays = "".join(
            f"<relay><server>127.0.0.1</server><port>{master_port}</port>"
            f"<mount>{mount}</mount><local-mount>{mount}</local-mount>"
            "<on-demand>0</on-demand><relay-shoutcast-metadata>0</relay-shoutcast-metadata>"
            "</relay>"
            for mount in mounts
        )
    owner = (
        f"<changeowner><user>{USER}</user><group>{GROUP}</group></changeowner>"
        if os.geteuid() == 0
        else ""
    )
    return f"""<icecast>
  <location>loopback</location><admin>test@localhost</admin><hostname>127.0.0.1</hostname>
  <limits>
    <clients>{clients}</clients><sources>64</sources><queue-size>524288</queue-size>
    <client-timeout>30</client-timeout><header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout><burst-size>0</burst-size>
  </limits>
  <authentication>
    <source-password>{SOURCE_PASSWORD}</source-password>
    <relay-password>{SOURCE_PASSWORD}</relay-password>
    <admin-user>admin</admin-user><admin-password>{ADMIN_PASSWORD}</admin-password>
  </authentication>
  <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <mount type="default"><burst-size>0</burst-size></mount>
  {relays}
  <fileserve>1</fileserve>
  <paths>
    <basedir>/usr/share/icecast2</basedir><logdir>{folder}</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot>
  </paths>
  <logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog>
    <loglevel>3</loglevel></logging>
  <security><chroot>0</chroot>{owner}</security>
</icecast>
"""


class IcecastServer:
    """One icecast2 process that can be stopped and started again on the same port."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        relay_of: tuple[int, list[str]] | None = None,
        clients: int = 100,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.relay_of = relay_of
        self.clients = clients
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def source_url(self) -> str:
        return f"icecast://source:{SOURCE_PASSWORD}@127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o777)  # its log folder, written after it drops to icecast2
        config = self.directory / "icecast.xml"
        config.write_text(
            icecast_config(self.directory, self.port, relay_of=self.relay_of, clients=self.clients)
        )
        config.chmod(0o644)
        self.process = subprocess.Popen(
            [icecast_binary(), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"icecast2 exited: {self.log()}")
            try:
                httpx.get(self.url + "/status-json.xsl", timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"icecast2 did not answer on port {self.port}: {self.log()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def status(self) -> dict[str, int]:
        """Listeners per mount path, as Icecast's status JSON says (nothing while it is not
        valid JSON, as Icecast 2.4.4's is for a moment after it starts)."""
        from rostra.audience.icecast_count import parse_status

        try:
            return parse_status(httpx.get(self.url + "/status-json.xsl", timeout=5).content)
        except ValueError:
            return {}

    def log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@contextmanager
def running_icecast(
    *, relay_of: tuple[int, list[str]] | None = None, port: int | None = None, clients: int = 100
) -> Iterator[IcecastServer]:
    """In a folder of /tmp: pytest's are closed to the icecast2 user it drops to as root."""
    with tempfile.TemporaryDirectory(prefix="rostra-test-icecast-") as name:
        server = IcecastServer(Path(name), port, relay_of=relay_of, clients=clients)
        server.start()
        try:
            yield server
        finally:
            server.stop()


TRICKLE_LIMIT_S = 30.0  # a slow answer's end, so its thread ends with the test


class _ThreadingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True


class HostileIcecast:
    """A loopback server that answers as a broken or hostile Icecast would, chosen by path: the
    status of a relay URL `{url}/deep` is JSON nested 200,000 deep, of `/huge` a valid status over
    2 MiB, of `/slow` one byte every 0.2 s, of `/good` `good_status`; a source (PUT) is answered
    with a 70 KiB head that never ends. `sources` counts the PUTs."""

    def __init__(self, good_status: bytes = b'{"icestats":{}}') -> None:
        self.good_status = good_status
        self.sources = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):  # the client gave up: that is the point
                    outer._answer(self.request)

        self._server = _ThreadingServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HostileIcecast:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 16384:
            chunk = connection.recv(4096)
            if not chunk:
                return
            head += chunk
        method, path, *_ = [*head.split(b"\r\n", 1)[0].decode("latin-1").split(" "), "", ""]
        if method == "PUT":
            self.sources += 1
            connection.sendall(b"HTTP/1.0 200 OK\r\nX-Flood: " + b"x" * 70 * 1024)
            return
        ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
        if path.startswith("/deep/"):
            connection.sendall(ok + b"[" * 200_000)
        elif path.startswith("/huge/"):
            connection.sendall(ok + b" " * (2 * 1024 * 1024) + self.good_status)
        elif path.startswith("/slow/"):
            connection.sendall(ok)
            deadline = time.monotonic() + TRICKLE_LIMIT_S
            while time.monotonic() < deadline:
                connection.sendall(b" ")
                time.sleep(0.2)
        elif path.startswith("/good/"):
            connection.sendall(ok + self.good_status)
        else:
            connection.sendall(b"HTTP/1.0 404 Not Found\r\n\r\n")
