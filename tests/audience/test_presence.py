"""The gate's presence service: batching, the cached count, and riding out a store outage."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from rostra.audience.presence import PresenceService
from rostra.clock import ManualClock
from rostra.store.presence import (
    PresenceBatch,
    PresenceCount,
    PresenceStore,
    PresenceUnavailable,
    SlidingWindow,
)
from rostra.store.presence_memory import MemoryPresenceStore
from rostra.store.presence_redis import RedisPresenceStore
from tests.audience.conftest import WINDOW
from tests.redis_server import RedisServer

SPACE = "abcdefgh1234"
ALICE, BOB = "a" * 32, "b" * 32


class SpyStore:
    """A memory store that records calls and can be taken down."""

    def __init__(self) -> None:
        self.inner = MemoryPresenceStore(WINDOW)
        self.is_down = False
        self.count_calls = 0
        self.batches: list[PresenceBatch] = []
        self.wrote = threading.Event()

    @property
    def window(self) -> SlidingWindow:
        return self.inner.window

    def _check(self) -> None:
        if self.is_down:
            raise PresenceUnavailable("the spy store is down")

    def add_heartbeats(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        self.add_batches([PresenceBatch(space_id, listener_ids, (), now_s)])

    def add_admissions(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        self.add_batches([PresenceBatch(space_id, (), listener_ids, now_s)])

    def add_batches(self, batches: Sequence[PresenceBatch]) -> None:
        self._check()
        self.batches.extend(batches)
        self.inner.add_batches(batches)
        self.wrote.set()

    def count(self, space_id: str, now_s: float) -> PresenceCount:
        self._check()
        self.count_calls += 1
        return self.inner.count(space_id, now_s)

    def memory_bytes(self, space_id: str, now_s: float) -> int:
        self._check()
        return self.inner.memory_bytes(space_id, now_s)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_join_then_heartbeat_counts_the_listener(
    presence_store: PresenceStore, clock: ManualClock
) -> None:
    presence = PresenceService(presence_store, clock)
    presence.record_admission(SPACE, ALICE)
    presence.flush()
    joined = presence.snapshot(SPACE)
    assert (joined.listeners, joined.admitted, joined.is_stale) == (0, 1, False)
    clock.advance(2)
    presence.record_heartbeat(SPACE, ALICE)
    presence.flush()
    playing = presence.snapshot(SPACE)
    assert (playing.listeners, playing.admitted, playing.peak) == (1, 1, 1)
    assert playing.counted_at == clock.now()


def test_listener_who_stops_heartbeating_drops_out_within_two_windows(
    presence_store: PresenceStore, clock: ManualClock
) -> None:
    presence = PresenceService(presence_store, clock)
    heartbeat_interval_s = 15
    for _ in range(4):
        presence.record_heartbeat(SPACE, ALICE)
        presence.record_heartbeat(SPACE, BOB)
        presence.flush()
        clock.advance(heartbeat_interval_s)
        assert presence.snapshot(SPACE).listeners == 2
    stopped_at = clock.monotonic_s()
    while presence.snapshot(SPACE).listeners > 1:
        assert clock.monotonic_s() - stopped_at <= 2 * WINDOW.window_s, "Bob never dropped out"
        presence.record_heartbeat(SPACE, ALICE)
        presence.flush()
        clock.advance(1)
    assert presence.snapshot(SPACE).listeners == 1


def test_a_thousand_heartbeats_of_one_ticket_are_sent_once(
    presence_store: PresenceStore, clock: ManualClock
) -> None:
    presence = PresenceService(presence_store, clock)
    for _ in range(1_000):
        presence.record_heartbeat(SPACE, ALICE)
    assert presence.flush() == 1
    assert presence.snapshot(SPACE).listeners == 1


def test_flush_sends_many_spaces_in_one_store_call(clock: ManualClock) -> None:
    store = SpyStore()
    presence = PresenceService(store, clock)
    presence.record_heartbeat(SPACE, ALICE)
    presence.record_heartbeat("other0000000", BOB)
    presence.record_admission("other0000000", BOB)
    assert presence.flush() == 3
    assert sorted(batch.space_id for batch in store.batches) == ["abcdefgh1234", "other0000000"]
    assert presence.flush() == 0


def test_count_is_read_from_the_store_at_most_once_a_second(clock: ManualClock) -> None:
    store = SpyStore()
    presence = PresenceService(store, clock, count_ttl_s=1.0)
    for _ in range(50):
        presence.snapshot(SPACE)
    assert store.count_calls == 1
    clock.advance(1.0)
    presence.record_heartbeat(SPACE, ALICE)
    presence.flush()
    assert presence.snapshot(SPACE).listeners == 1
    assert store.count_calls == 2


def test_snapshot_is_stale_with_last_values_while_store_is_down(clock: ManualClock) -> None:
    store = SpyStore()
    presence = PresenceService(store, clock, retry_after_s=5.0)
    presence.record_heartbeat(SPACE, ALICE)
    presence.flush()
    good = presence.snapshot(SPACE)
    store.is_down = True
    clock.advance(2)
    stale = presence.snapshot(SPACE)
    assert stale.is_stale
    assert (stale.listeners, stale.peak, stale.counted_at) == (1, 1, good.counted_at)
    calls = store.count_calls
    clock.advance(2)
    assert presence.snapshot(SPACE).is_stale
    assert store.count_calls == calls, "the store is left alone until retry_after_s has passed"


def test_snapshot_before_any_count_is_stale_and_empty(clock: ManualClock) -> None:
    store = SpyStore()
    store.is_down = True
    snapshot = PresenceService(store, clock).snapshot(SPACE)
    assert snapshot.is_stale
    assert (snapshot.listeners, snapshot.peak, snapshot.counted_at) == (0, 0, None)


def test_heartbeats_recorded_during_an_outage_are_sent_when_store_returns(
    clock: ManualClock,
) -> None:
    store = SpyStore()
    presence = PresenceService(store, clock, retry_after_s=1.0)
    store.is_down = True
    presence.record_heartbeat(SPACE, ALICE)
    assert presence.flush() == 0
    clock.advance(0.5)
    presence.record_heartbeat(SPACE, BOB)
    assert presence.flush() == 0  # resting: the store is not even tried
    store.is_down = False
    clock.advance(1.0)
    assert presence.flush() == 2
    assert presence.stats.failed_flushes == 1
    assert presence.snapshot(SPACE).listeners == 2


def test_heartbeats_older_than_a_window_are_dropped_but_admissions_kept(
    clock: ManualClock,
) -> None:
    store = SpyStore()
    presence = PresenceService(store, clock, retry_after_s=1.0)
    store.is_down = True
    presence.record_heartbeat(SPACE, ALICE)
    presence.record_admission(SPACE, ALICE)
    presence.flush()
    clock.advance(WINDOW.window_s + 1)
    store.is_down = False
    assert presence.flush() == 1
    snapshot = presence.snapshot(SPACE)
    assert (snapshot.listeners, snapshot.admitted) == (0, 1)
    assert presence.stats.dropped_ids == 1


def test_pending_ids_are_bounded_while_the_store_is_down(clock: ManualClock) -> None:
    store = SpyStore()
    store.is_down = True
    presence = PresenceService(store, clock, max_pending_ids=100)
    for number in range(250):
        presence.record_heartbeat(SPACE, f"{number:032x}")
        if number % 50 == 0:
            presence.flush()
    store.is_down = False
    clock.advance(5)
    assert presence.flush() == 100
    assert presence.stats.dropped_ids == 150


def test_redis_killed_then_restarted_on_same_port_count_recovers(
    redis_server: RedisServer, clock: ManualClock
) -> None:
    store = RedisPresenceStore(redis_server.url, WINDOW)
    presence = PresenceService(store, clock, retry_after_s=1.0)
    presence.record_heartbeat(SPACE, ALICE)
    presence.flush()
    assert presence.snapshot(SPACE).listeners == 1
    redis_server.stop(is_abrupt=True)
    clock.advance(1.0)
    presence.record_heartbeat(SPACE, BOB)
    presence.flush()
    stale = presence.snapshot(SPACE)
    assert (stale.is_stale, stale.listeners) == (True, 1)
    redis_server.start()
    clock.advance(2.0)
    presence.record_heartbeat(SPACE, ALICE)
    assert presence.flush() == 2  # Bob's heartbeat from the outage, then Alice's
    fresh = presence.snapshot(SPACE)
    assert (fresh.is_stale, fresh.listeners) == (False, 2)
    store.close()


async def test_flusher_task_sends_what_handlers_record(clock: ManualClock) -> None:
    store = SpyStore()
    presence = PresenceService(store, clock)
    flusher = asyncio.create_task(presence.run_flusher(interval_s=0))
    presence.record_heartbeat(SPACE, ALICE)
    assert await asyncio.to_thread(store.wrote.wait, 5.0)
    flusher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flusher
    assert (await presence.read(SPACE)).listeners == 1


async def test_read_answers_from_the_cache_without_the_store(clock: ManualClock) -> None:
    store = SpyStore()
    presence = PresenceService(store, clock)
    first = await presence.read(SPACE)
    assert await presence.read(SPACE) is first
    assert store.count_calls == 1
