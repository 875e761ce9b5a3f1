"""An outsider against the newest endpoints of a real `rostra serve`: the space's defence, its
incident report, the host link, the join body (ticket, ALTCHA solution, arrival token) and
queue.json. Every bad request gets a precise 4xx problem+json, never a 5xx or a stack trace, and
changes nothing; every credential opens only its own door; a flood of new keys is answered and
leaves the gate serving."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import altcha
import httpx
import pytest

from rostra.stage.tokens import TokenSigner
from tests.conftest import ADMIN_TOKEN, Server, start_server, stop_server

PROXY = "127.0.0.2"  # the trusted edge
MANY = "100000/minute"
ATTACK_ENV = {
    "ROSTRA_WORKERS": "1",
    "ROSTRA_TRUSTED_PROXIES": PROXY,
    # loopback is exempt by default; here it is counted like any client, with room for the probes
    "ROSTRA_LIMITS_EXEMPT": "192.0.2.0/24",
    "ROSTRA_LIMIT_JOIN_IP": MANY,
    "ROSTRA_LIMIT_JOIN_PREFIX": MANY,
    "ROSTRA_LIMIT_JOIN_PREFIX_DEFENDED": MANY,
    "ROSTRA_LIMIT_ADMIN_IP": MANY,
    "ROSTRA_LIMIT_ADMIN_PREFIX": MANY,
    "ROSTRA_LIMIT_WRITE_IP": MANY,
    "ROSTRA_LIMIT_WRITE_PREFIX": MANY,
}
PROBLEM = "application/problem+json"
KIB = 1024
OVER_A_BODY = 17 * KIB  # every JSON body of the API is capped at 16 KiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("attacks") / "data", extra_env=ATTACK_ENV)
    yield running
    stop_server(running)


@dataclass
class Target:
    """A space with its host link, an invite token and a listener ticket."""

    id: str
    host: str
    invite: str
    ticket: str


def target(server: Server, title: str) -> Target:
    space_id = server.create_space(title)["id"]
    link = server.api("POST", f"/api/v1/spaces/{space_id}/host-link")
    invite = server.api("POST", f"/api/v1/spaces/{space_id}/invites", json={})
    joined = httpx.post(f"{server.url}/api/v1/spaces/{space_id}/join", timeout=10)
    assert (link.status_code, invite.status_code, joined.status_code) == (200, 201, 201)
    token = invite.json()["speaker_invite_url"].split("invite=")[1]
    return Target(space_id, link.json()["host_token"], token, joined.json()["ticket"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(
    response: httpx.Response, status: int, slug: str, what: str = "", *, case: str = ""
) -> None:
    assert response.status_code == status, (case, status, slug, response.text)
    assert response.headers["content-type"] == PROBLEM, response.text
    body = response.json()
    assert body["type"].endswith(f"/{slug}"), body
    assert body["status"] == status
    assert what in body["detail"], body["detail"]
    assert "Traceback" not in response.text, case


def raw_request(
    url: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    """A request written by hand: a Content-Length that promises what never comes."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


# (name, body, content type, status, problem slug, a word of the detail)
Case = tuple[str, bytes, str, int, str, str]
JSON = "application/json"


def nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


