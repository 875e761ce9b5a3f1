"""The peers Rostra is measured beside, run on loopback in temporary folders: Icecast 2.4 and
nginx with nginx-rtmp's HLS (Debian's packages), and the ffmpeg that feeds both from the same
PCM the Rostra speaker bot sends, written to its stdin in real time.

Each is a context manager that stops its processes by PID, even on error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt

from harness import ROOT
from rostra.media.codecs import AAC_BITRATE_BPS, OPUS_BITRATE_BPS

# isort: split
from tests.conftest import free_port

SAMPLE_RATE_HZ = 48_000
FRAME_SAMPLES = 960  # the feeder writes 20 ms at a time, as the speaker bot hands frames over
FRAME_DURATION_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
SOURCE_PASSWORD = "peers-bench"  # noqa: S105 - a loopback-only bench server's password
ICECAST_USER, ICECAST_GROUP = "icecast2", "icecast"  # Debian's icecast2 package creates them
ICECAST_DEFAULT_BURST_BYTES = 65_535  # Icecast 2.4's default <burst-size>
NGINX_RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
HLS_FRAGMENT_S = 1
HLS_PLAYLIST_LENGTH_S = 4
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
STATIC_DIR = ROOT / "src" / "rostra" / "web" / "static"
HLS_JS = ROOT / "node_modules" / "hls.js" / "dist" / "hls.min.js"

Pcm = npt.NDArray[np.float32]

# Icecast mounts: (mount, burst bytes or None for Icecast's default)
ICECAST_MOUNTS = {
    "icecast_default_burst_aac": ("/default.aac", None),
    "icecast_burst_0_aac": ("/burst0.aac", 0),
    "icecast_default_burst_opus": ("/default.opus", None),
    "icecast_burst_0_opus": ("/burst0.opus", 0),
}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text(errors="replace")[-800:] if log.is_file() else ""
            raise RuntimeError(f"{url} exited with {process.returncode}: {text}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1.0)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {START_TIMEOUT_S} s")


@dataclass(frozen=True, slots=True)
class Icecast:
    url: str
    pid: int
    version: str


def _icecast_config(folder: Path, port: int, max_clients: int) -> str:
    mounts = "".join(
        f"<mount type='normal'><mount-name>{mount}</mount-name>"
        f"<burst-size>{burst}</burst-size></mount>"
        for mount, burst in ICECAST_MOUNTS.values()
        if burst is not None
    )
    return f"""<icecast>
  <location>loopback</location><admin>bench@localhost</admin><hostname>127.0.0.1</hostname>
  <limits>
    <clients>{max_clients}</clients><sources>8</sources><queue-size>524288</queue-size>
    <client-timeout>30</client-timeout><header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout><burst-size>{ICECAST_DEFAULT_BURST_BYTES}</burst-size>
  </limits>
  <authentication>
    <source-password>{SOURCE_PASSWORD}</source-password>
    <admin-user>admin</admin-user><admin-password>{SOURCE_PASSWORD}</admin-password>
  </authentication>
  <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  {mounts}
  <fileserve>1</fileserve>
  <paths>
    <basedir>/usr/share/icecast2</basedir><logdir>{folder}</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot>
  </paths>
  <logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog>
    <loglevel>2</loglevel></logging>
  <security><chroot>0</chroot>
    <changeowner><user>{ICECAST_USER}</user><group>{ICECAST_GROUP}</group></changeowner>
  </security>
</icecast>
"""


@contextlib.contextmanager
def running_icecast(max_clients: int) -> Iterator[Icecast]:
    """Icecast 2.4 on a free loopback port; as root it drops to Debian's icecast2 user."""
    binary = shutil.which("icecast2")
    if binary is None:
        raise RuntimeError("icecast2 is missing: ./scripts/apt-install icecast2")
    with tempfile.TemporaryDirectory(prefix="rostra-peer-icecast-") as name:
        folder = Path(name)
        folder.chmod(0o777)  # its log folder, written after it drops to the icecast2 user
        port = free_port()
        config = folder / "icecast.xml"
        config.write_text(_icecast_config(folder, port, max_clients))
        config.chmod(0o644)
        process = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_http(url + "/status-json.xsl", process, folder / "error.log")
            version = httpx.get(url + "/", timeout=2).headers.get("server", "icecast")
            yield Icecast(url=url, pid=process.pid, version=version)
        finally:
            _stop(process)


@dataclass(frozen=True, slots=True)
class NginxRtmp:
    http_url: str
    rtmp_url: str
    pid: int
    hls_url: str


def _nginx_config(folder: Path, http_port: int, rtmp_port: int) -> str:
    return f"""load_module {NGINX_RTMP_MODULE};
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 8192; }}
rtmp {{
  server {{
    listen 127.0.0.1:{rtmp_port};
    chunk_size 4096;
    application live {{
      live on;
      hls on;
      hls_path {folder}/hls;
      hls_fragment {HLS_FRAGMENT_S}s;
      hls_playlist_length {HLS_PLAYLIST_LENGTH_S}s;
      hls_cleanup on;
    }}
  }}
}}
http {{
  access_log off;
  client_body_temp_path {folder}/work; proxy_temp_path {folder}/work;
  fastcgi_temp_path {folder}/work; uwsgi_temp_path {folder}/work; scgi_temp_path {folder}/work;
  types {{
    application/vnd.apple.mpegurl m3u8; video/mp2t ts;
    text/javascript js; text/html html;
  }}
  server {{
    listen 127.0.0.1:{http_port};
    location /hls/ {{ alias {folder}/hls/; add_header Cache-Control no-cache; }}
    location = /static/vendor/hls.min.js {{ alias {HLS_JS}; }}
    location /static/ {{ alias {STATIC_DIR}/; }}
  }}
}}
"""


