"""One suite, every presence store backend: the in-process sketches, the SQLite file shared by the
worker processes of one machine, and a real redis-server."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

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
from rostra.store.presence_sqlite import SqlitePresenceStore
from tests.redis_server import RedisServer

WINDOW = SlidingWindow(window_s=30.0, slices=6)
T0 = 1_800_000_000.0  # a slice start, so heartbeats at T0 are the worst case for dropping out
SPACE = "abcdefgh1234"
# A dense slice sketch: DataSketches HLL_4 at precision 15 is ~16.5 KiB, Redis' dense HLL 12 KiB.
SLICE_BYTES_MAX = 20 * 1024


def listener_ids(count: int, *, seed: int) -> list[str]:
    generator = random.Random(seed)
    return [f"{generator.getrandbits(128):032x}" for _ in range(count)]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PresenceStore]:
    backend: PresenceStore
    if request.param == "memory":
        backend = MemoryPresenceStore(WINDOW)
    elif request.param == "sqlite":
        backend = SqlitePresenceStore(tmp_path / "audience.sqlite3", WINDOW)
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


@pytest.fixture(params=["sqlite", "redis"])
def shared_by_two(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[PresenceStore]]:
    """Two stores as two gate workers open them: one SQLite file, or one redis-server."""
    stores: list[PresenceStore]
    if request.param == "sqlite":
        stores = [SqlitePresenceStore(tmp_path / "audience.sqlite3", WINDOW) for _ in range(2)]
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        stores = [RedisPresenceStore(server.url, WINDOW) for _ in range(2)]
    yield stores
    for store in stores:
        store.close()


def test_two_gate_workers_on_one_store_share_one_count(
    shared_by_two: list[PresenceStore],
) -> None:
    first, second = shared_by_two
    ids = listener_ids(30, seed=4)
    first.add_heartbeats(SPACE, ids[:20], T0)
    second.add_heartbeats(SPACE, ids[10:], T0 + 1)
    first.add_admissions(SPACE, ids[:3], T0 + 1)
    second.add_admissions(SPACE, ids[2:5], T0 + 1)
    assert first.count(SPACE, T0 + 2).listeners == second.count(SPACE, T0 + 2).listeners == 30
    assert first.count(SPACE, T0 + 2).admitted == 5
    later_s = T0 + 3 * WINDOW.window_s
    second.add_heartbeats(SPACE, ids[:5], later_s)
    assert second.count(SPACE, later_s).peak == 30  # one worker's low count never lowers the peak


def test_workers_writing_the_same_slice_at_once_lose_no_listener(
    shared_by_two: list[PresenceStore],
) -> None:
    ids = listener_ids(4_000, seed=5)

    def beat(store: PresenceStore, mine: list[str]) -> None:
        for start in range(0, len(mine), 10):  # 200 flushes of 10 ids, into one slice
            store.add_heartbeats(SPACE, mine[start : start + 10], T0 + start / 10_000)

    workers = [
        threading.Thread(target=beat, args=(store, ids[part::2]))
        for part, store in enumerate(shared_by_two)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    count = shared_by_two[0].count(SPACE, T0 + 1)
    assert abs(count.listeners - len(ids)) <= 3 * count.error * len(ids), count


def test_sqlite_slices_and_forgotten_spaces_are_deleted(tmp_path: Path) -> None:
    path = tmp_path / "audience.sqlite3"
    store = SqlitePresenceStore(path, WINDOW, space_ttl_s=3600)
    store.add_heartbeats(SPACE, ["a" * 32], T0)
    store.add_admissions(SPACE, ["a" * 32], T0)
    store.add_heartbeats("other0000000", ["b" * 32], T0 + WINDOW.window_s + WINDOW.slice_s)
    database = sqlite3.connect(path)
    slices = database.execute("SELECT space_id FROM presence_slices").fetchall()
    assert slices == [("other0000000",)]  # the first space's slice left the window
    store.add_heartbeats("other0000000", ["b" * 32], T0 + 3601)
    spaces = database.execute("SELECT space_id FROM presence_spaces").fetchall()
    assert spaces == [("other0000000",)]  # untouched for longer than its TTL: peak forgotten
    database.close()
    store.close()


def test_sqlite_write_lock_held_too_long_is_presence_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "audience.sqlite3"
    store = SqlitePresenceStore(path, WINDOW, busy_timeout_s=0.1)
    store.add_heartbeats(SPACE, ["a" * 32], T0)
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")  # a writer that holds the lock and never lets go
    with pytest.raises(PresenceUnavailable):
        store.add_heartbeats(SPACE, ["b" * 32], T0 + 1)
    assert store.count(SPACE, T0 + 1).listeners == 1  # WAL: reads never wait for the writer
    other_process.execute("ROLLBACK")
    other_process.close()
    store.add_heartbeats(SPACE, ["b" * 32, "c" * 32], T0 + 2)
    assert store.count(SPACE, T0 + 2).listeners == 3
    store.close()


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
