"""Broadcast software over the Icecast source protocol: ffmpeg's `icecast://` output publishes
speech (MP3, Ogg/Opus, AAC) into a live space with the password `rostra space source` prints, and
a listener hears it in the program; the feed is one voice on stage, named after `ice-name`.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rostra.config import SIGNING_SECRET_FILE
from rostra.stage.invites import MAX_NAME_CHARS
from rostra.stage.sources import source_password
from rostra.web.icecast_framing import HEAD_TIMEOUT_S
from tests.audio_check import SAMPLE_RATE_HZ, capture, decode, speech_correlation
from tests.conftest import (
    ADMIN_TOKEN,
    ROOT,
    Server,
    padded,
    speech_and_control,
    start_server,
    stop_server,
)

VOICE = "Broadcast software feeds the space, and every listener hears the show."
MIN_CORRELATION = 0.5
CONTROL_RATIO = 5.0
CAPTURE_MARGIN_S = 4.0
STAGE_WAIT_S = 10.0
REMOVAL_S = 3.0
FLOOD = 30
FAST_TONE_S = 6
RACERS = 6
# not base64, base64 of bytes that are not UTF-8, no credential, another scheme
GARBAGE_AUTHORIZATIONS = ("Basic !!!not-base64", "Basic //46eA==", "Basic", "Bearer x")
REFUSALS_PER_ADDRESS = 10  # the origin's limit a minute
PROMPT_STOP_S = 8.0
SHOW_NAME = "Morning Show"
PUBLISH = ("ffmpeg", "-v", "error", "-nostdin", "-re", "-i")
TONE_MP3 = ("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=4", "-c:a", "libmp3lame")
TONE_MP3 += ("-f", "mp3")
# ffmpeg's encoder and muxer options, and the Content-Type it announces, per source format
FORMATS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"],
    "ogg-opus": ["-c:a", "libopus", "-b:a", "64k", "-content_type", "audio/ogg", "-f", "ogg"],
    "aac-adts": ["-c:a", "aac", "-b:a", "96k", "-content_type", "audio/aac", "-f", "adts"],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("icecast") / "data")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return speech_and_control(tmp_path_factory.mktemp("voices"), "show", VOICE)


def space_source(server: Server, space_id: str) -> dict[str, Any]:
    """`rostra space source ID`, run as a user would, where the data folder is."""
    env = dict(os.environ)
    env.update(
        {
            "ROSTRA_SERVER": server.url,
            "ROSTRA_ADMIN_TOKEN": ADMIN_TOKEN,
            "ROSTRA_DATA": str(server.data),
        }
    )
    env.pop("ROSTRA_SIGNING_SECRET", None)
    result = subprocess.run(
        [sys.executable, "-m", "rostra", "space", "source", space_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


def source_of(server: Server, space_id: str) -> dict[str, Any]:
    """What `rostra space source` prints, derived here from the data folder's signing secret."""
    password = source_password((server.data / SIGNING_SECRET_FILE).read_text().strip(), space_id)
    url = f"icecast://source:{password}@127.0.0.1:{server.whip_port}/ingest/{space_id}"
    return {"source_url": url, "password": password}


