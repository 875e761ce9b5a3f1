"""A ticket given back on leave works nowhere again, and an ended space takes no listener calls:
through the gate on every revocation log (SQLite shared by workers, real Redis), and end to end."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rostra.audience.gate import STATUS_CACHE_S, Gate
from rostra.audience.presence import PresenceService
from rostra.audience.tickets import TicketSigner
from rostra.clock import ManualClock
from rostra.errors import (
    SpaceEnded,
    TicketAlreadyReturned,
    TicketExpired,
    TicketInvalid,
    TicketRevoked,
    TicketWrongSpace,
)
from rostra.store.challenge_spent import SpentSolutions
from rostra.store.challenge_sqlite import SqliteSpentSolutions
from rostra.store.presence import SlidingWindow
from rostra.store.presence_memory import MemoryPresenceStore
from rostra.store.reactions import MemoryReactionStore
from rostra.store.revocations import (
    MemoryRevocationLog,
    Revocation,
    RevocationList,
    RevocationLog,
)
from rostra.store.revocations_sqlite import SqliteRevocationLog
from tests.conftest import Server

SPACE = "abcdefgh1234"
REVOCATION_SYNC_S = 0.5
TTL_S = 3600


class Statuses:
    def __init__(self) -> None:
        self.status = "live"

    def get_status(self, space_id: str) -> str | None:
        return self.status if space_id == SPACE else None

    def set_status(self, space_id: str, status: str) -> None:
        raise AssertionError("the gate never writes a status")


def worker(
    log: RevocationLog,
    clock: ManualClock,
    statuses: Statuses,
    returned: SpentSolutions | None = None,
) -> Gate:
    """One gate worker; workers share the signing secret, the statuses, the revocation log and
    the spent store."""
    return Gate(
        tickets=TicketSigner("s" * 40),
        presence=PresenceService(MemoryPresenceStore(SlidingWindow(window_s=30, slices=6)), clock),
        reactions=MemoryReactionStore(),
        statuses=statuses,
        clock=clock,
        ticket_ttl_s=TTL_S,
        heartbeat_interval_s=20,
        reactions_per_10s=3,
        revocations=RevocationList(log),
        returned=returned,
    )


@dataclass
class SharedStores:
    """Factories of a worker's revocation log and spent store, all on one shared backend."""

    log: Callable[[], RevocationLog]
    spent: Callable[[], SpentSolutions]


@pytest.fixture(params=["sqlite", "redis"])
def shared_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedStores]:
    """Each worker opens its own connections to the one shared store (SQLite file, real Redis)."""
    opened: list[RevocationLog | SpentSolutions] = []

    def opening(make: Callable[[], Any]) -> Callable[[], Any]:
        def factory() -> Any:
            opened.append(make())
            return opened[-1]

        return factory

    if request.param == "sqlite":
        database = tmp_path / "audience.sqlite3"
        yield SharedStores(
            opening(lambda: SqliteRevocationLog(database)),
            opening(lambda: SqliteSpentSolutions(database)),
        )
    else:
        from rostra.store.challenge_redis import RedisSpentSolutions
        from rostra.store.revocations_redis import RedisRevocationLog
        from tests.redis_server import running_redis

        with running_redis(tmp_path / "redis") as redis_server:
            yield SharedStores(
                opening(lambda: RedisRevocationLog(redis_server.url)),
                opening(lambda: RedisSpentSolutions(redis_server.url)),
            )
    for store in opened:
        store.close()


@pytest.fixture
def shared_log(shared_stores: SharedStores) -> Callable[[], RevocationLog]:
    """A factory of revocation logs on one shared store, as each worker opens its own."""
    return shared_stores.log


def test_left_ticket_is_refused_by_every_worker_even_renewed_before(
    shared_log: Callable[[], RevocationLog],
) -> None:
    clock = ManualClock()
    statuses = Statuses()
    here, there = worker(shared_log(), clock, statuses), worker(shared_log(), clock, statuses)
    admitted = here.join(SPACE).issued
    # near the end of its life a heartbeat renews it: the listener now holds two tickets
    clock.advance(TTL_S * 0.8)
    renewed = there.heartbeat(admitted.token, SPACE)
    assert renewed is not None
    stranger = here.join(SPACE).issued.token

    here.leave(admitted.token, SPACE)
    here.leave(admitted.token, SPACE)  # a beacon sent twice is no error
    with pytest.raises(TicketRevoked, match="join again"):
        here.heartbeat(renewed.token, SPACE)
    there.heartbeat(renewed.token, SPACE)  # not synced yet: about 100 ms in a server
    there.flush()
    for call in (there.heartbeat, there.raise_hand, here.raise_hand):
        with pytest.raises(TicketRevoked):
            call(renewed.token, SPACE)
    with pytest.raises(TicketRevoked):
        there.react(admitted.token, SPACE, "👏")
    assert here.heartbeat(stranger, SPACE) is None  # another listener is untouched
    assert there.heartbeat(stranger, SPACE) is None

    # a worker started later reads what is still revoked
    late = worker(shared_log(), clock, statuses)
    late.flush()
    with pytest.raises(TicketRevoked):
        late.heartbeat(renewed.token, SPACE)
    assert there.revocations.is_revoked(renewed.ticket.listener_id, clock.now().timestamp())


