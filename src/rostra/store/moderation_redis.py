"""Redis moderation store: blocked devices, hands' devices and the moderation log of every gate
node of a deployment.

Storage plane. Per space: a sorted set of blocked devices scored by expiry (capped at
MAX_BLOCKS_PER_SPACE, lowest scores trimmed), one key per raised hand's device (expiring with
its ticket), and a list for the log (`LTRIM` to MAX_LOG_ENTRIES). Every key expires.
"""

from __future__ import annotations

import math
from typing import Any

from rostra.store.moderation import (
    BLOCK_TTL_S,
    MAX_BLOCKS_PER_SPACE,
    MAX_LOG_ENTRIES,
    LogEntry,
)
from rostra.store.reactions_redis import _call
from rostra.store.redis_client import connect


def _blocks_key(space_id: str) -> str:
    return f"rostra:blocks:{{{space_id}}}"


def _hand_device_key(space_id: str, listener_id: str) -> str:
    return f"rostra:hand-device:{{{space_id}}}:{listener_id}"


def _log_key(space_id: str) -> str:
    return f"rostra:moderation-log:{{{space_id}}}"


class RedisModerationStore:
    def __init__(self, url: str) -> None:
        self._client = connect(url, decode_responses=True)

    def block(self, space_id: str, device_id: str, until_s: float, now_s: float) -> None:
        key = _blocks_key(space_id)
        ttl_s = max(1, math.ceil(until_s - now_s))

        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.zadd(key, {device_id: until_s})
            pipe.zremrangebyscore(key, "-inf", now_s)
            pipe.zremrangebyrank(key, 0, -MAX_BLOCKS_PER_SPACE - 1)
            pipe.expire(key, ttl_s, gt=True)
            pipe.expire(key, ttl_s, nx=True)
            pipe.execute()

        _call("blocks", write)

    def is_blocked(self, space_id: str, device_id: str, now_s: float) -> bool:
        score: Any = _call("blocks", lambda: self._client.zscore(_blocks_key(space_id), device_id))
        return score is not None and float(score) > now_s

    def blocked_devices(self, space_id: str, now_s: float) -> frozenset[str]:
        found: Any = _call(
            "blocks",
            lambda: self._client.zrangebyscore(
                _blocks_key(space_id), f"({now_s}", "+inf", start=0, num=MAX_BLOCKS_PER_SPACE
            ),
        )
        return frozenset(str(device) for device in found or [])

    def remember_hand_device(
        self, space_id: str, listener_id: str, device_id: str, until_s: float
    ) -> None:
        key = _hand_device_key(space_id, listener_id)

        def write() -> None:
            self._client.set(key, device_id, exat=max(1, math.ceil(until_s)))

        _call("hand devices", write)

    def hand_device(self, space_id: str, listener_id: str, now_s: float) -> str | None:
        found: Any = _call(
            "hand devices", lambda: self._client.get(_hand_device_key(space_id, listener_id))
        )
        return str(found) if found else None

    def append(self, space_id: str, entry: LogEntry) -> None:
        key = _log_key(space_id)

        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.rpush(key, entry.encode())
            pipe.ltrim(key, -MAX_LOG_ENTRIES, -1)
            pipe.expire(key, BLOCK_TTL_S)
            pipe.execute()

        _call("moderation log", write)

    def entries(self, space_id: str) -> list[LogEntry]:
        found: Any = _call("moderation log", lambda: self._client.lrange(_log_key(space_id), 0, -1))
        return [LogEntry.decode(str(text)) for text in found or []]

    def close(self) -> None:
        self._client.close()
