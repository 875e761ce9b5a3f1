"""Redis join queues and defence settings: shared by every gate worker and node.

Storage plane. A join is one Lua script (atomic on the server) running the rules of
admission_bucket.py on the space's hash; a spent arrival number is a key set with a TTL of an
arrival token's life. Defence settings are one hash per space. Failures surface as
StoreUnavailable (503).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis

from rostra.errors import Unavailable
from rostra.store.admission_bucket import (
    QUEUE_TTL_S,
    QueueSnapshot,
    QueueState,
    QueueVerdict,
    snapshot_of,
    waiting_verdict,
)
from rostra.store.admission_defense import DefenseOverrides
from rostra.store.redis_client import connect

RETRY_AFTER_S = 1.0
_T = TypeVar("_T")
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)

# KEYS[1] the queue hash, KEYS[2] the spent key of ARGV[4] (ARGV[4] 0: a first arrival).
# ARGV: now_s, rate, burst, number, spent_ttl_s, queue_ttl_s.
# Returns {verdict, number, watermark, tokens}: verdict 1 admitted, 0 in line, -1 spent.
JOIN_SCRIPT = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local number = tonumber(ARGV[4])
if number > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  return {-1, number, '0', '0'}
end
local s = redis.call('HMGET', KEYS[1], 'arrivals', 'watermark', 'tokens', 'updated_at_s')
local arrivals = tonumber(s[1]) or 0
local watermark = tonumber(s[2]) or 0
local tokens = tonumber(s[3]) or burst
local updated = tonumber(s[4]) or now
local elapsed = math.max(0, now - updated)
tokens = math.min(burst, tokens + rate * elapsed)
watermark = math.min(arrivals, watermark + rate * elapsed)
updated = math.max(updated, now)
if number > arrivals then
  number = 0
end
local admitted = 0
if number == 0 then
  local line_empty = watermark >= arrivals
  arrivals = arrivals + 1
  number = arrivals
  if line_empty and tokens >= 1 then
    tokens = tokens - 1
    watermark = arrivals
    admitted = 1
  end
elseif number <= watermark and tokens >= 1 then
  tokens = tokens - 1
  admitted = 1
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[5])
end
redis.call('HSET', KEYS[1], 'arrivals', arrivals, 'watermark', tostring(watermark),
  'tokens', tostring(tokens), 'updated_at_s', tostring(updated))
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {admitted, number, tostring(watermark), tostring(tokens)}
"""

DEFENSE_FIELDS = ("pow", "admission_rate", "admission_burst")


class AdmissionUnavailable(Unavailable):
    """The shared store cannot be reached: admission waits for it."""

    type_slug = "store-unavailable"
    title = "Store unavailable"


def _call(what: str, operation: Callable[[], _T]) -> _T:
    try:
        return operation()
    except _UNAVAILABLE as exc:
        raise AdmissionUnavailable(
            f"the shared store did not answer ({what})", retry_after_s=RETRY_AFTER_S
        ) from exc


def _hash(raw: dict[Any, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in raw.items()}


def _queue_key(space_id: str) -> str:
    return f"rostra:admission:{{{space_id}}}:queue"


def _spent_key(space_id: str, number: int) -> str:
    return f"rostra:admission:{{{space_id}}}:spent:{number}"


def _defense_key(space_id: str) -> str:
    return f"rostra:defense:{{{space_id}}}"


class RedisAdmissionStore:
    def __init__(self, url: str) -> None:
        self._client = connect(url, decode_responses=True)
        self._join = self._client.register_script(JOIN_SCRIPT)

    def join(
        self,
        space_id: str,
        number: int | None,
        *,
        now_s: float,
        rate: float,
        burst: int,
        spent_ttl_s: float,
    ) -> QueueVerdict:
        keys = [_queue_key(space_id), _spent_key(space_id, number or 0)]
        args: list[Any] = [
            repr(now_s),
            repr(float(rate)),
            burst,
            number or 0,
            max(1, int(spent_ttl_s)),
            QUEUE_TTL_S,
        ]
        reply = _call("admission", lambda: self._join(keys=keys, args=args))
        verdict, given, watermark, tokens = int(reply[0]), int(reply[1]), reply[2], reply[3]
        if verdict == -1:
            return QueueVerdict(False, given, 0, 0.0, is_spent=True)
        if verdict == 1:
            return QueueVerdict(True, given, 0, 0.0)
        return waiting_verdict(given, float(watermark), float(tokens), rate)

    def snapshot(self, space_id: str, *, now_s: float, rate: float, burst: int) -> QueueSnapshot:
        raw = _hash(_call("queue", lambda: self._client.hgetall(_queue_key(space_id))))
        state = None
        if raw:
            state = QueueState(
                arrivals=int(raw.get("arrivals", 0)),
                watermark=float(raw.get("watermark", 0.0)),
                tokens=float(raw.get("tokens", burst)),
                updated_at_s=float(raw.get("updated_at_s", now_s)),
            )
        return snapshot_of(state, now_s, rate, burst)

    def close(self) -> None:
        self._client.close()


class RedisDefenseStore:
    def __init__(self, url: str) -> None:
        self._client = connect(url, decode_responses=True)

    def get(self, space_id: str) -> DefenseOverrides:
        raw = _hash(_call("defense", lambda: self._client.hgetall(_defense_key(space_id))))
        rate, burst = raw.get("admission_rate"), raw.get("admission_burst")
        return DefenseOverrides(
            pow=raw.get("pow"),
            admission_rate=float(rate) if rate is not None else None,
            admission_burst=int(burst) if burst is not None else None,
        )

    def update(self, space_id: str, update: DefenseOverrides) -> DefenseOverrides:
        mapping: dict[Any, Any] = {
            name: str(value)
            for name in DEFENSE_FIELDS
            if (value := getattr(update, name)) is not None
        }
        if mapping:
            _call("defense", lambda: self._client.hset(_defense_key(space_id), mapping=mapping))
        return self.get(space_id)

    def close(self) -> None:
        self._client.close()
