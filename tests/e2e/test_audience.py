"""The audience through the real HTTP gate: tickets, heartbeats, the honest count in state.json,
reactions and hands."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server

WINDOW_S = 2.0


@pytest.fixture
def gate_server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(
        tmp_path / "data",
        extra_env={
            "ROSTRA_PRESENCE_WINDOW": str(WINDOW_S),
            "ROSTRA_PRESENCE_SLICES": "4",
            "ROSTRA_TICKET_TTL_S": "3",
        },
    )
    yield running
    stop_server(running)


def state(server: Server, space_id: str) -> dict:  # type: ignore[type-arg]
    time.sleep(1.1)  # state.json is cacheable for 1 s, and the count is cached as long
    return httpx.get(f"{server.url}/live/{space_id}/state.json").json()  # type: ignore[no-any-return]


def join(server: Server, space_id: str) -> str:
    response = httpx.post(f"{server.url}/api/v1/spaces/{space_id}/join")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["heartbeat_interval_s"] > 0
    assert body["expires_at"].endswith("Z")
    return str(body["ticket"])


def beat(server: Server, space_id: str, ticket: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/spaces/{space_id}/heartbeat",
        headers={"Authorization": f"Bearer {ticket}"},
    )


def test_heartbeating_listeners_are_counted_and_drop_out_when_they_stop(
    gate_server: Server,
) -> None:
    space = gate_server.create_space("Count")
    tickets = [join(gate_server, space["id"]) for _ in range(5)]
    silent = join(gate_server, space["id"])
    for ticket in tickets:
        assert beat(gate_server, space["id"], ticket).status_code in (200, 204)
    counted = state(gate_server, space["id"])
    assert counted["listeners"] == 5, counted
    assert counted["admitted"] == 6, counted
    assert counted["peak"] == 5
    assert counted["stale"] is False
    assert 0 < counted["error"] < 0.02
    assert silent
    time.sleep(2 * WINDOW_S)
    dropped = state(gate_server, space["id"])
    assert dropped["listeners"] == 0, dropped
    assert dropped["peak"] == 5


def test_bad_tickets_are_refused_and_never_counted(gate_server: Server) -> None:
    space = gate_server.create_space("Honest")
    other = gate_server.create_space("Other")
    good = join(gate_server, space["id"])
    elsewhere = join(gate_server, other["id"])
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for ticket, status in [
        ("v1.x.y", 401),
        ("junk", 401),
        (tampered, 401),
        (good[:20], 401),
        (elsewhere, 403),
    ]:
        response = beat(gate_server, space["id"], ticket)
        assert response.status_code == status, (ticket, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    replayed = good
    url = f"{gate_server.url}/api/v1/spaces/{space['id']}/heartbeat"
    with httpx.Client() as client:
        for _ in range(1000):  # one ticket replayed (and renewed as it nears its end)
            response = client.post(url, headers={"Authorization": f"Bearer {replayed}"})
            assert response.status_code in (200, 204), response.text
            if response.status_code == 200:
                replayed = response.json()["ticket"]
    assert state(gate_server, space["id"])["listeners"] == 1
    time.sleep(3.2)  # the ticket's life (3 s) is over
    expired = beat(gate_server, space["id"], replayed)
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]


def test_renewed_ticket_keeps_one_listener_one(gate_server: Server) -> None:
    space = gate_server.create_space("Renew")
    ticket = join(gate_server, space["id"])
    renewed = None
    deadline = time.monotonic() + 3
    while renewed is None and time.monotonic() < deadline:
        response = beat(gate_server, space["id"], ticket)
        if response.status_code == 200:
            renewed = response.json()["ticket"]
        time.sleep(0.2)
    assert renewed is not None, "no renewal near expiry"
    assert renewed != ticket
    assert beat(gate_server, space["id"], renewed).status_code in (200, 204)
    assert state(gate_server, space["id"])["listeners"] == 1


def test_leave_takes_the_ticket_in_a_beacon_body(gate_server: Server) -> None:
    space = gate_server.create_space("Leave")
    ticket = join(gate_server, space["id"])
    url = f"{gate_server.url}/api/v1/spaces/{space['id']}/leave"
    assert httpx.post(url, content=f'{{"ticket": "{ticket}"}}').status_code == 204
    assert httpx.post(url, headers={"Authorization": f"Bearer {ticket}"}).status_code == 204
    assert httpx.post(url, content=b"not json").status_code == 400
    assert httpx.post(url).status_code == 401


def test_reactions_and_hands_reach_state_json(gate_server: Server) -> None:
    space = gate_server.create_space("React")
    ticket = join(gate_server, space["id"])
    auth = {"Authorization": f"Bearer {ticket}"}
    base = f"{gate_server.url}/api/v1/spaces/{space['id']}"
    for _ in range(3):
        assert (
            httpx.post(base + "/reactions", json={"emoji": "👏"}, headers=auth).status_code == 204
        )
    assert httpx.post(base + "/reactions", json={"emoji": "💩"}, headers=auth).status_code == 422
    assert httpx.post(base + "/reactions", json={"emoji": "👏"}).status_code == 401
    assert httpx.post(base + "/hand", headers=auth).status_code == 204
    assert httpx.post(base + "/hand", headers=auth).status_code == 204
    assert httpx.delete(base + "/hand", headers=auth).status_code == 204
    assert httpx.post(base + "/hand", headers=auth).status_code == 204
    # one keep-alive connection, as a browser has: its requests reach one listener worker, which
    # limits reactions per ticket (docs/audience.md says what N workers allow at most)
    with httpx.Client() as client:
        limited = [
            client.post(base + "/reactions", json={"emoji": "🔥"}, headers=auth).status_code
            for _ in range(12)  # past the 10 per 10 s that one worker allows a ticket
        ]
    assert 429 in limited
    shown = state(gate_server, space["id"])
    assert shown["reactions"]["👏"] == 3
    assert shown["hands"] == 1


def test_only_open_spaces_admit(gate_server: Server) -> None:
    space = gate_server.create_space("Closed")
    assert gate_server.api("POST", f"/api/v1/spaces/{space['id']}/end").status_code == 200
    time.sleep(1.1)
    assert httpx.post(f"{gate_server.url}/api/v1/spaces/{space['id']}/join").status_code == 409
    assert httpx.post(f"{gate_server.url}/api/v1/spaces/nosuchspace1/join").status_code == 404
    assert httpx.post(f"{gate_server.url}/api/v1/spaces/..%2f/join").status_code == 404


def test_host_sees_the_hand_queue_in_order(gate_server: Server) -> None:
    space = gate_server.create_space("Hands")
    base = f"{gate_server.url}/api/v1/spaces/{space['id']}"
    tickets = [join(gate_server, space["id"]) for _ in range(3)]
    for ticket in tickets:
        assert (
            httpx.post(base + "/hand", headers={"Authorization": f"Bearer {ticket}"}).status_code
            == 204
        )
    host_token = space["host_url"].split("token=")[1]
    queue = httpx.get(base + "/hands", headers={"Authorization": f"Bearer {host_token}"})
    assert queue.status_code == 200, queue.text
    hands = queue.json()["hands"]
    assert len(hands) == 3
    assert [h["raised_at"] for h in hands] == sorted(h["raised_at"] for h in hands)
    listener = httpx.get(base + "/hands", headers={"Authorization": f"Bearer {tickets[0]}"})
    assert listener.status_code == 401


def test_metrics_report_gate_traffic_and_the_count(gate_server: Server) -> None:
    space = gate_server.create_space("Metrics")
    ticket = join(gate_server, space["id"])
    assert beat(gate_server, space["id"], ticket).status_code in (200, 204)
    assert beat(gate_server, space["id"], "junk").status_code == 401
    state(gate_server, space["id"])
    # any worker answers for all: each publishes its own every second
    wanted = (
        'rostra_gate_requests_total{kind="heartbeats"} 1.0',
        f'rostra_listeners{{space="{space["id"]}"}} 1.0',
    )
    deadline = time.monotonic() + 5
    metrics = gate_server.api("GET", "/metrics").text
    while not all(line in metrics for line in wanted) and time.monotonic() < deadline:
        time.sleep(0.3)
        metrics = gate_server.api("GET", "/metrics").text
    assert 'rostra_gate_requests_total{kind="joins"} 1.0' in metrics
    assert 'rostra_gate_requests_total{kind="heartbeats"} 1.0' in metrics
    assert 'rostra_gate_rejections_total{reason="ticket-invalid"} 1.0' in metrics
    assert f'rostra_listeners{{space="{space["id"]}"}} 1.0' in metrics
    assert "rostra_presence_store_latency_seconds" in metrics
