"""The gate says no from the ticket alone: a refused request touches no store."""

from __future__ import annotations

from typing import Any

import pytest

from rostra.audience.gate import STATUS_CACHE_ENTRIES, Gate
from rostra.audience.presence import PresenceService
from rostra.audience.tickets import TicketSigner
from rostra.clock import ManualClock
from rostra.errors import ReactionRateLimited, RostraError, SpaceEnded, TicketWrongSpace
from rostra.store.presence import SlidingWindow
from rostra.store.presence_memory import MemoryPresenceStore
from rostra.store.reactions import MemoryReactionStore

SPACE = "abcdefgh1234"
OTHER = "zyxwvuts9876"


class Spy:
    """Wraps a store and records every call made to it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return record


class Statuses:
    def __init__(self) -> None:
        self.calls = 0

    def get_status(self, space_id: str) -> str | None:
        self.calls += 1
        return {SPACE: "live", OTHER: "ended"}.get(space_id)

    def set_status(self, space_id: str, status: str) -> None:
        raise AssertionError("the gate never writes a status")


def make_gate(**options: Any) -> tuple[Gate, Spy, Spy, Statuses]:
    clock = ManualClock()
    presence_store = Spy(MemoryPresenceStore(SlidingWindow(window_s=30, slices=6)))
    reactions = Spy(MemoryReactionStore())
    statuses = Statuses()
    gate = Gate(
        tickets=TicketSigner("s" * 40),
        presence=PresenceService(presence_store, clock),  # type: ignore[arg-type]
        reactions=reactions,  # type: ignore[arg-type]
        statuses=statuses,
        clock=clock,
        ticket_ttl_s=3600,
        heartbeat_interval_s=20,
        reactions_per_10s=3,
        **options,
    )
    return gate, presence_store, reactions, statuses


def test_bad_tickets_are_refused_without_touching_any_store() -> None:
    gate, presence_store, reactions, statuses = make_gate()
    good = gate.join(SPACE).issued.token
    gate.flush()
    presence_store.calls.clear()
    status_reads = statuses.calls
    now_s = gate._now_s()
    forged = TicketSigner("x" * 40).issue(SPACE, now_s=now_s, ttl_s=3600).token
    elsewhere = TicketSigner("s" * 40).issue(OTHER, now_s=now_s, ttl_s=3600).token
    for token in (None, "", "junk", forged, good[:-1] + ("A" if good[-1] != "A" else "B")):
        for act in (gate.heartbeat, gate.leave, gate.raise_hand):
            with pytest.raises(RostraError) as refused:
                act(token, SPACE)
            assert type(refused.value).__name__.startswith("Ticket")
    with pytest.raises(TicketWrongSpace):
        gate.heartbeat(elsewhere, SPACE)
    gate.flush()
    assert presence_store.calls == [], presence_store.calls
    assert reactions.calls == []
    assert statuses.calls == status_reads
    assert gate.counters["rejected:ticket-invalid"] >= 15


def test_heartbeats_are_batched_and_one_ticket_counts_once() -> None:
    gate, presence_store, _, _ = make_gate()
    token = gate.join(SPACE).issued.token
    for _ in range(1000):
        assert gate.heartbeat(token, SPACE) is None
    gate.flush()
    assert presence_store.calls.count("add_batches") == 1, presence_store.calls
    assert gate.presence.snapshot(SPACE).listeners == 1


def test_only_open_spaces_admit_and_reactions_are_limited_per_ticket() -> None:
    gate, _, reactions, _ = make_gate()
    with pytest.raises(SpaceEnded):
        gate.join(OTHER)
    token = gate.join(SPACE).issued.token
    for _ in range(3):
        gate.react(token, SPACE, "👏")
    with pytest.raises(ReactionRateLimited) as limited:
        gate.react(token, SPACE, "👏")
    assert limited.value.retry_after_s is not None
    gate.flush()
    assert reactions.inner.tally(SPACE, gate._now_s()) == {"👏": 3}


def test_status_cache_is_bounded_and_forgets_the_least_recently_asked_space() -> None:
    gate, _, _, statuses = make_gate(status_cache_entries=100)
    assert gate.status(SPACE) == "live"
    unknown = [f"unknown{number:05d}" for number in range(1_000)]  # well formed, never created
    for number, space_id in enumerate(unknown):
        assert gate.status(space_id) is None
        if number % 50 == 0:
            gate.status(SPACE)  # listeners keep asking about the live space
    assert len(gate.status_cache) == 100
    assert statuses.calls == 1 + len(unknown), "the live space was forgotten while in use"
    reads = statuses.calls
    assert gate.status(SPACE) == "live"
    assert gate.status(unknown[-1]) is None
    assert statuses.calls == reads, "recently asked spaces are still cached"
    gate.status(unknown[0])
    assert statuses.calls == reads + 1, "the least recently asked space was forgotten"


def test_status_cache_holds_ten_thousand_spaces_by_default() -> None:
    gate, _, _, _ = make_gate()
    for number in range(STATUS_CACHE_ENTRIES + 500):
        gate.status(f"unknown{number:05d}")
    assert len(gate.status_cache) == STATUS_CACHE_ENTRIES == 10_000


def test_cached_status_is_read_again_after_a_second() -> None:
    gate, _, _, statuses = make_gate()
    gate.status(SPACE)
    gate.status(SPACE)
    assert statuses.calls == 1
    gate._clock.advance(1.0)  # type: ignore[attr-defined]
    gate.status(SPACE)
    assert statuses.calls == 2
