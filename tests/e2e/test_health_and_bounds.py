"""/healthz means something (a stalled origin, a live space without segments, a full disk each
answer 503 naming the check), and the listener side is bounded: request headers have a deadline,
each worker carries a capped number of plain players, writes are never cached."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.conftest import start_server, stop_server
from tests.e2e.test_restart import origin_pid, wait_for_segments


def wait_for_status(url: str, status: int, timeout_s: float = 15) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(url, timeout=5)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_healthz_fails_while_the_origin_is_stalled_and_recovers(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        space = server.create_space("Stalled")
        wait_for_segments(f"{server.url}/live/{space['id']}/audio.m3u8", 2)
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "failed": []}
        stalled = origin_pid(server)
        assert stalled is not None
        os.kill(stalled, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 15
            checks: set[str] = set()
            while not {"origin", "segments"} <= checks and time.monotonic() < deadline:
                failing = httpx.get(f"{server.url}/healthz", timeout=5)
                checks = {entry["check"] for entry in failing.json()["failed"]}
            assert failing.status_code == 503, failing.text
            assert {"origin", "segments"} <= checks, failing.text
            state = httpx.get(space["state_url"]).json()
            assert state["health"] == "degraded"
            assert state["status"] == "live"
        finally:
            os.kill(stalled, signal.SIGCONT)
        # a problem clears after 10 s without a new one: the space recovers by itself
        deadline = time.monotonic() + 20
        while httpx.get(space["state_url"]).json()["health"] != "ok":
            assert time.monotonic() < deadline, "the space stayed degraded"
            time.sleep(0.5)
        assert wait_for_status(f"{server.url}/healthz", 200).status_code == 200
    finally:
        stop_server(server)


def test_healthz_names_a_full_disk(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "data", extra_env={"ROSTRA_MIN_FREE_MB": str(1 << 40)}, ready_status=503
    )
    try:
        response = httpx.get(f"{server.url}/healthz")
        assert response.status_code == 503
        # the origin may still be starting: that check may fail too, the disk's always does
        [disk] = [entry for entry in response.json()["failed"] if entry["check"] == "disk"]
        assert "ROSTRA_MIN_FREE_MB" in disk["detail"]
    finally:
        stop_server(server)


def test_listener_side_bounds_slow_headers_players_and_caching(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "data",
        extra_env={
            "ROSTRA_HEADER_TIMEOUT_S": "1",
            "ROSTRA_MAX_STREAM_LISTENERS": "1",
            "ROSTRA_WORKERS": "1",
        },
    )
    port = int(server.url.rsplit(":", 1)[1])
    try:
        space = server.create_space("Bounded")
        silent = socket.create_connection(("127.0.0.1", port))
        trickle = socket.create_connection(("127.0.0.1", port))
        trickle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for sock in (silent, trickle):
            sock.settimeout(5)
            started = time.monotonic()
            answer = sock.recv(200)
            assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer
            assert sock.recv(200) == b"", "the connection stays open"
            assert time.monotonic() - started < 3
            sock.close()

        with httpx.stream("GET", space["stream_url"], timeout=10) as first:
            assert first.status_code == 200
            chunks = first.iter_raw()  # kept: a dropped iterator closes the connection
            assert next(chunks)
            with httpx.stream("GET", space["opus_stream_url"], timeout=10) as second:
                assert second.status_code == 503, "a player past the cap was let in"
                assert second.headers["content-type"] == "application/problem+json"
                assert int(second.headers["retry-after"]) >= 1
            deadline = time.monotonic() + 5  # workers publish their players every second
            while httpx.get(space["state_url"]).json()["stream_listeners"] < 1:
                assert time.monotonic() < deadline, "state.json does not count the player"
                time.sleep(0.3)

        join = httpx.post(f"{server.url}/api/v1/spaces/{space['id']}/join")
        assert join.status_code == 201
        assert join.headers["cache-control"] == "no-store"
        playlist = httpx.get(f"{server.url}/live/{space['id']}/audio.m3u8")
        assert playlist.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=1"
        again = httpx.get(
            f"{server.url}/live/{space['id']}/audio.m3u8",
            headers={"If-None-Match": playlist.headers["etag"]},
        )
        assert again.status_code in (200, 304)
        if again.status_code == 200:  # a new segment came in between: a new tag
            assert again.headers["etag"] != playlist.headers["etag"]
    finally:
        stop_server(server)