def start_ffmpeg(wav: Path, source_url: str, fmt: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*PUBLISH, str(wav), *FORMATS[fmt], "-ice_name", SHOW_NAME, source_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stage(server: Server, space_id: str) -> list[dict[str, Any]]:
    response = server.api("GET", f"/live/{space_id}/state.json")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["stage"]
    return entries


HEALTH_WAIT_S = 5.0


def assert_origin_stayed_up(server: Server) -> None:
    """The origin neither died nor restarted: the workers' health checks pass (within a few
    seconds on a loaded machine) and the supervisor started it once."""
    deadline = time.monotonic() + HEALTH_WAIT_S
    while (health := httpx.get(server.url + "/healthz", timeout=5)).status_code != 200:
        assert time.monotonic() < deadline, health.text
        time.sleep(0.2)
    started = [line for line in server.log().splitlines() if "process started" in line]
    assert sum('"child": "origin"' in line for line in started) == 1, started


def wait_for_stage(
    server: Server, space_id: str, *, names: list[str], timeout_s: float = STAGE_WAIT_S
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    entries = stage(server, space_id)
    while [e["name"] for e in entries] != names and time.monotonic() < deadline:
        time.sleep(0.2)
        entries = stage(server, space_id)
    return entries


def ingest_url(server: Server, space_id: str) -> str:
    return f"{server.whip_base}/ingest/{space_id}"


def basic(password: str, user: str = "source") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "audio/mpeg"}


@dataclass
class Broadcast:
    """One format's run: its space, the listener capturing the program, ffmpeg publishing."""

    fmt: str
    space: dict[str, Any]
    source: dict[str, Any]
    listener: subprocess.Popen[bytes]
    program: Path
    publisher: subprocess.Popen[bytes] | None = None


def test_ffmpeg_icecast_sources_are_heard_in_the_program_as_one_named_voice(
    server: Server, voices: dict[str, Path], tmp_path: Path
) -> None:
    """MP3, Ogg/Opus and AAC (ADTS) at once, each into a space of its own."""
    sent = padded(voices["voice"], before_s=1.0, after_s=1.5)
    seconds = decode(sent).size / SAMPLE_RATE_HZ + CAPTURE_MARGIN_S
    spaces = {fmt: server.create_space(f"Icecast source, {fmt}") for fmt in FORMATS}
    # the CLI once (it starts a Python each time); the same derivation in-process for the rest
    sources = {fmt: source_of(server, space["id"]) for fmt, space in spaces.items()}
    assert space_source(server, spaces["mp3"]["id"]) == sources["mp3"]
    runs = [
        Broadcast(
            fmt,
            spaces[fmt],
            sources[fmt],
            capture(spaces[fmt]["opus_stream_url"], seconds, tmp_path / f"{fmt}.wav"),
            tmp_path / f"{fmt}.wav",
        )
        for fmt in FORMATS
    ]
    time.sleep(1.0)
    try:
        for run in runs:
            run.publisher = start_ffmpeg(sent, run.source["source_url"], run.fmt)
        for run in runs:
            check_on_stage_alone(server, run)
        for run in runs:
            assert run.publisher is not None
            _, err = run.publisher.communicate(timeout=seconds + 30)
            assert run.publisher.returncode == 0, f"ffmpeg ({run.fmt}): {err.decode()[-1000:]}"
    finally:
        for run in runs:
            if run.publisher is not None:
                run.publisher.kill()
    for run in runs:
        left = wait_for_stage(server, run.space["id"], names=[])
        assert left == [], f"the {run.fmt} source stayed on stage"
        _, err = run.listener.communicate(timeout=seconds + 30)
        assert run.listener.returncode == 0, f"the listener failed: {err.decode()[-1000:]}"
        heard = decode(run.program)
        wanted = speech_correlation(heard, decode(voices["voice"]))
        unsent = speech_correlation(heard, decode(voices["control"]))
        print(f"{run.fmt} source: speech {wanted:.2f}, control {unsent:.2f}")  # noqa: T201
        assert wanted >= MIN_CORRELATION, f"{run.fmt}: correlation {wanted:.2f} in the program"
        assert wanted >= CONTROL_RATIO * unsent, f"{run.fmt}: {wanted:.2f} vs {unsent:.2f}"


def check_on_stage_alone(server: Server, run: Broadcast) -> None:
    """The source is one voice, named after ice-name, and a second source is refused."""
    space_id = run.space["id"]
    on_stage = wait_for_stage(server, space_id, names=[SHOW_NAME])
    assert [(e["name"], e["role"]) for e in on_stage] == [(SHOW_NAME, "speaker")], on_stage
    second = httpx.put(
        ingest_url(server, space_id), headers=basic(run.source["password"]), content=b"x"
    )
    assert second.status_code == 409, second.text
    assert second.json()["type"].endswith("/source-already-live")


def refusals_logged(server: Server, space_id: str) -> int:
    lines = server.log().splitlines()
    return sum(1 for line in lines if "source password refused" in line and space_id in line)


def test_wrong_source_passwords_are_refused_logged_and_a_flood_limited(server: Server) -> None:
    """401 with a Basic challenge, each logged with the space and the client; a flood from one
    address turns to 429 + Retry-After past the limit, with no more log lines, and the right
    password still gets in (only wrong passwords count)."""
    space = server.create_space("Icecast source, wrong password")
    other = server.create_space("Another space")
    url = ingest_url(server, space["id"])
    for password in ("guess", source_of(server, other["id"])["password"]):
        refused = httpx.put(url, headers=basic(password), content=b"x")
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"] == 'Basic realm="Rostra"'
    right = source_of(server, space["id"])["password"]
    wrong_user = httpx.put(url, headers=basic(right, "admin"))
    assert wrong_user.status_code == 401
    for garbage in GARBAGE_AUTHORIZATIONS:
        refused = httpx.put(url, headers={**basic(right), "Authorization": garbage})
        assert refused.status_code == 401, (garbage, refused.text)
    flood = [httpx.put(url, headers=basic("guess"), content=b"x") for _ in range(FLOOD)]
    statuses = [401] * (3 + len(GARBAGE_AUTHORIZATIONS)) + [r.status_code for r in flood]
    assert set(statuses) == {401, 429}, statuses
    assert statuses.count(401) <= 2 * REFUSALS_PER_ADDRESS, statuses
    limited = flood[-1]
    assert limited.status_code == 429
    assert limited.json()["type"].endswith("/rate-limited")
    assert int(limited.headers["retry-after"]) >= 1
    counted = statuses.count(401)
    deadline = time.monotonic() + 5
    while refusals_logged(server, space["id"]) < counted and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    assert refusals_logged(server, space["id"]) == counted
    refusal = next(line for line in server.log().splitlines() if "source password refused" in line)
    assert space["id"] in refusal
    assert "127.0.0.1" in refusal
    # the right password from the flooded address: in (one byte is no audio: 415), not 429
    admitted = httpx.put(url, headers=basic(right), content=b"x")
    assert admitted.status_code == 415, admitted.text


def test_source_on_a_space_not_live_is_refused(server: Server) -> None:
    space = server.create_space("Icecast source, not started", live=False)
    password = source_of(server, space["id"])["password"]
    refused = httpx.put(ingest_url(server, space["id"]), headers=basic(password), content=b"x")
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/space-not-live")


def raw_source(
    server: Server, space_id: str, password: str, head: str, name: str = SHOW_NAME
) -> socket.socket:
    """A source as libshout and butt speak it: a request head, then audio until close."""
    sock = socket.create_connection(("127.0.0.1", server.whip_port), timeout=10)
    auth = base64.b64encode(f"source:{password}".encode()).decode()
    sock.sendall(
        f"{head}\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Type: audio/mpeg\r\nice-name: {name}\r\n\r\n".encode()
    )
    return sock


def test_of_sources_at_the_same_instant_one_goes_on_stage_named_cleanly(server: Server) -> None:
    """Six sources race for one space: exactly one is taken (100 Continue), the others get 409;
    its `ice-name` (a bidi override, 4,000 characters) is cleaned and cut like any name."""
    space = server.create_space("Icecast source, race")
    password = source_of(server, space["id"])["password"]
    head = f"PUT /ingest/{space['id']} HTTP/1.1\r\nExpect: 100-continue"
    name = "Night \u202eShow " + "x" * 4000
    with ThreadPoolExecutor(RACERS) as pool:
        socks = list(
            pool.map(lambda _: raw_source(server, space["id"], password, head, name), range(RACERS))
        )
        answers = list(pool.map(lambda sock: sock.recv(64), socks))
    try:
        statuses = sorted(answer[:12] for answer in answers)
        assert statuses == [b"HTTP/1.1 100"] + [b"HTTP/1.1 409"] * (RACERS - 1), answers
        winner = socks[[a[:12] for a in answers].index(b"HTTP/1.1 100")]
        winner.sendall(subprocess.run([*TONE_MP3, "-"], capture_output=True, check=True).stdout)
        cleaned = ("Night Show " + "x" * 4000)[:MAX_NAME_CHARS]
        on_stage = wait_for_stage(server, space["id"], names=[cleaned])
        assert [e["name"] for e in on_stage] == [cleaned], on_stage
    finally:
        for sock in socks:
            sock.close()


def test_source_sent_to_a_listener_port_is_not_found(server: Server) -> None:
    """Listener workers do not take sources: a legacy `SOURCE` with audio gets a plain 404."""
    port = int(server.url.rsplit(":", 1)[1])
    mp3 = subprocess.run([*TONE_MP3, "-"], capture_output=True, check=True).stdout
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"SOURCE /ingest/abc HTTP/1.0\r\nContent-Type: audio/mpeg\r\n\r\n" + mp3)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
    assert b"application/problem+json" in answer
    assert_origin_stayed_up(server)