COMMON_CASES: list[Case] = [
    ("not UTF-8", b'{"\xff": 1}', JSON, 400, "bad-request", "not UTF-8"),
    ("not JSON", b"{pow: on", JSON, 400, "bad-request", "not valid JSON"),
    ("nested 17 deep", nested(17), JSON, 400, "bad-request", "deeper than 16"),
    ("objects 17 deep", b'{"a":' * 17 + b"1" + b"}" * 17, JSON, 400, "bad-request", "deeper"),
    ("number of 33 chars", b'{"x": ' + b"9" * 33 + b"}", JSON, 400, "bad-request", "33 char"),
    ("long fraction", b'{"x": 0.' + b"1" * 40 + b"}", JSON, 400, "bad-request", "characters"),
    ("NaN", b'{"x": NaN}', JSON, 400, "bad-request", "'NaN' is not a JSON number"),
    ("Infinity", b'{"x": Infinity}', JSON, 400, "bad-request", "'Infinity'"),
    ("-Infinity", b'{"x": -Infinity}', JSON, 400, "bad-request", "'-Infinity'"),
    ("an array", b"[]", JSON, 422, "invalid-fields", "must be a JSON object"),
    ("a string", b'"on"', JSON, 422, "invalid-fields", "must be a JSON object"),
    ("null", b"null", JSON, 422, "invalid-fields", "must be a JSON object"),
    ("unknown key", b'{"admin": true}', JSON, 422, "invalid-fields", "Extra inputs"),
    ("huge body", b'{"x": "' + b"a" * OVER_A_BODY + b'"}', JSON, 413, "payload-too-large", ""),
    (
        "form body",
        b"pow=on",
        "application/x-www-form-urlencoded",
        415,
        "unsupported-media-type",
        "",
    ),
    ("text body", b'{"pow": "on"}', "text/plain", 415, "unsupported-media-type", "text/plain"),
]

DEFENSE_CASES: list[Case] = [
    ("pow a number", b'{"pow": 1}', JSON, 422, "invalid-fields", "pow"),
    ("pow upper case", b'{"pow": "ON"}', JSON, 422, "invalid-fields", "pow"),
    ("pow with NUL", b'{"pow": "on\\u0000"}', JSON, 422, "invalid-fields", "pow"),
    ("pow huge", b'{"pow": "' + b"o" * 15_000 + b'"}', JSON, 422, "invalid-fields", "pow"),
    ("rate a string", b'{"admission_rate": "5"}', JSON, 422, "invalid-fields", "valid number"),
    ("rate a bool", b'{"admission_rate": true}', JSON, 422, "invalid-fields", "valid number"),
    ("rate 1e999", b'{"admission_rate": 1e999}', JSON, 422, "invalid-fields", "admission_rate"),
    ("rate zero", b'{"admission_rate": -0}', JSON, 422, "invalid-fields", "greater than 0"),
    ("burst a bool", b'{"admission_burst": true}', JSON, 422, "invalid-fields", "valid integer"),
    ("burst a fraction", b'{"admission_burst": 1.5}', JSON, 422, "invalid-fields", "integer"),
    ("burst a list", b'{"admission_burst": [1]}', JSON, 422, "invalid-fields", "integer"),
    ("burst huge", b'{"admission_burst": 1e30}', JSON, 422, "invalid-fields", "integer"),
]

JOIN_CASES: list[Case] = [
    ("ticket a number", b'{"ticket": 5}', JSON, 422, "invalid-fields", "valid string"),
    ("arrival an object", b'{"arrival": {"a": 1}}', JSON, 422, "invalid-fields", "string"),
    ("altcha a bool", b'{"altcha": true}', JSON, 422, "invalid-fields", "string"),
    ("ticket huge", b'{"ticket": "' + b"x" * 5000 + b'"}', JSON, 422, "invalid-fields", "at most"),
    ("altcha huge", b'{"altcha": "' + b"x" * 5000 + b'"}', JSON, 422, "invalid-fields", "at most"),
    ("arrival huge", b'{"arrival": "' + b"x" * 2000 + b'"}', JSON, 422, "invalid-fields", "most"),
    ("altcha with a control", b'{"altcha": "\\u0001"}', JSON, 422, "invalid-fields", "altcha"),
    ("altcha with bidi", b'{"altcha": "ab\\u202ecd"}', JSON, 422, "invalid-fields", "altcha"),
    ("ticket with NUL", b'{"ticket": "v1.\\u0000"}', JSON, 401, "ticket-invalid", "forged"),
    ("ticket forged", b'{"ticket": "v1.abc.def"}', JSON, 401, "ticket-invalid", "forged"),
    ("arrival with bidi", b'{"arrival": "a1.\\u202e"}', JSON, 401, "arrival-invalid", "not a"),
    ("arrival forged", b'{"arrival": "a1.abc.def"}', JSON, 401, "arrival-invalid", "forged"),
]

