"""One suite for the reaction/hand stores and the space-status stores, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from rostra.store import MemorySpaceStore, SpaceRecord
from rostra.store.reactions import MemoryReactionStore, ReactionStore
from rostra.store.reactions_redis import RedisReactionStore, RedisSpaceStatus, StoreUnavailable
from rostra.store.status import SpaceStatusStore, SpaceStoreStatus
from tests.redis_server import RedisServer

SPACE = "abcdefgh1234"
T0 = 1_800_000_000.0


@pytest.fixture(params=["memory", "redis"])
def reactions(request: pytest.FixtureRequest) -> Iterator[ReactionStore]:
    store: ReactionStore
    if request.param == "memory":
        store = MemoryReactionStore()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisReactionStore(server.url)
    yield store
    store.close()


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
