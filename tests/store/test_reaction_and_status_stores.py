"""One suite for the reaction/hand stores and the space-status stores, on every backend."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rostra.errors import HandQueueFull
from rostra.store import MemorySpaceStore, SpaceRecord
from rostra.store.reactions import HANDS_MAX, MemoryReactionStore, ReactionStore
from rostra.store.reactions import HANDS_MAX as DEFAULT_HANDS_MAX
from rostra.store.reactions_redis import RedisReactionStore, RedisSpaceStatus, StoreUnavailable
from rostra.store.reactions_sqlite import SqliteReactionStore
from rostra.store.reactions_sqlite import StoreUnavailable as SqliteStoreUnavailable
from rostra.store.status import SpaceStatusStore, SpaceStoreStatus
from tests.conftest import StoreBackend
from tests.redis_server import RedisServer

SPACE = "abcdefgh1234"
T0 = 1_800_000_000.0


@pytest.fixture
def reactions(store_backend: StoreBackend) -> ReactionStore:
    return store_backend.open(MemoryReactionStore, SqliteReactionStore, RedisReactionStore)


@pytest.fixture(params=["space-store", "redis"])
def statuses(request: pytest.FixtureRequest) -> Iterator[SpaceStatusStore]:
    if request.param == "space-store":
        spaces = MemorySpaceStore()
        spaces.add_space(
            SpaceRecord(id=SPACE, title="T", status="live", created_at=datetime.now(UTC))
        )
        yield SpaceStoreStatus(spaces)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisSpaceStatus(server.url)
        store.set_status(SPACE, "live")
        yield store
        store.close()


def test_reactions_are_tallied_over_the_last_ten_seconds(reactions: ReactionStore) -> None:
    reactions.add_reactions(SPACE, {"👏": 3, "🔥": 1}, T0)
    reactions.add_reactions(SPACE, {"👏": 2}, T0 + 5)
    assert reactions.tally(SPACE, T0 + 5) == {"👏": 5, "🔥": 1}
    assert reactions.tally(SPACE, T0 + 12) == {"👏": 2}
    assert reactions.tally(SPACE, T0 + 30) == {}
    assert reactions.tally("otherspace12", T0 + 5) == {}


def test_hand_queue_keeps_first_place_and_order(reactions: ReactionStore) -> None:
    reactions.raise_hand(SPACE, "b", T0 + 1)
    reactions.raise_hand(SPACE, "a", T0 + 2)
    reactions.raise_hand(SPACE, "b", T0 + 3)  # a second raise keeps the first place
    assert [h.listener_id for h in reactions.hands(SPACE)] == ["b", "a"]
    assert reactions.hands(SPACE)[0].raised_at_s == pytest.approx(T0 + 1)
    reactions.lower_hand(SPACE, "b")
    assert [h.listener_id for h in reactions.hands(SPACE)] == ["a"]


def test_status_of_a_space_and_of_an_unknown_one(statuses: SpaceStatusStore) -> None:
    assert statuses.get_status(SPACE) == "live"
    assert statuses.get_status("unknownspace") is None


def test_redis_stores_say_unavailable_when_redis_is_gone(redis_server: RedisServer) -> None:
    store = RedisReactionStore(redis_server.url)
    status = RedisSpaceStatus(redis_server.url)
    redis_server.stop(is_abrupt=True)
    with pytest.raises(StoreUnavailable):
        store.add_reactions(SPACE, {"👏": 1}, T0)
    with pytest.raises(StoreUnavailable):
        status.get_status(SPACE)
    redis_server.start()
    store.add_reactions(SPACE, {"👏": 1}, T0)
    assert store.tally(SPACE, T0) == {"👏": 1}
    store.close()
    status.close()


@pytest.fixture
def shared_by_two(store_backend: StoreBackend) -> list[ReactionStore]:
    """Two stores as two gate workers open them: one SQLite file, or one redis-server."""
    return [
        store_backend.open(MemoryReactionStore, SqliteReactionStore, RedisReactionStore)
        for _ in range(2)
    ]


# memory stores are one worker's own: only SQLite and Redis are shared
@pytest.mark.parametrize("store_backend", ["sqlite", "redis"], indirect=True)
def test_two_gate_workers_share_reactions_and_hands(shared_by_two: list[ReactionStore]) -> None:
    first, second = shared_by_two
    first.add_reactions(SPACE, {"👏": 3}, T0)
    second.add_reactions(SPACE, {"👏": 2, "🔥": 1}, T0)
    first.raise_hand(SPACE, "a", T0 + 1)
    second.raise_hand(SPACE, "b", T0 + 2)
    second.raise_hand(SPACE, "a", T0 + 3)  # raised again at another worker: keeps its place
    assert first.tally(SPACE, T0 + 1) == second.tally(SPACE, T0 + 1) == {"👏": 5, "🔥": 1}
    assert [h.listener_id for h in first.hands(SPACE)] == ["a", "b"]
    second.lower_hand(SPACE, "a")
    assert [h.listener_id for h in first.hands(SPACE)] == ["b"]


def test_sqlite_keeps_one_row_per_emoji_per_second_of_the_window(tmp_path: Path) -> None:
    path = tmp_path / "audience.sqlite3"
    workers = [SqliteReactionStore(path) for _ in range(3)]
    for tenth in range(300):  # 30 s of flushes every 100 ms from three workers
        for worker in workers:
            worker.add_reactions(SPACE, {"👏": 1, "🔥": 1}, T0 + tenth / 10)
    database = sqlite3.connect(path)
    (rows,) = database.execute("SELECT COUNT(*) FROM reactions").fetchone()
    database.close()
    assert rows <= 2 * 11
    assert workers[0].tally(SPACE, T0 + 29.9) == {"👏": 300, "🔥": 300}
    for worker in workers:
        worker.close()


def test_sqlite_hand_queue_is_capped_first_raised_kept(tmp_path: Path) -> None:
    store = SqliteReactionStore(tmp_path / "audience.sqlite3")
    for number in range(HANDS_MAX):
        store.raise_hand(SPACE, f"listener-{number:05d}", T0 + number / 1000)
    with pytest.raises(HandQueueFull):
        store.raise_hand(SPACE, "one-too-many", T0 + 2)
    store.raise_hand(SPACE, "listener-00000", T0 + 3)  # already queued: keeps its place
    hands = store.hands(SPACE)
    assert len(hands) == HANDS_MAX
    assert hands[0].listener_id == "listener-00000"
    assert hands[-1].listener_id == f"listener-{HANDS_MAX - 1:05d}"
    store.lower_hand(SPACE, "listener-00000")
    store.raise_hand(SPACE, "latecomer", T0 + 10)  # a lowered hand frees a place
    assert store.hands(SPACE)[-1].listener_id == "latecomer"
    store.close()


def test_sqlite_store_says_unavailable_while_another_writer_holds_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audience.sqlite3"
    store = SqliteReactionStore(path, busy_timeout_s=0.1)
    store.raise_hand(SPACE, "a", T0)
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    with pytest.raises(SqliteStoreUnavailable):
        store.add_reactions(SPACE, {"👏": 1}, T0)
    with pytest.raises(SqliteStoreUnavailable):
        store.raise_hand(SPACE, "b", T0)
    assert [h.listener_id for h in store.hands(SPACE)] == ["a"]  # reads never wait (WAL)
    other_process.execute("ROLLBACK")
    other_process.close()
    store.add_reactions(SPACE, {"👏": 1}, T0)
    assert store.tally(SPACE, T0) == {"👏": 1}
    store.close()


@pytest.fixture(params=["memory", "redis"])
def capped_hands(request: pytest.FixtureRequest) -> Iterator[ReactionStore]:
    """Stores that refuse a raise past the cap (HandQueueFull): memory and Redis."""
    store: ReactionStore
    if request.param == "memory":
        store = MemoryReactionStore(hands_max=5)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisReactionStore(server.url, hands_max=5)
    yield store
    store.close()


def test_hand_queue_is_capped_and_a_raise_past_it_is_refused(
    capped_hands: ReactionStore,
) -> None:
    for number in range(5):
        capped_hands.raise_hand(SPACE, f"listener-{number}", T0 + number)
    capped_hands.raise_hand(SPACE, "listener-0", T0 + 9)  # already queued: keeps its place
    with pytest.raises(HandQueueFull, match="at most 5 raised hands"):
        capped_hands.raise_hand(SPACE, "latecomer", T0 + 10)
    assert [h.listener_id for h in capped_hands.hands(SPACE)] == [f"listener-{n}" for n in range(5)]
    capped_hands.lower_hand(SPACE, "listener-2")
    capped_hands.raise_hand(SPACE, "latecomer", T0 + 11)  # a lowered hand frees a place
    assert capped_hands.hands(SPACE)[-1].listener_id == "latecomer"
    capped_hands.raise_hand("otherspace12", "latecomer", T0 + 12)  # the cap is per space


def test_hand_queue_cap_is_a_thousand_by_default() -> None:
    assert MemoryReactionStore()._hands_max == DEFAULT_HANDS_MAX == 1_000
