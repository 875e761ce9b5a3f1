"""Admission: the token bucket and the FIFO line of a space, on every store (memory, SQLite,
real Redis), the signed arrival token that keeps a place, and a number admitting once."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from rostra.audience.admission import ARRIVAL_TTL_S, AdmissionControl, ArrivalSigner
from rostra.audience.defense import DefenseService, PowMode, SpaceDefense
from rostra.audience.tickets import TicketSigner
from rostra.clock import ManualClock
from rostra.errors import (
    ArrivalExpired,
    ArrivalInvalid,
    ArrivalSpent,
    ArrivalWrongSpace,
    WaitingRoom,
)
from rostra.store.admission_bucket import AdmissionStore, MemoryAdmissionStore, QueueVerdict
from rostra.store.admission_defense import DefenseOverrides, DefenseStore, MemoryDefenseStore
from rostra.store.admission_redis import RedisAdmissionStore, RedisDefenseStore
from rostra.store.admission_sqlite import SqliteAdmissionStore, SqliteDefenseStore
from tests.conftest import StoreBackend
from tests.redis_server import RedisServer

SECRET = "s" * 43
SPACE = "abcdefghijkl"
T0 = 1_800_000_000.0
RATE = 2.0
BURST = 2

Opener = Callable[[], AdmissionStore]


@pytest.fixture
def open_store(store_backend: StoreBackend) -> Opener:
    """Opens a handle on one shared backend: each call is another worker's view of it."""
    memory = MemoryAdmissionStore()

    def opener() -> AdmissionStore:
        return store_backend.open(lambda: memory, SqliteAdmissionStore, RedisAdmissionStore)

    return opener


def _join(store: AdmissionStore, number: int | None, now_s: float) -> QueueVerdict:
    return store.join(SPACE, number, now_s=now_s, rate=RATE, burst=BURST, spent_ttl_s=ARRIVAL_TTL_S)


def test_burst_admitted_at_once_then_later_arrivals_queue_in_order(open_store: Opener) -> None:
    store = open_store()
    verdicts = [_join(store, None, T0) for _ in range(6)]
    assert [v.is_admitted for v in verdicts] == [True, True, False, False, False, False]
    waiting = verdicts[2:]
    assert [v.number for v in waiting] == [3, 4, 5, 6]
    assert [v.position for v in waiting] == [1, 2, 3, 4]
    # number n is reached after (n - watermark) / rate seconds
    assert [v.retry_after_s for v in waiting] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    snapshot = store.snapshot(SPACE, now_s=T0, rate=RATE, burst=BURST)
    assert (snapshot.arrivals, snapshot.watermark, snapshot.waiting) == (6, 2, 4)


def test_line_is_served_in_arrival_order_at_the_rate(open_store: Opener) -> None:
    store = open_store()
    for _ in range(6):
        _join(store, None, T0)
    # half a second on: the line reached number 3, not 4
    assert not _join(store, 4, T0 + 0.5).is_admitted
    assert _join(store, 3, T0 + 0.5).is_admitted
    # a newcomer while people wait goes to the back, even with a token in the bucket
    late = _join(store, None, T0 + 1.0)
    assert not late.is_admitted
    assert (late.number, late.position) == (7, 3)
    assert _join(store, 4, T0 + 1.0).is_admitted
    snapshot = store.snapshot(SPACE, now_s=T0 + 1.0, rate=RATE, burst=BURST)
    assert (snapshot.arrivals, snapshot.watermark, snapshot.waiting) == (7, 4, 3)


def test_a_number_admits_once(open_store: Opener) -> None:
    store = open_store()
    for _ in range(3):
        _join(store, None, T0)
    assert _join(store, 3, T0 + 0.5).is_admitted
    again = _join(store, 3, T0 + 5.0)
    assert again.is_spent
    assert not again.is_admitted


def test_workers_on_one_store_share_one_bucket(open_store: Opener) -> None:
    first, second = open_store(), open_store()
    assert _join(first, None, T0).is_admitted
    assert _join(second, None, T0).is_admitted
    queued = _join(first, None, T0)
    assert (queued.is_admitted, queued.number) == (False, 3)
    assert _join(second, None, T0).number == 4


def test_admissions_never_outrun_the_bucket_and_every_waiter_gets_in(open_store: Opener) -> None:
    """40 listeners arrive within a second and retry as the page does (Retry-After x U(1, 1.5));
    in every window admissions stay within burst + rate x window, and all get in."""
    store = open_store()
    rng = random.Random(7)
    retries: list[tuple[float, int | None]] = sorted(
        (T0 + rng.uniform(0.0, 1.0), None) for _ in range(40)
    )
    admitted_at: list[float] = []
    admitted_numbers: list[int] = []
    while retries:
        now_s, number = retries.pop(0)
        verdict = _join(store, number, now_s)
        if verdict.is_admitted:
            admitted_at.append(now_s)
            admitted_numbers.append(verdict.number)
        else:
            again = now_s + max(1.0, verdict.retry_after_s) * rng.uniform(1.0, 1.5)
            retries.append((again, verdict.number))
            retries.sort(key=lambda retry: retry[0])
        assert now_s < T0 + 120, "the line stopped moving"
    assert len(admitted_at) == 40
    assert len(set(admitted_numbers)) == 40
    for i, start in enumerate(admitted_at):
        for window_s in (1.0, 3.0, 10.0):
            inside = sum(1 for at in admitted_at[i:] if at < start + window_s)
            assert inside <= BURST + RATE * window_s


