"""Fixtures for the audience plane: a real redis-server, and presence stores on every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rostra.store.presence import PresenceStore, SlidingWindow
from rostra.store.presence_memory import MemoryPresenceStore
from rostra.store.presence_redis import RedisPresenceStore
from tests.redis_server import RedisServer

# The default window; a manual clock walks through it without sleeping.
WINDOW = SlidingWindow(window_s=30.0, slices=6)


@pytest.fixture(params=["memory", "redis"])
def presence_store(request: pytest.FixtureRequest) -> Iterator[PresenceStore]:
    store: PresenceStore
    if request.param == "memory":
        store = MemoryPresenceStore(WINDOW)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisPresenceStore(server.url, WINDOW)
    yield store
    store.close()
