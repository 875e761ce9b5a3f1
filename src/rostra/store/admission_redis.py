"""Redis join queues and defence settings: shared by every gate worker and node.

Storage plane. A join is one Lua script (atomic on the server) running the rules of
admission_bucket.py on the space's hash; a spent arrival number is a key set with a TTL of an
arrival token's life. Defence settings are one hash per space. Failures surface as
StoreUnavailable (503).
"""

from __future__ import annotations

from collections.abc import Callable
from string import Template
from typing import Any, TypeVar

import redis

from rostra.errors import Unavailable
from rostra.store.admission_bucket import (
    QUEUE_TTL_S,
    STATE_FIELDS,
    QueueSnapshot,
    QueueVerdict,
    snapshot_of,
    spent_verdict,
    state_from,
    waiting_verdict,
)
from rostra.store.admission_defense import DefenseOverrides
from rostra.store.redis_client import connect

RETRY_AFTER_S = 1.0
_T = TypeVar("_T")
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)

# The join script's ARGV in order; each is a Lua local of the same name. KEYS[1] is the queue hash
# (fields STATE_FIELDS), KEYS[2] the spent key of `number` (0: a first arrival). It returns
# {verdict, number, watermark, tokens}, numbers as text at full precision.
JOIN_ARGV = ("now_s", "rate", "burst", "number", "spent_ttl_s", "queue_ttl_s")
ADMITTED, IN_LINE, SPENT = 1, 0, -1

# decide() of admission_bucket.py, and a number spent as decide_join() spends it
_JOIN_RULE = """
if number > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  return {$spent, number, '0', '0'}
end
$state_load
arrivals = arrivals or 0
watermark = watermark or 0
tokens = tokens or burst
updated_at_s = updated_at_s or now_s
local elapsed = math.max(0, now_s - updated_at_s)
tokens = math.min(burst, tokens + rate * elapsed)
watermark = math.min(arrivals, watermark + rate * elapsed)
updated_at_s = math.max(updated_at_s, now_s)
if number > arrivals then
  number = 0
end
local verdict = $in_line
if number == 0 then
  local line_empty = watermark >= arrivals
  arrivals = arrivals + 1
  number = arrivals
  if line_empty and tokens >= 1 then
    tokens = tokens - 1
    watermark = arrivals
    verdict = $admitted
  end
elseif number <= watermark and tokens >= 1 then
  tokens = tokens - 1
  verdict = $admitted
  redis.call('SET', KEYS[2], '1', 'EX', spent_ttl_s)
end
redis.call('HSET', KEYS[1], $state_values)
redis.call('EXPIRE', KEYS[1], queue_ttl_s)
return {verdict, number, text(watermark), text(tokens)}
"""


def _join_script() -> str:
    # tostring() keeps 14 digits; 17 give back the very double Python computes
    head = ["local function text(x) return string.format('%.17g', x) end"]
    head += [f"local {name} = tonumber(ARGV[{i}])" for i, name in enumerate(JOIN_ARGV, 1)]
    rule = Template(_JOIN_RULE).substitute(
        admitted=ADMITTED,
        in_line=IN_LINE,
        spent=SPENT,
        state_load="\n".join(
            [f"local s = redis.call('HMGET', KEYS[1], {', '.join(map(repr, STATE_FIELDS))})"]
            + [f"local {name} = tonumber(s[{i}])" for i, name in enumerate(STATE_FIELDS, 1)]
        ),
        state_values=", ".join(f"'{name}', text({name})" for name in STATE_FIELDS),
    )
    return "\n".join(head) + rule


JOIN_SCRIPT = _join_script()

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
        argv: dict[str, Any] = {
            "now_s": repr(now_s),
            "rate": repr(float(rate)),
            "burst": burst,
            "number": number or 0,
            "spent_ttl_s": max(1, int(spent_ttl_s)),
            "queue_ttl_s": QUEUE_TTL_S,
        }
        args = [argv[name] for name in JOIN_ARGV]
        reply = _call("admission", lambda: self._join(keys=keys, args=args))
        verdict, given, watermark, tokens = int(reply[0]), int(reply[1]), reply[2], reply[3]
        if verdict == SPENT:
            return spent_verdict(given)
        if verdict == ADMITTED:
            return QueueVerdict(True, given, 0, 0.0)
        return waiting_verdict(given, float(watermark), float(tokens), rate)

    def snapshot(self, space_id: str, *, now_s: float, rate: float, burst: int) -> QueueSnapshot:
        key = _queue_key(space_id)
        values = _call("queue", lambda: self._client.hmget(key, list(STATE_FIELDS)))
        return snapshot_of(state_from(values), now_s, rate, burst)

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
