"""Per-source limits on a real `rostra serve` and on `rostra gate` workers sharing Redis: past the
per-address or per-prefix limit a write answers 429 with Retry-After; X-Forwarded-For selects the
client only when it comes from a trusted proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.e2e.test_gate_scale_out import start_gate, stop
from tests.redis_server import RedisServer

PROXY = "127.0.0.2"  # the trusted edge; the test's other requests come from 127.0.0.1
LIMITS_ENV = {
    # loopback is exempt by default; here only a documentation range is
    "ROSTRA_LIMITS_EXEMPT": "192.0.2.0/24",
    "ROSTRA_TRUSTED_PROXIES": PROXY,
    "ROSTRA_LIMIT_JOIN_IP": "3/minute",
    "ROSTRA_LIMIT_JOIN_PREFIX": "8/minute",
    "ROSTRA_LIMIT_JOIN_PREFIX_DEFENDED": "2/minute",
    # embedded limits are per worker process: one worker, so the counts here are exact
    "ROSTRA_WORKERS": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("limits") / "data", extra_env=LIMITS_ENV)
    yield running
    stop_server(running)


def join(
    url: str, space_id: str, *, forwarded_for: str | None = None, via_proxy: bool = False
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    transport = httpx.HTTPTransport(local_address=PROXY if via_proxy else "127.0.0.1")
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.post(f"{url}/api/v1/spaces/{space_id}/join", headers=headers)


def assert_rate_limited(response: httpx.Response, what: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/rate-limited")
    assert what in body["detail"], body["detail"]


def test_spoofed_forwarded_for_from_an_untrusted_peer_does_not_escape_the_address_limit(
    server: Server,
) -> None:
    space = server.create_space("Per-address limit")
    answers = [join(server.url, space["id"], forwarded_for=f"203.0.113.{n}") for n in range(1, 5)]
    assert [a.status_code for a in answers[:3]] == [201, 201, 201]
    assert_rate_limited(answers[3], "address 127.0.0.1")
    # reads are never limited
    assert httpx.get(f"{server.url}/live/{space['id']}/state.json").status_code == 200


def test_trusted_proxy_selects_the_client_and_the_prefix_limit_spans_its_24(
    server: Server,
) -> None:
    space = server.create_space("Per-prefix limit")

    def via_edge(client: str) -> httpx.Response:
        return join(server.url, space["id"], forwarded_for=client, via_proxy=True)

    assert [via_edge("10.1.2.1").status_code for _ in range(3)] == [201, 201, 201]
    assert_rate_limited(via_edge("10.1.2.1"), "address 10.1.2.1")
    # another client behind the same edge is counted apart: the edge's address is not the key
    assert via_edge("10.1.3.1").status_code == 201
    # five more addresses of 10.1.2.0/24 fill its prefix limit (8 a minute); the next is refused
    assert [via_edge(f"10.1.2.{n}").status_code for n in range(2, 7)] == [201] * 5
    assert_rate_limited(via_edge("10.1.2.7"), "prefix 10.1.2.0/24")


def test_prefix_limit_on_joins_tightens_while_proof_of_work_is_on(server: Server) -> None:
    space = server.create_space("Defended")
    defended = server.api("PUT", f"/api/v1/spaces/{space['id']}/defense", json={"pow": "on"})
    assert defended.status_code == 200, defended.text
    time.sleep(1.5)  # the gate caches a space's defence about a second
    first = [
        join(server.url, space["id"], forwarded_for=f"10.7.7.{n}", via_proxy=True) for n in (1, 2)
    ]
    assert [a.status_code for a in first] == [401, 401]  # asked for a proof-of-work
    assert_rate_limited(
        join(server.url, space["id"], forwarded_for="10.7.7.3", via_proxy=True),
        "prefix 10.7.7.0/24",
    )


def test_gate_workers_share_the_limits_through_redis(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"ROSTRA_REDIS": redis_server.url, **LIMITS_ENV}
    origin = start_server(tmp_path / "data", extra_env=env)
    gates = []
    try:
        space = origin.create_space("Limits across gates")
        for key, value in LIMITS_ENV.items():
            monkeypatch.setenv(key, value)
        secret = (origin.data / "signing_secret").read_text().strip()
        gates = [start_gate(redis_server.url, secret) for _ in range(2)]
        statuses = [
            httpx.post(f"{gates[n % 2][0]}/api/v1/spaces/{space['id']}/join").status_code
            for n in range(3)
        ]
        assert statuses == [201, 201, 201]
        for url, _ in gates:
            assert_rate_limited(
                httpx.post(f"{url}/api/v1/spaces/{space['id']}/join"), "address 127.0.0.1"
            )
        # the gates' incident log is in Redis too: the server's report reads it
        deadline = time.monotonic() + 15  # each worker flushes once a second
        while True:
            report = origin.api("GET", f"/api/v1/spaces/{space['id']}/incident").json()
            joins = report["by_endpoint"].get("join", {})
            if sum(joins.values()) >= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert joins == {"admitted": 3, "rate-limited": 2}
        assert report["top_prefixes"] == [{"prefix": "127.0.0.0/24", "rejected": 2, "share": 1.0}]
    finally:
        for _, process in gates:
            stop(process)
        stop_server(origin)
