"""Redis presence store: one count shared by every gate worker and node.

Storage plane. Each time slice of a space is a Redis HyperLogLog (`PFADD`, precision 14, 0.81 %
relative error, at most ~12 KiB dense) that expires a little after the window has passed it;
`PFCOUNT` over the slice keys merges them on the fly. Keys carry the space id as a hash tag
(`{space}`), so one space's keys share a cluster slot and multi-key commands stay legal. The count,
the admissions sketch and the peak are read and raised in one Lua script, so gate workers racing to
raise the peak cannot lower it. Connection failures and timeouts surface as PresenceUnavailable;
the client reconnects by itself on the next call once Redis is back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

import redis
from redis.client import Pipeline

from rostra.store.presence import (
    PresenceBatch,
    PresenceCount,
    PresenceUnavailable,
    SlidingWindow,
    hll_relative_error,
)
from rostra.store.redis_client import connect

PRECISION_BITS = 14  # Redis' HLL_P, fixed at build time
KEY_PREFIX = "rostra:presence"
DEFAULT_SOCKET_TIMEOUT_S = 0.5
# Admissions and peak outlive any event; refreshed on every write.
DEFAULT_SPACE_TTL_S = 7 * 24 * 3600
# One PFADD carries at most this many ids, so no single request grows without bound.
PFADD_CHUNK = 10_000

_T = TypeVar("_T")

# KEYS: the slice keys, then the admissions key, then the peak key. ARGV: the peak's TTL (s).
_COUNT_SCRIPT = """
local slices = #KEYS - 2
local listeners = 0
if slices > 0 then
  listeners = redis.call('PFCOUNT', unpack(KEYS, 1, slices))
end
local admitted = redis.call('PFCOUNT', KEYS[slices + 1])
local peak = tonumber(redis.call('GET', KEYS[slices + 2]) or '0')
if listeners > peak then
  peak = listeners
end
if peak > 0 then
  redis.call('SET', KEYS[slices + 2], peak, 'EX', ARGV[1])
end
return {listeners, admitted, peak}
"""

_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)


def _space_key(space_id: str) -> str:
    return f"{KEY_PREFIX}:{{{space_id}}}"


def slice_key(space_id: str, slice_start_ms: int) -> str:
    return f"{_space_key(space_id)}:slice:{slice_start_ms}"


def admitted_key(space_id: str) -> str:
    return f"{_space_key(space_id)}:admitted"


def peak_key(space_id: str) -> str:
    return f"{_space_key(space_id)}:peak"


def _chunks(ids: Collection[str]) -> list[list[str]]:
    items = list(ids)
    return [items[start : start + PFADD_CHUNK] for start in range(0, len(items), PFADD_CHUNK)]


class RedisPresenceStore:
    """Presence shared through one Redis server (or cluster slot per space)."""

    def __init__(
        self,
        url: str,
        window: SlidingWindow | None = None,
        *,
        socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
        space_ttl_s: int = DEFAULT_SPACE_TTL_S,
    ) -> None:
        self._window = window or SlidingWindow()
        self._space_ttl_s = space_ttl_s
        # A slice is read until `slices` slices have followed it; keep it one more slice for skew.
        self._slice_ttl_ms = self._window.slice_ms * (self._window.slices + 2)
        self._error = hll_relative_error(PRECISION_BITS)
        self._url = url
        self._client = connect(url, socket_timeout_s=socket_timeout_s)
        self._count_script = self._client.register_script(_COUNT_SCRIPT)

    @property
    def window(self) -> SlidingWindow:
        return self._window

    def _call(self, what: str, operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        except _UNAVAILABLE as exc:
            raise PresenceUnavailable(
                f"presence store at {self._redacted_url()} is unavailable for {what}: {exc}"
            ) from exc

    def _redacted_url(self) -> str:
        scheme, _, rest = self._url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"

    def _queue_heartbeats(
        self, pipe: Pipeline, space_id: str, listener_ids: Collection[str], now_s: float
    ) -> None:
        key = slice_key(space_id, self._window.start_ms(self._window.slice_of(now_s)))
        for chunk in _chunks(listener_ids):
            pipe.pfadd(key, *chunk)
        if listener_ids:
            pipe.pexpire(key, self._slice_ttl_ms)

    def _queue_admissions(
        self, pipe: Pipeline, space_id: str, listener_ids: Collection[str]
    ) -> None:
        key = admitted_key(space_id)
        for chunk in _chunks(listener_ids):
            pipe.pfadd(key, *chunk)
        if listener_ids:
            pipe.expire(key, self._space_ttl_s)

    def add_heartbeats(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        self.add_batches([PresenceBatch(space_id, listener_ids, (), now_s)])

    def add_admissions(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        self.add_batches([PresenceBatch(space_id, (), listener_ids, now_s)])

    def add_batches(self, batches: Sequence[PresenceBatch]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for batch in batches:
            self._queue_heartbeats(pipe, batch.space_id, batch.heartbeats, batch.at_s)
            self._queue_admissions(pipe, batch.space_id, batch.admissions)
        if len(pipe):
            self._call("writes", pipe.execute)

    def _slice_keys(self, space_id: str, now_s: float) -> list[str]:
        return [
            slice_key(space_id, self._window.start_ms(index))
            for index in self._window.counted(now_s)
        ]

    def count(self, space_id: str, now_s: float) -> PresenceCount:
        keys = [*self._slice_keys(space_id, now_s), admitted_key(space_id), peak_key(space_id)]
        listeners, admitted, peak = self._call(
            "a count", lambda: self._count_script(keys=keys, args=[self._space_ttl_s])
        )
        return PresenceCount(
            listeners=int(listeners),
            error=self._error,
            admitted=int(admitted),
            peak=int(peak),
            counted_at_s=now_s,
        )

    def memory_bytes(self, space_id: str, now_s: float) -> int:
        pipe = self._client.pipeline(transaction=False)
        for key in self._slice_keys(space_id, now_s):
            pipe.memory_usage(key)
        sizes: list[int | None] = self._call("memory usage", pipe.execute)
        return sum(size or 0 for size in sizes)

    def close(self) -> None:
        self._client.close()