def test_legacy_source_goes_on_stage_and_the_host_removes_it(server: Server) -> None:
    """Icecast's legacy `SOURCE` over HTTP/1.0, without `Expect`, waits for `200 OK` before it
    sends audio; removed by the host, its voice leaves and its connection is closed."""
    space = server.create_space("Icecast source, legacy SOURCE")
    password = source_of(server, space["id"])["password"]
    mp3 = subprocess.run([*TONE_MP3, "-"], capture_output=True, check=True).stdout
    sock = raw_source(server, space["id"], password, f"SOURCE /ingest/{space['id']} HTTP/1.0")
    try:
        assert sock.recv(64) == b"HTTP/1.0 200 OK\r\n\r\n"
        sock.sendall(mp3)
        on_stage = wait_for_stage(server, space["id"], names=[SHOW_NAME])
        assert [e["name"] for e in on_stage] == [SHOW_NAME]
        removed = server.api("DELETE", f"/api/v1/spaces/{space['id']}/stage/{on_stage[0]['id']}")
        assert removed.status_code == 204, removed.text
        # at once, not when the source's read timeout would end it
        assert wait_for_stage(server, space["id"], names=[], timeout_s=REMOVAL_S) == []
        sock.settimeout(5)
        answer = b""
        while chunk := sock.recv(4096):  # the final answer, then the origin closes
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_source_that_is_not_audio_leaves_the_stage_and_the_origin_stays_up(
    server: Server,
) -> None:
    space = server.create_space("Icecast source, noise")
    password = source_of(server, space["id"])["password"]
    sock = raw_source(
        server,
        space["id"],
        password,
        f"PUT /ingest/{space['id']} HTTP/1.1\r\nExpect: 100-continue",
    )
    answer = b""
    try:
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue")
        garbage = os.urandom(16 * 1024)
        for _ in range(64):  # 1 MiB at most: the origin must give up long before
            try:
                sock.sendall(garbage)
            except OSError:
                break
        sock.settimeout(5)
        answer = sock.recv(4096)
    except OSError:
        pass
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 415"), answer[:200]
    assert wait_for_stage(server, space["id"], names=[]) == []
    ended = [line for line in server.log().splitlines() if "source ended" in line]
    assert any(space["id"] in line and "not audio" in line for line in ended), ended[-3:]
    cut = json.loads(next(line for line in ended if space["id"] in line))
    print(f"random bytes as audio/mpeg: cut off after {cut['received_bytes']} bytes")  # noqa: T201
    assert_origin_stayed_up(server)


