"""Bodies and fields are bounded before they cost anything: a body is capped before it is read
(413), a JSON body is bounded in depth and number length (400), times are in range and text has
no control characters (422), a bad stored row never takes a listing down, and no header carries
raw text."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Server, start_server, stop_server
from tests.web.test_bad_input import assert_problem

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BIG_BODY_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: each test makes its own spaces."""
    running = start_server(tmp_path_factory.mktemp("bounds") / "data")
    yield running
    stop_server(running)


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
        pending.extend(int(child) for child in children)
    return total


def declared_only(url: str, length: int) -> tuple[bytes, bytes]:
    """A request that declares a huge body and sends none of it: the answer must not wait."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def chunks(total: int) -> Iterator[bytes]:
    """A body sent chunked, with no Content-Length to refuse it by."""
    block = b'{"ticket": "' + b"x" * (CHUNK_BYTES - 12)
    for _ in range(total // CHUNK_BYTES):
        yield block


def test_leave_beacon_is_capped_before_its_body_is_read(server: Server) -> None:
    space = server.create_space("Beacon")
    url = f"{server.url}/api/v1/spaces/{space['id']}/leave"
    before_kib = tree_rss_kib(server.process.pid)
    started = time.monotonic()
    response = httpx.post(url, content=chunks(BIG_BODY_BYTES), timeout=30)
    assert_problem(response, 413, "bytes")
    status_line, body = declared_only(url, BIG_BODY_BYTES)
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert str(BIG_BODY_BYTES).encode() in body
    assert time.monotonic() - started < 20
    grown_kib = tree_rss_kib(server.process.pid) - before_kib
    assert grown_kib < 32 * 1024, f"the server grew {grown_kib} KiB reading a refused body"
    # every JSON body is capped the same way, an optional one even without a Content-Type
    json_type = {**ADMIN, "Content-Type": "application/json"}
    for path, headers in (
        ("/api/v1/spaces", json_type),
        (f"/api/v1/spaces/{space['id']}/invites", json_type),
        (f"/api/v1/spaces/{space['id']}/invites", ADMIN),
    ):
        response = httpx.post(
            server.url + path, content=chunks(4 * CHUNK_BYTES), headers=headers, timeout=30
        )
        assert_problem(response, 413, "bytes")


def test_json_bodies_are_bounded_in_depth_and_number_length(server: Server) -> None:
    space = server.create_space("JSON bounds")
    ticket = httpx.post(f"{server.url}/api/v1/spaces/{space['id']}/join", timeout=10).json()[
        "ticket"
    ]
    bodies = {
        "a 4,301-digit integer": (b'{"title": "x", "live": ' + b"9" * 4301 + b"}", "number"),
        "a 5,000-deep nesting": (b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}", "deeper"),
        "a long float": (b'{"uses": 1.' + b"5" * 400 + b"}", "number"),
        "NaN": (b'{"uses": NaN}', "NaN"),
        "bad UTF-8": (b'{"title": "\xff\xfe"}', "UTF-8"),
    }
    calls = [
        ("/api/v1/spaces", ADMIN),
        (f"/api/v1/spaces/{space['id']}/invites", ADMIN),
        (f"/api/v1/spaces/{space['id']}/reactions", {"Authorization": f"Bearer {ticket}"}),
    ]
    for path, auth in calls:
        for name, (body, word) in bodies.items():
            headers = {**auth, "Content-Type": "application/json"}
            response = httpx.post(server.url + path, content=body, headers=headers, timeout=10)
            assert response.status_code == 400, (path, name, response.text)
            assert_problem(response, 400, word)
    beacon = b'{"ticket": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = httpx.post(
        f"{server.url}/api/v1/spaces/{space['id']}/leave", content=beacon, timeout=10
    )
    assert_problem(response, 400, "deeper")


def test_schedule_out_of_range_is_refused(server: Server) -> None:
    for value, word in (
        ("9999-12-31T23:59:59-12:00", "out of range"),
        ("1999-12-31T23:59:59Z", "out of range"),
        ("2031-01-01T00:00:00-12:00", "out of range"),
        ("2026-12-01T10:00:00", "timezone"),
    ):
        response = server.api("POST", "/api/v1/spaces", json={"title": "T", "scheduled_at": value})
        assert_problem(response, 422, word)
    soon = time.strftime("%Y-%m-%dT%H:%M:%S+02:00", time.gmtime(time.time() + 86_400))
    response = server.api("POST", "/api/v1/spaces", json={"title": "T", "scheduled_at": soon})
    assert response.status_code == 201, response.text
    assert response.json()["scheduled_at"].endswith("Z")
    assert server.api("GET", "/api/v1/spaces").status_code == 200


def test_listing_survives_a_bad_row_and_names_it(server: Server) -> None:
    good = server.create_space("Good", live=False)
    bad = server.create_space("Bad", live=False)
    with sqlite3.connect(server.data / "rostra.sqlite3") as db:  # as an older release stored it
        db.execute(
            "UPDATE spaces SET scheduled_at = ? WHERE id = ?",
            ("9999-12-31T23:59:59-12:00", bad["id"]),
        )
    listed = server.api("GET", "/api/v1/spaces")
    assert listed.status_code == 200, listed.text
    ids = [space["id"] for space in listed.json()["spaces"]]
    assert good["id"] in ids
    assert bad["id"] not in ids
    assert_problem(server.api("GET", f"/api/v1/spaces/{bad['id']}"), 409, bad["id"])
    state = httpx.get(f"{server.url}/live/{bad['id']}/state.json", timeout=10)
    assert_problem(state, 409, "cannot be read")
    assert httpx.get(f"{server.url}/live/{good['id']}/state.json", timeout=10).status_code == 200


def test_control_characters_are_refused_in_every_text_field(server: Server) -> None:
    for title in ("Evening\r\nX-Injected: 1", "nul\x00here", "tab\there", "\u202eevil"):
        response = server.api("POST", "/api/v1/spaces", json={"title": title})
        assert_problem(response, 422, "control characters")
    space = server.create_space("Fields")
    response = server.api(
        "POST", f"/api/v1/spaces/{space['id']}/invites", json={"name": "Ann\nBob"}
    )
    assert_problem(response, 422, "control characters")
    ticket = httpx.post(f"{server.url}/api/v1/spaces/{space['id']}/join", timeout=10).json()[
        "ticket"
    ]
    response = httpx.post(
        f"{server.url}/api/v1/spaces/{space['id']}/reactions",
        json={"emoji": "👏\x00"},
        headers={"Authorization": f"Bearer {ticket}"},
        timeout=10,
    )
    assert_problem(response, 422, "control characters")
    # emoji sequences (joiners, variation selectors, skin tones) are text, not control
    assert server.api("POST", "/api/v1/spaces", json={"title": "Café ❤️‍🔥 👍🏽"}).status_code == 201


def test_stream_name_header_never_carries_raw_text(server: Server) -> None:
    space = server.create_space("Stream name")
    with sqlite3.connect(server.data / "rostra.sqlite3") as db:  # stored before the rule
        db.execute(
            "UPDATE spaces SET title = ? WHERE id = ?",
            ("Caf\u00e9 night\r\nX-Injected: 1\x00 \u2014 " + "long " * 60, space["id"]),
        )
    with httpx.stream("GET", space["stream_url"], timeout=15) as response:
        assert response.status_code == 200
        name = response.headers["icy-name"]
        assert "x-injected" not in response.headers
        assert name.startswith("Cafe night X-Injected: 1 ? long")
        assert name.isascii()
        assert name.isprintable()
        assert len(name) <= 120
        assert next(response.iter_bytes()), "the stream sent no audio"