def test_ticket_issued_after_the_leave_for_the_same_listener_stays_valid(
    shared_log: Callable[[], RevocationLog],
) -> None:
    clock = ManualClock()
    statuses = Statuses()
    here, there = worker(shared_log(), clock, statuses), worker(shared_log(), clock, statuses)
    admitted = here.join(SPACE).issued
    listener = admitted.ticket.listener_id
    clock.advance(0.4)
    here.leave(admitted.token, SPACE)
    clock.advance(0.3)  # still the same second as the leave: a later second is what tells apart
    same_second = here.tickets.issue(
        SPACE, now_s=clock.now().timestamp(), ttl_s=TTL_S, listener_id=listener
    )
    clock.advance(1.0)
    later = here.tickets.issue(
        SPACE, now_s=clock.now().timestamp(), ttl_s=TTL_S, listener_id=listener
    )
    there.flush()
    late = worker(shared_log(), clock, statuses)
    late.flush()
    for gate in (here, there, late):
        assert gate.heartbeat(later.token, SPACE) is None
        for refused in (admitted, same_second):
            with pytest.raises(TicketRevoked):
                gate.heartbeat(refused.token, SPACE)


def test_returning_listener_exchanges_the_given_back_ticket_once_for_the_same_listener(
    shared_stores: SharedStores,
) -> None:
    clock = ManualClock()
    statuses = Statuses()
    here, there = (
        worker(shared_stores.log(), clock, statuses, shared_stores.spent()) for _ in range(2)
    )
    admitted = here.join(SPACE).issued
    clock.advance(TTL_S * 0.8)
    renewed = here.heartbeat(admitted.token, SPACE)
    assert renewed is not None
    here.leave(renewed.token, SPACE)  # the page's beacon as it reloads

    # the reloaded page joins with the ticket it gave back, on another worker, in the same second
    returned = there.rejoin(renewed.token, SPACE)
    assert returned.issued.ticket.listener_id == admitted.ticket.listener_id
    assert returned.issued.ticket.issued_at_s > clock.now().timestamp()
    assert there.counters["joins"] == 0  # not admitted twice: no new listener
    there.flush()
    here.flush()
    for gate in (here, there):
        assert gate.heartbeat(returned.issued.token, SPACE) is None
        for given_back in (admitted, renewed):
            with pytest.raises(TicketRevoked):
                gate.heartbeat(given_back.token, SPACE)
    # each ticket is exchanged once, on any worker
    for gate in (here, there):
        with pytest.raises(TicketAlreadyReturned, match="join again"):
            gate.rejoin(renewed.token, SPACE)
    # a second beacon of the old ticket does not revoke the returning one
    clock.advance(5)
    here.leave(renewed.token, SPACE)
    here.flush()
    there.flush()
    assert there.heartbeat(returned.issued.token, SPACE) is None

    # it counts once: the returning listener heartbeated, the admissions did not grow
    # (each worker here keeps its presence in memory: the returning one is `there`'s)
    here.presence.flush()
    there.presence.flush()
    assert here.presence.snapshot(SPACE).admitted == 1
    counted = there.presence.snapshot(SPACE)
    assert (counted.admitted, counted.listeners) == (0, 1)

    # a returning ticket may itself be given back and exchanged again, in the same second
    here.leave(returned.issued.token, SPACE)
    again = here.rejoin(returned.issued.token, SPACE)
    assert again.issued.ticket.listener_id == admitted.ticket.listener_id
    here.flush()
    with pytest.raises(TicketRevoked):
        here.heartbeat(returned.issued.token, SPACE)
    assert here.heartbeat(again.issued.token, SPACE) is None


def test_rejoin_refuses_a_bad_ticket_before_any_storage() -> None:
    class Untouchable:
        def spend(self, key: str, expires_at_s: float, now_s: float) -> bool:
            raise AssertionError("a bad ticket must not reach the spent store")

        def close(self) -> None:
            return None

    clock = ManualClock()
    gate = worker(MemoryRevocationLog(), clock, Statuses(), Untouchable())
    issued = gate.tickets.issue(SPACE, now_s=clock.now().timestamp(), ttl_s=10)
    foreign = gate.tickets.issue("otherspace12", now_s=clock.now().timestamp(), ttl_s=10)
    with pytest.raises(TicketInvalid):
        gate.rejoin(issued.token[:-2] + "AA", SPACE)
    with pytest.raises(TicketWrongSpace):
        gate.rejoin(foreign.token, SPACE)
    clock.advance(11)
    with pytest.raises(TicketExpired):
        gate.rejoin(issued.token, SPACE)


