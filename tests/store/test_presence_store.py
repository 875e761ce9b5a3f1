"""One suite, every presence store backend: the in-process sketches and a real redis-server."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import redis

from rostra.store.presence import (
    PresenceBatch,
    PresenceStore,
    PresenceUnavailable,
    SlidingWindow,
)
from rostra.store.presence_memory import MemoryPresenceStore, sketch_max_bytes
from rostra.store.presence_redis import RedisPresenceStore, slice_key
from tests.redis_server import RedisServer

WINDOW = SlidingWindow(window_s=30.0, slices=6)
T0 = 1_800_000_000.0  # a slice start, so heartbeats at T0 are the worst case for dropping out
SPACE = "abcdefgh1234"
# A dense slice sketch: DataSketches HLL_4 at precision 15 is ~16.5 KiB, Redis' dense HLL 12 KiB.
SLICE_BYTES_MAX = 20 * 1024


def listener_ids(count: int, *, seed: int) -> list[str]:
    generator = random.Random(seed)
    return [f"{generator.getrandbits(128):032x}" for _ in range(count)]


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[PresenceStore]:
    backend: PresenceStore
    if request.param == "memory":
        backend = MemoryPresenceStore(WINDOW)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        backend = RedisPresenceStore(server.url, WINDOW)
    yield backend
    backend.close()


def test_heartbeat_counts_a_listener(store: PresenceStore) -> None:
    store.add_heartbeats(SPACE, ["a" * 32], T0)
    count = store.count(SPACE, T0 + 1)
    assert count.listeners == 1
    assert count.counted_at_s == T0 + 1
    assert 0 < count.error < 0.01


def test_unknown_space_counts_nobody(store: PresenceStore) -> None:
    count = store.count("nobody000000", T0)
    assert (count.listeners, count.admitted, count.peak) == (0, 0, 0)


def test_listener_who_stops_drops_out_within_two_windows(store: PresenceStore) -> None:
    store.add_heartbeats(SPACE, ["a" * 32], T0)
    assert store.count(SPACE, T0 + WINDOW.window_s).listeners == 1
    gone_after_s = WINDOW.window_s + WINDOW.slice_s
    assert gone_after_s <= 2 * WINDOW.window_s
    assert store.count(SPACE, T0 + gone_after_s).listeners == 0


def test_listener_heartbeating_once_a_window_is_always_counted(store: PresenceStore) -> None:
    heartbeat_s = T0 + 0.7
    for step in range(100):
        now_s = T0 + step * 0.9
        if now_s >= heartbeat_s + WINDOW.window_s:
            heartbeat_s += WINDOW.window_s
        if now_s >= heartbeat_s:
            store.add_heartbeats(SPACE, ["a" * 32], heartbeat_s)
        if now_s > T0 + 0.7:
            assert store.count(SPACE, now_s).listeners == 1, f"at +{now_s - T0:.1f} s"


def test_one_listener_heartbeating_a_thousand_times_counts_once(store: PresenceStore) -> None:
    for beat in range(1_000):
        store.add_heartbeats(SPACE, ["a" * 32], T0 + beat * 0.01)
    store.add_heartbeats(SPACE, ["a" * 32] * 1_000, T0 + 10)
    assert store.count(SPACE, T0 + 11).listeners == 1


def test_joins_without_heartbeats_raise_admitted_not_listeners(store: PresenceStore) -> None:
    store.add_admissions(SPACE, listener_ids(50, seed=1), T0)
    store.add_heartbeats(SPACE, listener_ids(20, seed=1), T0 + 1)
    count = store.count(SPACE, T0 + 2)
    assert (count.listeners, count.admitted) == (20, 50)


def test_peak_is_kept_after_listeners_leave(store: PresenceStore) -> None:
    store.add_heartbeats(SPACE, listener_ids(40, seed=2), T0)
    assert store.count(SPACE, T0 + 1).peak == 40
    store.add_heartbeats(SPACE, listener_ids(10, seed=3), T0 + 3 * WINDOW.window_s)
    count = store.count(SPACE, T0 + 3 * WINDOW.window_s + 1)
    assert (count.listeners, count.peak) == (10, 40)


def test_spaces_are_counted_apart(store: PresenceStore) -> None:
    store.add_batches(
        [
            PresenceBatch(SPACE, ["a" * 32, "b" * 32], ["a" * 32], T0),
            PresenceBatch("other0000000", ["c" * 32], ["c" * 32, "d" * 32], T0),
        ]
    )
    mine, other = store.count(SPACE, T0), store.count("other0000000", T0)
    assert (mine.listeners, mine.admitted) == (2, 1)
    assert (other.listeners, other.admitted) == (1, 2)


def test_ten_thousand_listeners_counted_within_three_sigma(store: PresenceStore) -> None:
    truth = 10_000
    ids = listener_ids(truth, seed=10)
    for part in range(WINDOW.slices):  # each listener heartbeats once somewhere in the window
        store.add_heartbeats(SPACE, ids[part::6], T0 + part * WINDOW.slice_s)
    count = store.count(SPACE, T0 + WINDOW.window_s - 1)
    assert abs(count.listeners - truth) <= 3 * count.error * truth, count


def test_memory_per_window_is_kilobytes_whatever_the_audience(store: PresenceStore) -> None:
    now_s = T0 + WINDOW.window_s
    slices = list(WINDOW.counted(now_s))
    memory = []
    for audience, seed in ((10_000, 20), (30_000, 21)):  # 10,000 listeners, then 40,000
        ids = listener_ids(audience, seed=seed)
        for index in slices:  # a dense sketch in every slice of the window
            store.add_heartbeats(SPACE, ids, WINDOW.start_ms(index) / 1000)
        memory.append(store.memory_bytes(SPACE, now_s))
    assert memory[1] <= len(slices) * SLICE_BYTES_MAX
    assert memory[1] <= memory[0] * 1.05


def test_memory_sketch_never_exceeds_its_stated_size() -> None:
    store = MemoryPresenceStore(WINDOW)
    store.add_heartbeats(SPACE, listener_ids(50_000, seed=30), T0)
    assert store.memory_bytes(SPACE, T0) <= sketch_max_bytes() < 17 * 1024


def test_two_gate_workers_on_one_redis_share_one_count(redis_server: RedisServer) -> None:
    first = RedisPresenceStore(redis_server.url, WINDOW)
    second = RedisPresenceStore(redis_server.url, WINDOW)
    ids = listener_ids(30, seed=4)
    first.add_heartbeats(SPACE, ids[:20], T0)
    second.add_heartbeats(SPACE, ids[10:], T0 + 1)
    assert first.count(SPACE, T0 + 2).listeners == second.count(SPACE, T0 + 2).listeners == 30
    later_s = T0 + 3 * WINDOW.window_s
    second.add_heartbeats(SPACE, ids[:5], later_s)
    assert second.count(SPACE, later_s).peak == 30  # one worker's low count never lowers the peak
    first.close()
    second.close()


def test_redis_slices_expire_after_the_window(redis_server: RedisServer) -> None:
    store = RedisPresenceStore(redis_server.url, WINDOW)
    store.add_heartbeats(SPACE, ["a" * 32], T0)
    client = redis.Redis.from_url(redis_server.url)
    ttl_ms = client.pttl(slice_key(SPACE, WINDOW.start_ms(WINDOW.slice_of(T0))))
    client.close()
    assert WINDOW.window_s * 1000 < ttl_ms <= (WINDOW.window_s + 2 * WINDOW.slice_s) * 1000
    store.close()


def test_redis_outage_raises_presence_unavailable_then_recovers(redis_server: RedisServer) -> None:
    store = RedisPresenceStore(redis_server.url, WINDOW)
    store.add_heartbeats(SPACE, ["a" * 32], T0)
    assert store.count(SPACE, T0).listeners == 1
    redis_server.stop(is_abrupt=True)
    with pytest.raises(PresenceUnavailable):
        store.add_heartbeats(SPACE, ["b" * 32], T0 + 1)
    with pytest.raises(PresenceUnavailable):
        store.count(SPACE, T0 + 1)
    with pytest.raises(PresenceUnavailable):
        store.memory_bytes(SPACE, T0 + 1)
    redis_server.start()  # same port, empty: nothing was persisted
    store.add_heartbeats(SPACE, ["b" * 32, "c" * 32], T0 + 2)
    assert store.count(SPACE, T0 + 2).listeners == 2
    store.close()