HOST_LINK_CASES: list[Case] = [
    ("rotate a word", b'{"rotate": "yes"}', JSON, 422, "invalid-fields", "valid boolean"),
    ("rotate a number", b'{"rotate": 1}', JSON, 422, "invalid-fields", "valid boolean"),
    ("rotate a list", b'{"rotate": [true]}', JSON, 422, "invalid-fields", "boolean"),
]


def defense_of(server: Server, space_id: str) -> dict[str, Any]:
    response = server.api("GET", f"/api/v1/spaces/{space_id}/defense")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def admitted_of(server: Server, space_id: str) -> int:
    """Listeners the gate admitted (the count in state.json)."""
    response = httpx.get(f"{server.url}/live/{space_id}/state.json", timeout=10)
    assert response.status_code == 200, response.text
    return int(response.json()["admitted"])


def assert_admitted(server: Server, space_id: str, expected: int) -> None:
    """state.json is refreshed about once a second: wait for it, a few seconds at most."""
    deadline = time.monotonic() + 5.0
    while (count := admitted_of(server, space_id)) != expected and time.monotonic() < deadline:
        time.sleep(0.3)
    assert count == expected


@pytest.mark.parametrize(
    ("endpoint", "cases"),
    [
        ("defense", COMMON_CASES + DEFENSE_CASES),
        ("join", COMMON_CASES + JOIN_CASES),
        ("host-link", COMMON_CASES + HOST_LINK_CASES),
    ],
)
def test_malformed_body_gets_a_precise_problem_and_changes_nothing(
    server: Server, endpoint: str, cases: list[Case]
) -> None:
    space = target(server, f"Bodies at {endpoint}")
    method = "PUT" if endpoint == "defense" else "POST"
    path = f"/api/v1/spaces/{space.id}/{endpoint}"
    # the host's own link, so a body that slipped through would show on the other endpoints
    headers = bearer(space.host) if endpoint == "defense" else bearer(ADMIN_TOKEN)
    defense_before = defense_of(server, space.id)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for name, body, content_type, status, slug, what in cases:
            response = client.request(
                method, path, content=body, headers={**headers, "Content-Type": content_type}
            )
            assert_problem(response, status, slug, what, case=name)

            def chunks(payload: bytes = body) -> Iterator[bytes]:
                yield from (payload[i : i + 4 * KIB] for i in range(0, len(payload), 4 * KIB))

            # the same body chunked (no Content-Length) gets the same answer
            chunked = client.request(
                method, path, content=chunks(), headers={**headers, "Content-Type": content_type}
            )
            assert "content-length" not in chunked.request.headers
            assert_problem(chunked, status, slug, what, case=name)
        # a promised gigabyte is refused from its Content-Length, before a byte of it is read
        status_code, payload = raw_request(
            server.url,
            method,
            path,
            {**headers, "Content-Type": JSON, "Content-Length": str(10**9)},
        )
        assert status_code == 413, payload
        assert json.loads(payload)["type"].endswith("/payload-too-large")
    # nothing changed: the defence, the host link (no rotation), the listeners admitted
    assert defense_of(server, space.id) == defense_before
    still = httpx.get(f"{server.url}{path.rsplit('/', 1)[0]}/defense", headers=bearer(space.host))
    assert still.status_code == 200, still.text
    assert_admitted(server, space.id, 1)  # the listener of target() alone
    assert "Traceback" not in server.log()


def expired_host_link(server: Server, space_id: str) -> str:
    """A host link of this deployment, signed with its secret, that expired an hour ago."""
    secret = (server.data / "signing_secret").read_text().strip()
    return TokenSigner(secret).host_token(space_id, 0, datetime.now(UTC) - timedelta(hours=1))


# (endpoint, method): what a host of the space may do, and what only the admin may
HOST_DOORS = [("defense", "GET"), ("defense", "PUT"), ("incident", "GET")]
ADMIN_DOORS = [("host-link", "POST")]