def _control(store: AdmissionStore, clock: ManualClock) -> AdmissionControl:
    return AdmissionControl(store, ArrivalSigner(SECRET), clock)


DEFENSE = SpaceDefense(PowMode.OFF, RATE, BURST)


def _waiting_room(control: AdmissionControl, token: str | None = None) -> WaitingRoom:
    arrival = control.verify_arrival(token, SPACE) if token is not None else None
    with pytest.raises(WaitingRoom) as caught:
        control.admit(SPACE, DEFENSE, arrival)
    return caught.value


def test_arrival_token_keeps_the_place_and_admits_once() -> None:
    clock = ManualClock()
    control = _control(MemoryAdmissionStore(), clock)
    control.admit(SPACE, DEFENSE, None)
    control.admit(SPACE, DEFENSE, None)
    third = _waiting_room(control)
    fourth = _waiting_room(control)
    assert (third.position, fourth.position) == (1, 2)
    assert third.extra["arrival"] == third.arrival
    assert third.extra["retry_after_s"] == pytest.approx(0.5)
    clock.advance(0.5)
    # the fourth retries first: still in line, same number, a renewed token
    renewed = _waiting_room(control, fourth.arrival)
    assert (renewed.number, renewed.position) == (fourth.number, 1)
    assert control.verify_arrival(renewed.arrival, SPACE).number == fourth.number
    control.admit(SPACE, DEFENSE, control.verify_arrival(third.arrival, SPACE))
    with pytest.raises(ArrivalSpent):
        control.admit(SPACE, DEFENSE, control.verify_arrival(third.arrival, SPACE))


def test_forged_expired_or_foreign_arrival_tokens_are_refused() -> None:
    clock = ManualClock()
    control = _control(MemoryAdmissionStore(), clock)
    for _ in range(BURST):
        control.admit(SPACE, DEFENSE, None)
    token = _waiting_room(control).arrival
    payload, _, tag = token.rpartition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + tag
    other_key = ArrivalSigner("t" * 43).issue(SPACE, 1, now_s=clock.now().timestamp(), ttl_s=60)
    ticket = TicketSigner(SECRET).issue(SPACE, now_s=clock.now().timestamp(), ttl_s=60).token
    for forged in (flipped, other_key, ticket, "", "a1." + "x" * 5000):
        with pytest.raises(ArrivalInvalid):
            control.verify_arrival(forged, SPACE)
    with pytest.raises(ArrivalWrongSpace):
        control.verify_arrival(token, "otherspace12")
    clock.advance(ARRIVAL_TTL_S)
    with pytest.raises(ArrivalExpired):
        control.verify_arrival(token, SPACE)


@pytest.fixture
def defense_store(store_backend: StoreBackend) -> DefenseStore:
    return store_backend.open(MemoryDefenseStore, SqliteDefenseStore, RedisDefenseStore)


def test_defense_overrides_defaults_field_by_field(defense_store: DefenseStore) -> None:
    clock = ManualClock()
    defaults = SpaceDefense(PowMode.OFF, 2000.0, 4000)
    service = DefenseService(defense_store, defaults, clock)
    assert service.get(SPACE) == defaults
    assert service.update(SPACE, pow=PowMode.AUTO) == SpaceDefense(PowMode.AUTO, 2000.0, 4000)
    assert service.update(SPACE, admission_rate=5.0) == SpaceDefense(PowMode.AUTO, 5.0, 4000)
    assert defense_store.get(SPACE) == DefenseOverrides("auto", 5.0, None)
    # another worker reads the same store
    other = DefenseService(defense_store, defaults, clock)
    assert other.get(SPACE) == SpaceDefense(PowMode.AUTO, 5.0, 4000)
    assert other.get("otherspace12") == defaults


def test_joins_go_on_from_the_workers_own_bucket_while_redis_is_away(
    redis_server: RedisServer,
) -> None:
    clock = ManualClock()
    store = RedisAdmissionStore(redis_server.url)
    defenses = DefenseService(RedisDefenseStore(redis_server.url), DEFENSE, clock)
    assert defenses.update(SPACE, admission_rate=RATE) == DEFENSE
    control = _control(store, clock)
    redis_server.stop(is_abrupt=True)
    clock.advance(5.0)
    assert defenses.get(SPACE) == DEFENSE  # what the worker knew
    for _ in range(BURST):
        control.admit(SPACE, defenses.get(SPACE), None)
    assert _waiting_room(control).position == 1
    assert control.fallbacks == BURST + 1
    store.close()
    defenses.close()
