"""A returning listener through a real `rostra serve` (two listener workers sharing one SQLite
file that an older version left behind) with proof-of-work on: the ticket given back on leave is
exchanged once for a new ticket of the same listener, with no proof asked, and counted once."""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.e2e.test_pow_join import post_join, slug, solve

# revocations reach the other worker with its batched writes (about 100 ms)
REVOCATION_SYNC_S = 0.5
# state.json is cacheable for a second and the count is cached as long
COUNT_SETTLE_S = 1.5
EXCHANGE_ATTEMPTS = 4


@pytest.fixture(scope="module")
def returning_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("returning-server") / "data"
    data.mkdir(parents=True)
    # the revocations table as it stood before revocations recorded when they were made
    with sqlite3.connect(data / "audience.sqlite3") as db:
        db.execute(
            "CREATE TABLE revoked_tickets (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "listener_id TEXT NOT NULL, until_s REAL NOT NULL)"
        )
    db.close()
    running = start_server(data, extra_env={"ROSTRA_POW": "on"})
    yield running
    stop_server(running)


def listener_of(ticket: str) -> str:
    payload = ticket.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))[:16].hex()


def beat(server: Server, space_id: str, ticket: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/spaces/{space_id}/heartbeat",
        headers={"Authorization": f"Bearer {ticket}"},
        timeout=10,
    )


def admitted_with_proof(server: Server, space_id: str) -> str:
    asked = post_join(server, space_id)
    assert asked.status_code == 401, asked.text
    assert slug(asked) == "challenge-required"
    joined = post_join(server, space_id, {"altcha": solve(asked.json()["challenge"])})
    assert joined.status_code == 201, joined.text
    ticket: str = joined.json()["ticket"]
    return ticket


def state(server: Server, space_id: str) -> dict[str, Any]:
    time.sleep(COUNT_SETTLE_S)
    found: dict[str, Any] = httpx.get(f"{server.url}/live/{space_id}/state.json", timeout=10).json()
    return found


def test_returning_listener_needs_no_proof_keeps_its_id_and_is_counted_once(
    returning_server: Server,
) -> None:
    space_id = returning_server.create_space("Coming back")["id"]
    ticket = admitted_with_proof(returning_server, space_id)
    assert beat(returning_server, space_id, ticket).status_code in (200, 204)
    left = httpx.post(
        f"{returning_server.url}/api/v1/spaces/{space_id}/leave",
        content=f'{{"ticket": "{ticket}"}}',
        headers={"Content-Type": "text/plain;charset=UTF-8"},
        timeout=10,
    )
    assert left.status_code == 204, left.text

    # at once (the same second as the leave), on whichever worker: no challenge, same listener
    returned = post_join(returning_server, space_id, {"ticket": ticket})
    assert returned.status_code == 201, returned.text
    body = returned.json()
    assert set(body) == {"ticket", "expires_at", "heartbeat_interval_s"}
    assert listener_of(body["ticket"]) == listener_of(ticket)
    assert beat(returning_server, space_id, body["ticket"]).status_code in (200, 204)

    for _ in range(EXCHANGE_ATTEMPTS):  # once only, whichever worker takes it
        again = post_join(returning_server, space_id, {"ticket": ticket})
        assert again.status_code == 401, again.text
        assert slug(again) == "ticket-already-returned"
    time.sleep(REVOCATION_SYNC_S)
    for _ in range(EXCHANGE_ATTEMPTS):
        assert beat(returning_server, space_id, ticket).status_code == 403
        assert beat(returning_server, space_id, body["ticket"]).status_code in (200, 204)

    counted = state(returning_server, space_id)
    assert (counted["listeners"], counted["admitted"]) == (1, 1), counted


def test_join_refuses_a_bad_foreign_or_missing_returning_ticket(returning_server: Server) -> None:
    space_id = returning_server.create_space("Bad returns")["id"]
    other_id = returning_server.create_space("Elsewhere")["id"]
    foreign = admitted_with_proof(returning_server, other_id)
    forged = foreign[:-4] + ("AAAA" if not foreign.endswith("AAAA") else "BBBB")

    for token, status, expected in (
        (foreign, 403, "ticket-wrong-space"),
        (forged, 401, "ticket-invalid"),
        ("not a ticket", 401, "ticket-invalid"),
    ):
        refused = post_join(returning_server, space_id, {"ticket": token})
        assert refused.status_code == status, refused.text
        assert slug(refused) == expected
    # no fall back to an ordinary join: a join without the ticket is asked for proof as before
    asked = post_join(returning_server, space_id)
    assert asked.status_code == 401
    assert slug(asked) == "challenge-required"