@pytest.mark.parametrize(
    ("credential", "host_answer", "admin_answer"),
    [
        ("none", (401, "credential-missing"), (401, "credential-missing")),
        ("basic scheme", (401, "credential-missing"), (401, "credential-missing")),
        ("listener ticket", (401, "credential-invalid"), (401, "credential-invalid")),
        ("invite token", (403, "role-not-allowed"), (401, "credential-invalid")),
        ("other space's host", (403, "credential-wrong-space"), (401, "credential-invalid")),
        ("rotated host link", (403, "host-link-rotated"), (401, "credential-invalid")),
        ("expired host link", (401, "credential-expired"), (401, "credential-invalid")),
        ("other deployment's admin", (401, "credential-invalid"), (401, "credential-invalid")),
        ("20 KB token", (401, "credential-invalid"), (401, "credential-invalid")),
        ("current host link", (200, ""), (401, "credential-invalid")),
    ],
)
def test_each_credential_opens_only_its_own_door(
    server: Server,
    credential: str,
    host_answer: tuple[int, str],
    admin_answer: tuple[int, str],
) -> None:
    space, other = target(server, "Doors"), target(server, "Next door")
    rotated = space.host
    fresh = server.api("POST", f"/api/v1/spaces/{space.id}/host-link", json={"rotate": True})
    assert fresh.status_code == 200, fresh.text
    host = fresh.json()["host_token"]
    tokens = {
        "listener ticket": space.ticket,
        "invite token": space.invite,
        "other space's host": other.host,
        "rotated host link": rotated,
        "expired host link": expired_host_link(server, space.id),
        "other deployment's admin": "another-deployment-admin-token-0123456789",
        "20 KB token": "x" * 20_000,
        "current host link": host,
    }
    headers = {"Authorization": "Basic c291cmNlOnB3"} if credential == "basic scheme" else {}
    if credential in tokens:
        headers = bearer(tokens[credential])
    defense_before = defense_of(server, space.id)
    for (endpoint, method), (status, slug) in [
        *((door, host_answer) for door in HOST_DOORS),
        *((door, admin_answer) for door in ADMIN_DOORS),
    ]:
        body = {"json": {"pow": "on"}} if method == "PUT" else {"json": {"rotate": True}}
        response = httpx.request(
            method,
            f"{server.url}/api/v1/spaces/{space.id}/{endpoint}",
            headers=headers,
            timeout=10,
            **(body if method != "GET" else {}),
        )
        if status == 200:
            assert response.status_code == 200, response.text
        else:
            assert_problem(response, status, slug)
    if host_answer[0] != 200:
        assert defense_of(server, space.id) == defense_before
    # no door rotated the host link: the current one still opens the host's doors
    assert httpx.get(
        f"{server.url}/api/v1/spaces/{space.id}/incident", headers=bearer(host), timeout=10
    ).is_success


def post_join(server: Server, space_id: str, body: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/spaces/{space_id}/join", json=body, timeout=30)


def solve(challenge: dict[str, Any]) -> str:
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed, timeout=30.0)
    assert solution is not None
    return altcha.Payload(parsed, solution).to_base64()


def test_ticket_arrival_token_and_proof_of_space_a_are_refused_at_space_b_and_kept(
    server: Server,
) -> None:
    a, b = target(server, "Space A"), target(server, "Space B")
    # a ticket of A: not a heartbeat, not a returning listener at B
    assert_problem(
        httpx.post(f"{server.url}/api/v1/spaces/{b.id}/heartbeat", headers=bearer(a.ticket)),
        403,
        "ticket-wrong-space",
        b.id,
    )
    assert_problem(post_join(server, b.id, {"ticket": a.ticket}), 403, "ticket-wrong-space", b.id)
    # ... and still A's: the refusal at B spent nothing
    assert httpx.post(f"{server.url}/api/v1/spaces/{a.id}/heartbeat", headers=bearer(a.ticket))
    # an arrival token of A's line is no place in B's
    set_a = {"admission_rate": 0.01, "admission_burst": 1}
    assert server.api("PUT", f"/api/v1/spaces/{a.id}/defense", json=set_a).status_code == 200
    assert post_join(server, a.id).status_code in (201, 503)
    in_line = post_join(server, a.id)
    assert_problem(in_line, 503, "waiting-room")
    arrival = in_line.json()["arrival"]
    assert_problem(post_join(server, b.id, {"arrival": arrival}), 403, "arrival-wrong-space")
    kept = post_join(server, a.id, {"arrival": arrival})
    assert_problem(kept, 503, "waiting-room")
    assert kept.json()["number"] == in_line.json()["number"]
    # a proof of work solved for A fails at B, and counts once at A afterwards
    for space in (a, b):
        assert server.api("PUT", f"/api/v1/spaces/{space.id}/defense", json={"pow": "on"})
    relaxed = {"admission_rate": 1000, "admission_burst": 100}
    assert server.api("PUT", f"/api/v1/spaces/{a.id}/defense", json=relaxed).status_code == 200
    asked = post_join(server, a.id)
    assert_problem(asked, 401, "challenge-required")
    proof = solve(asked.json()["challenge"])
    assert_problem(post_join(server, b.id, {"altcha": proof}), 401, "challenge-failed", a.id)
    assert post_join(server, a.id, {"altcha": proof}).status_code == 201
    assert_problem(post_join(server, a.id, {"altcha": proof}), 401, "challenge-spent")


