"""Spent proof-of-work solutions in Redis: shared by every gate worker and node.

Storage plane. `SET key 1 NX PX ttl`: the first worker to spend a solution sets its key, every later
attempt finds it; the key expires with the challenge, so Redis holds only live challenges.
"""

from __future__ import annotations

import math

import redis

from rostra.errors import Unavailable
from rostra.store.redis_client import connect

RETRY_AFTER_S = 1.0
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)


class SpentStoreUnavailable(Unavailable):
    """The shared store of spent solutions cannot be reached."""

    type_slug = "store-unavailable"
    title = "Store unavailable"


def spent_key(key: str) -> str:
    return f"rostra:pow:spent:{key}"


class RedisSpentSolutions:
    def __init__(self, url: str) -> None:
        self._redis = connect(url)

    def spend(self, key: str, expires_at_s: float, now_s: float) -> bool:
        ttl_ms = max(1, math.ceil((expires_at_s - now_s) * 1000))
        try:
            was_set = self._redis.set(spent_key(key), b"1", nx=True, px=ttl_ms)
        except _UNAVAILABLE as exc:
            raise SpentStoreUnavailable(
                "the shared store did not answer (spending a solution)",
                retry_after_s=RETRY_AFTER_S,
            ) from exc
        return bool(was_set)

    def close(self) -> None:
        self._redis.close()