@contextlib.contextmanager
def running_nginx_rtmp() -> Iterator[NginxRtmp]:
    """nginx with nginx-rtmp: RTMP in, HLS with 1 s fragments out; the http server also serves
    hls.js and the listener page's player config so the same bench page plays it."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not NGINX_RTMP_MODULE.is_file():
        raise RuntimeError("nginx-rtmp is missing: ./scripts/apt-install libnginx-mod-rtmp")
    with tempfile.TemporaryDirectory(prefix="rostra-peer-nginx-") as name:
        folder = Path(name)
        for sub in ("hls", "work"):
            (folder / sub).mkdir()
        for path in (folder, folder / "hls", folder / "work"):
            path.chmod(0o777)  # nginx's workers run as another user and write the fragments
        http_port, rtmp_port = free_port(), free_port()
        config = folder / "nginx.conf"
        config.write_text(_nginx_config(folder, http_port, rtmp_port))
        process = subprocess.Popen(
            [binary, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{http_port}"
            _wait_http(url + "/static/player-config.js", process, folder / "error.log")
            yield NginxRtmp(
                http_url=url,
                rtmp_url=f"rtmp://127.0.0.1:{rtmp_port}/live/stream",
                pid=process.pid,
                hls_url=url + "/hls/stream.m3u8",
            )
        finally:
            _stop(process)


@dataclass(slots=True)
class Feeder:
    """One ffmpeg encoding PCM written to its stdin in real time, 20 ms at a time, to every peer:
    AAC-LC ADTS and Ogg/Opus at Rostra's bitrates to each Icecast mount, AAC over RTMP to nginx.
    `preroll` in a loop (or silence) until `release()`, then `pcm`; `written_at[i]` is when the
    chunk starting at sample i of `pcm` was written: the peers' "mouth"."""

    pcm: Pcm
    icecast_url: str
    rtmp_url: str
    preroll: Pcm | None = None
    written_at: dict[int, float] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    error: str | None = None
    _thread: threading.Thread | None = None
    _stop_event: threading.Event = field(default_factory=threading.Event)
    _release_event: threading.Event = field(default_factory=threading.Event)

    def command(self) -> list[str]:
        icecast = self.icecast_url.replace("http://", f"icecast://source:{SOURCE_PASSWORD}@")
        command = [
            *("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-fflags", "nobuffer", "-probesize", "32", "-analyzeduration", "0"),
            *("-f", "f32le", "-ar", str(SAMPLE_RATE_HZ), "-ac", "1", "-i", "pipe:0"),
        ]
        for mount, _ in ICECAST_MOUNTS.values():
            if mount.endswith(".aac"):
                codec = ["-c:a", "aac", "-b:a", str(AAC_BITRATE_BPS), "-f", "adts"]
                content_type = "audio/aac"
            else:  # Ogg pages of one packet each, as a careful low-latency operator sets it
                codec = ["-c:a", "libopus", "-b:a", str(OPUS_BITRATE_BPS), "-f", "ogg"]
                codec += ["-page_duration", "20000"]
                content_type = "audio/ogg"
            command += [*codec, "-flush_packets", "1", "-content_type", content_type]
            command.append(icecast + mount)
        command += ["-c:a", "aac", "-b:a", str(AAC_BITRATE_BPS), "-flush_packets", "1"]
        command += ["-f", "flv", self.rtmp_url]
        return command

    def start(self) -> None:
        # stdin is written in real time, so ffmpeg's -re would only add its own delay
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._thread = threading.Thread(target=self._write, name="peer-feeder", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Until now the feeder wrote silence, so that every listener could join first."""
        self._release_event.set()

    def _write(self) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        stdin = self.process.stdin
        preroll = self.preroll if self.preroll is not None else np.zeros(0, np.float32)
        preroll = preroll[: preroll.size - preroll.size % FRAME_SAMPLES]
        if preroll.size == 0:
            preroll = np.zeros(FRAME_SAMPLES, np.float32)
        started, written, start = time.monotonic(), 0, 0
        while start < self.pcm.size and not self._stop_event.is_set():
            delay = started + written * FRAME_DURATION_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            at = written * FRAME_SAMPLES % preroll.size
            chunk = preroll[at : at + FRAME_SAMPLES].tobytes()
            if self._release_event.is_set():
                self.written_at[start] = time.time()
                chunk = self.pcm[start : start + FRAME_SAMPLES].tobytes()
                start += FRAME_SAMPLES
            try:
                stdin.write(chunk)
                stdin.flush()
            except (BrokenPipeError, ValueError) as error:
                self.error = f"ffmpeg stopped reading: {error}"
                return
            written += 1

    def stop(self) -> str:
        """Stops the feeder and ffmpeg; returns ffmpeg's last error lines."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
        if self.process is None:
            return ""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        _stop(self.process)
        stderr = self.process.stderr.read() if self.process.stderr else b""
        return stderr.decode(errors="replace")[-600:]


def is_root() -> bool:
    return os.geteuid() == 0