FLOOD = 150  # new keys of each kind: enough to show the answers, bounded in time


def forged_proof(challenge: dict[str, Any], n: int) -> str:
    """A challenge of this deployment with a signature nobody issued: a new challenge id."""
    forged = dict(challenge)
    forged["signature"] = f"{n:064x}"
    solved = {"challenge": forged, "solution": {"counter": n, "derivedKey": "00" * 32}}
    return base64.b64encode(json.dumps(solved).encode()).decode()


def test_flood_of_new_keys_is_answered_precisely_and_the_gate_keeps_serving(
    server: Server,
) -> None:
    space = target(server, "Flooded")
    admitted_before = 1  # the listener of target()
    join_path = f"/api/v1/spaces/{space.id}/join"
    edge = httpx.HTTPTransport(local_address=PROXY)
    with httpx.Client(base_url=server.url, transport=edge, timeout=10) as via_edge:
        # new client addresses, each its own counter in the per-source limits: admitted
        for n in range(FLOOD):
            client = f"198.51.{n // 250}.{n % 250 + 1}"
            answer = via_edge.post(join_path, headers={"X-Forwarded-For": client})
            assert answer.status_code == 201, answer.text
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(FLOOD):
            # a new arrival token, never signed here: refused with no storage touched
            token = f"a1.{base64.urlsafe_b64encode(n.to_bytes(28, 'big')).decode()}.{n:022d}"
            assert_problem(client.post(join_path, json={"arrival": token}), 401, "arrival-invalid")
            # a well-formed space that does not exist, on the join and on queue.json
            ghost = f"zz{n:010d}"
            assert_problem(client.post(f"/api/v1/spaces/{ghost}/join"), 404, "space-not-found")
            assert_problem(client.get(f"/live/{ghost}/queue.json"), 404, "space-not-found")
        assert_problem(client.get(f"/live/{'x' * 5000}/queue.json"), 404, "space-not-found")
        # new challenge ids (signatures nobody issued) on a space that asks for work
        assert server.api("PUT", f"/api/v1/spaces/{space.id}/defense", json={"pow": "on"})
        challenge = client.post(join_path).json()["challenge"]
        for n in range(FLOOD):
            refused = client.post(join_path, json={"altcha": forged_proof(challenge, n)})
            assert_problem(refused, 401, "challenge-failed")
        # the gate still serves: queue.json, a solved join
        queue = client.get(f"/live/{space.id}/queue.json")
        assert queue.status_code == 200, queue.text
        proof = solve(client.post(join_path).json()["challenge"])
        assert client.post(join_path, json={"altcha": proof}).status_code == 201
    # exactly the admitted joins counted: none of the refused ones
    assert_admitted(server, space.id, admitted_before + FLOOD + 1)
    assert "Traceback" not in server.log()


def test_server_log_holds_no_stack_trace(server: Server) -> None:
    """Kept last: whatever the probes above sent, nothing became an unexpected error."""
    assert "Traceback" not in server.log()
    assert " 500 " not in server.log()
