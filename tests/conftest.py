"""Shared fixtures: a real Rostra server process on a free loopback port, speech samples."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token-0123456789"
STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    data: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    whip_port: int = 0

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {ADMIN_TOKEN}")
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def create_space(self, title: str = "Test space", *, live: bool = True) -> dict[str, Any]:
        response = self.api("POST", "/api/v1/spaces", json={"title": title, "live": live})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    @property
    def whip_base(self) -> str:
        """The origin's own WHIP endpoint base (a port apart from the listener workers)."""
        return f"http://127.0.0.1:{self.whip_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    data: Path,
    *,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    whip_port: int | None = None,
    ready_status: int = 200,
) -> Server:
    """`rostra serve` on `port` (default: a free one); give the port and data folder of a killed
    server to start it again as a supervisor would."""
    port = port or free_port()
    whip_port = whip_port or free_port()
    env = dict(os.environ)
    env.update(
        {
            "ROSTRA_ADMIN_TOKEN": ADMIN_TOKEN,
            "ROSTRA_HOST": "127.0.0.1",
            "ROSTRA_PORT": str(port),
            "ROSTRA_WHIP_PORT": str(whip_port),
            "ROSTRA_DATA": str(data),
            "ROSTRA_ICE_HOST_ADDRESSES": "127.0.0.1",
        }
    )
    env.update(extra_env or {})
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rostra", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == ready_status:
                return Server(
                    url=url, data=data, process=process, log_path=log_path, whip_port=whip_port
                )
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start: {log_path.read_text()}")


def stop_server(server: Server, *, timeout_s: float = 30.0) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return int(server.process.returncode)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "data")
    yield running
    stop_server(running)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A real redis-server on a free loopback port, stopped by PID after the test."""
    from tests.redis_server import running_redis

    with running_redis(tmp_path / "redis") as server:
        yield server


class _Closable(Protocol):
    def close(self) -> None: ...


StoreT = TypeVar("StoreT", bound=_Closable)


@dataclass
class StoreBackend:
    """The backend one run of a store suite is on: in memory, a SQLite file, or a real Redis."""

    name: str
    sqlite_path: Path
    redis_url: str
    opened: list[_Closable] = field(default_factory=list)

    def open(
        self,
        memory: Callable[[], StoreT],
        sqlite: Callable[[Path], StoreT],
        redis: Callable[[str], StoreT],
    ) -> StoreT:
        """A store on this backend, closed after the test; each call is another worker's handle
        on the same SQLite file or Redis server."""
        if self.name == "memory":
            store = memory()
        elif self.name == "sqlite":
            store = sqlite(self.sqlite_path)
        else:
            store = redis(self.redis_url)
        self.opened.append(store)
        return store


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    """Runs a store test once on each backend (a redis-server is started only for Redis)."""
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    backend = StoreBackend(request.param, tmp_path / "audience.sqlite3", redis_url)
    yield backend
    for store in backend.opened:
        store.close()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


def padded(wav: Path, *, before_s: float = 2.0, after_s: float = 3.0) -> Path:
    """The clip with silence around it, so a peer that joins a little later hears all of it."""
    out = wav.with_name(f"{wav.stem}-padded.wav")
    if not out.exists():
        subprocess.run(["sox", str(wav), str(out), "pad", str(before_s), str(after_s)], check=True)
    return out


def make_speech(directory: Path, name: str, text: str, *, voice: str = "en") -> Path:
    """Real speech from espeak-ng, resampled to 48 kHz mono WAV."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `make test` installs it (Debian package espeak-ng)")
    raw = directory / f"{name}-raw.wav"
    out = directory / f"{name}.wav"
    if not out.exists():
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(raw), "-ar", "48000", "-ac", "1", str(out)],
            check=True,
        )
    return out


CONTROL_SPEECH = "Nobody ever said these words into the space, so nobody should hear them."


def speech_and_control(directory: Path, name: str, text: str) -> dict[str, Path]:
    """`voice`: `text` spoken, for a test to publish; `control`: a sentence nobody publishes, in
    another accent. What a listener hears must match the first far better than the second."""
    return {
        "voice": make_speech(directory, name, text, voice="en-us"),
        "control": make_speech(directory, "control", CONTROL_SPEECH, voice="en-gb"),
    }
