"""Redis reactions, hands and space statuses: shared by every gate worker and the origin.

Storage plane. Reactions go into per-second hashes (`HINCRBY`) that expire after the window; a
tally sums the last window's hashes. The hand queue is a sorted set by raise time, capped; one
script checks the cap and adds (`ZADD NX` keeps the first place) atomically across workers.
Failures surface as StoreUnavailable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from rostra.errors import Unavailable
from rostra.store.reactions import HANDS_MAX, REACTION_WINDOW_S, RaisedHand, hand_queue_full
from rostra.store.redis_client import connect
from rostra.store.status import STATUS_KEY, STATUS_TTL_S

RETRY_AFTER_S = 1.0
HAND_TTL_S = 24 * 3600
_T = TypeVar("_T")
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)
# KEYS[1] the queue; ARGV: listener, raised_at_s, hands_max, ttl_s. 1: in the queue, 0: full
RAISE_HAND_SCRIPT = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
  end
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


class StoreUnavailable(Unavailable):
    """The shared store cannot be reached."""

    type_slug = "store-unavailable"
    title = "Store unavailable"


def _call(what: str, operation: Callable[[], _T]) -> _T:
    try:
        return operation()
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(
            f"the shared store did not answer ({what})", retry_after_s=RETRY_AFTER_S
        ) from exc


def _reaction_key(space_id: str, second: int) -> str:
    return f"rostra:reactions:{{{space_id}}}:{second}"


def _hands_key(space_id: str) -> str:
    return f"rostra:hands:{{{space_id}}}"


class RedisReactionStore:
    def __init__(
        self, url: str, window_s: float = REACTION_WINDOW_S, *, hands_max: int = HANDS_MAX
    ) -> None:
        self._client = connect(url, decode_responses=True)
        self._window_s = int(window_s)
        self._hands_max = hands_max
        self._raise_hand = self._client.register_script(RAISE_HAND_SCRIPT)

    def add_reactions(self, space_id: str, counts: dict[str, int], now_s: float) -> None:
        key = _reaction_key(space_id, int(now_s))

        def write() -> None:
            pipe = self._client.pipeline(transaction=False)
            for emoji, count in counts.items():
                pipe.hincrby(key, emoji, count)
            pipe.expire(key, self._window_s + 2)
            pipe.execute()

        _call("reactions", write)

    def tally(self, space_id: str, now_s: float) -> dict[str, int]:
        now = int(now_s)
        keys = [
            _reaction_key(space_id, second) for second in range(now - self._window_s + 1, now + 1)
        ]

        def read() -> list[dict[str, str]]:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return list(pipe.execute())

        total: Counter[str] = Counter()
        for counts in _call("reactions", read):
            total.update({emoji: int(count) for emoji, count in counts.items()})
        return dict(total)

    def raise_hand(self, space_id: str, listener_id: str, now_s: float) -> None:
        keys = [_hands_key(space_id)]
        args: list[str | float] = [listener_id, now_s, self._hands_max, HAND_TTL_S]
        is_queued = _call("hands", lambda: self._raise_hand(keys=keys, args=args))
        if not is_queued:
            raise hand_queue_full(space_id, self._hands_max)

    def lower_hand(self, space_id: str, listener_id: str) -> None:
        _call("hands", lambda: self._client.zrem(_hands_key(space_id), listener_id))

    def hands(self, space_id: str) -> list[RaisedHand]:
        entries: list[Any] = _call(
            "hands", lambda: list(self._client.zrange(_hands_key(space_id), 0, -1, withscores=True))
        )
        return [RaisedHand(listener_id=str(e[0]), raised_at_s=float(e[1])) for e in entries]

    def close(self) -> None:
        self._client.close()


class RedisSpaceStatus:
    """Space statuses written by the origin, read by gates on other nodes."""

    def __init__(self, url: str) -> None:
        self._client = connect(url, decode_responses=True)

    def get_status(self, space_id: str) -> str | None:
        value = _call("status", lambda: self._client.get(STATUS_KEY.format(space_id=space_id)))
        return str(value) if value is not None else None

    def set_status(self, space_id: str, status: str) -> None:
        key = STATUS_KEY.format(space_id=space_id)
        _call("status", lambda: self._client.set(key, status, ex=STATUS_TTL_S))

    def close(self) -> None:
        self._client.close()