def test_source_sent_faster_than_real_time_is_paced_and_played_whole(server: Server) -> None:
    """ffmpeg without `-re` sends a file as fast as loopback goes: the origin reads it at the
    program's pace (TCP holds the rest), so the voice stays on stage as long as the audio lasts
    and no frame is dropped."""
    space = server.create_space("Icecast source, faster than real time")
    source = source_of(server, space["id"])
    command = ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", f"sine=d={FAST_TONE_S}"]
    command += [*FORMATS["mp3"], "-ice_name", SHOW_NAME, source["source_url"]]
    publisher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for_stage(server, space["id"], names=[SHOW_NAME]) != []
        started = time.monotonic()
        left = wait_for_stage(server, space["id"], names=[], timeout_s=FAST_TONE_S + 5)
        on_stage_s = time.monotonic() - started
        _, err = publisher.communicate(timeout=10)
    finally:
        publisher.kill()
    assert left == []
    assert publisher.returncode == 0, err.decode()[-1000:]
    assert on_stage_s >= FAST_TONE_S - 2, f"on stage {on_stage_s:.1f} s for {FAST_TONE_S} s"
    ended = [line for line in server.log().splitlines() if "source ended" in line]
    line = json.loads(next(line for line in ended if space["id"] in line))
    assert line["reason"] == "end of stream", line
    assert line["dropped_frames"] == 0, line
    assert line["decoded_s"] >= FAST_TONE_S - 0.1, line


def test_request_head_sent_too_slowly_is_closed(server: Server) -> None:
    """Slow headers (a byte at a time, never the end) hold no connection on the origin's port
    past its head timeout."""
    sock = socket.create_connection(("127.0.0.1", server.whip_port), timeout=5)
    sock.settimeout(0.5)
    answer = b""
    started = time.monotonic()
    try:
        for byte in b"PUT /ingest/x HTTP/1.1\r\nHost: 127.0.0.1\r\nice-name: slow":
            if time.monotonic() - started > HEAD_TIMEOUT_S + 5:
                break
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not answer or answer.endswith(b"\r\n\r\n"):
                break
    finally:
        sock.close()
    closed_s = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert closed_s <= HEAD_TIMEOUT_S + 2, f"closed after {closed_s:.1f} s"


def test_server_stops_promptly_while_a_source_is_live(tmp_path: Path) -> None:
    """A source is a request that never ends by itself (here an endless tone): a stop must end
    it, not wait for the HTTP server's graceful timeout (20 s)."""
    running = start_server(tmp_path / "data")
    publisher = None
    try:
        space = running.create_space("Icecast source, stop")
        source = source_of(running, space["id"])
        endless = ["ffmpeg", "-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "sine"]
        endless += [*FORMATS["mp3"], "-ice_name", SHOW_NAME, source["source_url"]]
        publisher = subprocess.Popen(endless, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert [e["name"] for e in wait_for_stage(running, space["id"], names=[SHOW_NAME])] == [
            SHOW_NAME
        ]
        assert publisher.poll() is None, "the source ended before the stop: nothing was tested"
    finally:
        started = time.monotonic()
        stop_server(running)
        stopped_s = time.monotonic() - started
        if publisher is not None:
            publisher.kill()
    print(f"rostra serve stopped in {stopped_s:.1f} s with an Icecast source live")  # noqa: T201
    assert stopped_s < PROMPT_STOP_S, f"the server took {stopped_s:.1f} s to stop"