def test_revocations_of_an_older_database_revoke_every_ticket_of_their_listener(
    tmp_path: Path,
) -> None:
    database = tmp_path / "audience.sqlite3"
    with sqlite3.connect(database) as db:  # the table as it stood before `revoked_at_s`
        db.execute(
            "CREATE TABLE revoked_tickets (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "listener_id TEXT NOT NULL, until_s REAL NOT NULL)"
        )
        db.execute("INSERT INTO revoked_tickets (listener_id, until_s) VALUES ('a', 100.0)")
    db.close()
    log = SqliteRevocationLog(database)
    log.revoke(Revocation("b", until_s=100.0, revoked_at_s=10.0), now_s=5.0)
    revocations = RevocationList(log)
    revocations.sync(now_s=5.0)
    assert revocations.is_revoked("a", now_s=5.0, issued_at_s=50.0)
    assert revocations.is_revoked("b", now_s=5.0, issued_at_s=10.0)
    assert not revocations.is_revoked("b", now_s=5.0, issued_at_s=11.0)
    log.close()


def test_revocations_are_bounded_and_forgotten_when_every_ticket_expired(tmp_path: Path) -> None:
    log = SqliteRevocationLog(tmp_path / "audience.sqlite3", max_entries=50)
    revocations = RevocationList(log, max_entries=50)
    for index in range(200):
        revocations.revoke(Revocation(f"{index:032x}", until_s=1_000.0 + index), now_s=0.0)
    assert len(revocations) == 50
    assert revocations.is_revoked(f"{199:032x}", now_s=0.0)
    assert not revocations.is_revoked(f"{0:032x}", now_s=0.0)  # the soonest to expire went first
    assert not revocations.is_revoked(f"{199:032x}", now_s=1_199.0)  # its tickets have expired
    fresh, _ = log.read_since("", now_s=0.0)
    assert len(fresh) == 50
    revocations.revoke(Revocation("f" * 32, until_s=5_000.0), now_s=2_000.0)
    fresh, _ = log.read_since("", now_s=2_000.0)
    assert [r.listener_id for r in fresh] == ["f" * 32]  # expired rows were deleted
    assert len(revocations) == 1
    log.close()


def test_ended_space_refuses_heartbeat_reaction_and_hand_with_409() -> None:
    clock = ManualClock()
    statuses = Statuses()
    gate = worker(MemoryRevocationLog(), clock, statuses)
    token = gate.join(SPACE).issued.token
    statuses.status = "ended"
    clock.advance(1.5)  # the status cache holds a second
    for call in (gate.heartbeat, gate.raise_hand, gate.lower_hand):
        with pytest.raises(SpaceEnded):
            call(token, SPACE)
    with pytest.raises(SpaceEnded):
        gate.react(token, SPACE, "👏")
    gate.leave(token, SPACE)  # leaving an ended space is still fine


def _post(server: Server, path: str, token: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{server.url}{path}", headers=headers, timeout=10, **kwargs)


def test_server_revokes_on_leave_and_refuses_calls_to_an_ended_space(server: Server) -> None:
    space = server.create_space("Revocation")
    base = f"/api/v1/spaces/{space['id']}"
    joined = httpx.post(f"{server.url}{base}/join", timeout=10)
    assert joined.status_code == 201, joined.text
    ticket = joined.json()["ticket"]
    assert _post(server, f"{base}/heartbeat", ticket).status_code in (200, 204)
    # the page's beacon: the ticket in a text/plain JSON body
    left = httpx.post(
        f"{server.url}{base}/leave",
        content=f'{{"ticket": "{ticket}"}}',
        headers={"Content-Type": "text/plain;charset=UTF-8"},
        timeout=10,
    )
    assert left.status_code == 204, left.text
    time.sleep(REVOCATION_SYNC_S)  # other workers read revocations with their batched writes
    for path, body in (("heartbeat", None), ("reactions", {"emoji": "👏"}), ("hand", None)):
        response = _post(server, f"{base}/{path}", ticket, json=body)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["type"].endswith("/ticket-revoked"), response.text
    assert _post(server, f"{base}/leave", ticket).status_code == 204

    ticket = httpx.post(f"{server.url}{base}/join", timeout=10).json()["ticket"]
    assert server.api("POST", f"{base}/end").status_code == 200
    time.sleep(STATUS_CACHE_S + 0.2)  # each worker reads a space's status once a second
    for path, body in (("heartbeat", None), ("reactions", {"emoji": "👏"}), ("hand", None)):
        response = _post(server, f"{base}/{path}", ticket, json=body)
        assert response.status_code == 409, (path, response.text)
        assert response.json()["type"].endswith("/space-ended"), response.text
