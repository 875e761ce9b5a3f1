"""The join queue of a space: a token bucket for admissions and a FIFO line of arrival numbers
above it; the rules once, in pure Python, and the in-process store.

Storage plane. State per space: `arrivals` (the last number handed out), `watermark` (numbers at
or below it are called: they may be admitted), `tokens` (the bucket) and the time of the last
update. Both the bucket and the watermark move at the admission rate; the watermark never passes
the last arrival, the bucket never holds more than the burst. A fresh join is admitted at once
only when nobody is in line and a token is left; otherwise it takes the next number. A retry with
a called number takes a token; a number admits once (the store keeps spent numbers for the life
of an arrival token). So admissions never outrun the bucket, and the line is served in the order
of first arrival. The Redis store runs the same rules in a Lua script.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Protocol

# a space's queue state is forgotten this long after its last join
QUEUE_TTL_S = 24 * 3600
# a number still in line is retried at least this often (and a called one at once, nearly)
MIN_RETRY_S = 0.1
# spent numbers the in-process store remembers at most (the oldest go first)
MEMORY_SPENT_MAX = 1_000_000


@dataclass(slots=True)
class QueueState:
    arrivals: int = 0
    watermark: float = 0.0
    tokens: float = 0.0
    updated_at_s: float = 0.0


# a state's fields in order: the columns and hash fields a store keeps it in
STATE_FIELDS = tuple(field.name for field in fields(QueueState))


def state_from(values: Sequence[str | bytes | float | None]) -> QueueState | None:
    """A state read back in STATE_FIELDS order; None for a space the store does not hold."""
    arrivals, watermark, tokens, updated_at_s = values
    if arrivals is None or watermark is None or tokens is None or updated_at_s is None:
        return None
    return QueueState(int(arrivals), float(watermark), float(tokens), float(updated_at_s))


@dataclass(frozen=True, slots=True)
class QueueVerdict:
    """What one join attempt got: admitted, or a place in line (`position` 1 is next)."""

    is_admitted: bool
    number: int
    position: int
    retry_after_s: float
    is_spent: bool = False


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The line as the edge may show it: no write, just the rules applied up to `now_s`."""

    arrivals: int
    watermark: int
    tokens: float
    updated_at_s: float

    @property
    def waiting(self) -> int:
        return max(0, self.arrivals - self.watermark)


class AdmissionStore(Protocol):
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
        """One join attempt, atomically: `number` None for a first arrival, else the number an
        arrival token carries."""

    def snapshot(self, space_id: str, *, now_s: float, rate: float, burst: int) -> QueueSnapshot:
        """The space's line now (a space never seen: nobody in line, the bucket full)."""

    def close(self) -> None: ...


def new_state(now_s: float, burst: int) -> QueueState:
    return QueueState(arrivals=0, watermark=0.0, tokens=float(burst), updated_at_s=now_s)


def advance(state: QueueState, now_s: float, rate: float, burst: int) -> None:
    """Move the bucket and the watermark on to `now_s` (never back)."""
    elapsed_s = max(0.0, now_s - state.updated_at_s)
    state.tokens = min(float(burst), state.tokens + rate * elapsed_s)
    state.watermark = min(float(state.arrivals), state.watermark + rate * elapsed_s)
    state.updated_at_s = max(state.updated_at_s, now_s)


def called_number(state: QueueState, number: int | None) -> int | None:
    """The number a retry presents, or None when it is above the last arrival (the store lost its
    state): that join counts as a first arrival, and only an admitted called number is spent."""
    return number if number is not None and number <= state.arrivals else None


def decide(
    state: QueueState, number: int | None, now_s: float, rate: float, burst: int
) -> QueueVerdict:
    """Apply one join attempt to `state` (the caller holds it exclusively and stores it after).
    A number above the last arrival counts as a first arrival (see called_number)."""
    advance(state, now_s, rate, burst)
    number = called_number(state, number)
    if number is None:
        is_line_empty = state.watermark >= state.arrivals
        state.arrivals += 1
        number = state.arrivals
        if is_line_empty and state.tokens >= 1.0:
            state.tokens -= 1.0
            state.watermark = float(state.arrivals)
            return QueueVerdict(is_admitted=True, number=number, position=0, retry_after_s=0.0)
    elif number <= state.watermark and state.tokens >= 1.0:
        state.tokens -= 1.0
        return QueueVerdict(is_admitted=True, number=number, position=0, retry_after_s=0.0)
    return waiting_verdict(number, state.watermark, state.tokens, rate)


def decide_join(
    state: QueueState, number: int | None, now_s: float, rate: float, burst: int
) -> tuple[QueueVerdict, int | None]:
    """decide(), and the number the join spends (an admitted called number) for the store."""
    called = called_number(state, number)
    verdict = decide(state, called, now_s, rate, burst)
    return verdict, called if verdict.is_admitted else None


def spent_verdict(number: int) -> QueueVerdict:
    """The answer to a number that was admitted already (a store keeps spent numbers)."""
    return QueueVerdict(
        is_admitted=False, number=number, position=0, retry_after_s=0.0, is_spent=True
    )


def waiting_verdict(number: int, watermark: float, tokens: float, rate: float) -> QueueVerdict:
    ahead = number - watermark
    wait_s = max(ahead, 1.0 - tokens, 0.0) / rate if rate > 0 else math.inf
    return QueueVerdict(
        is_admitted=False,
        number=number,
        position=max(1, math.ceil(ahead)),
        retry_after_s=max(MIN_RETRY_S, wait_s),
    )


def snapshot_of(state: QueueState | None, now_s: float, rate: float, burst: int) -> QueueSnapshot:
    current = replace(state) if state is not None else new_state(now_s, burst)
    advance(current, now_s, rate, burst)
    return QueueSnapshot(
        arrivals=current.arrivals,
        watermark=math.floor(current.watermark),
        tokens=current.tokens,
        updated_at_s=current.updated_at_s,
    )


class MemoryAdmissionStore:
    """One process's lines (tests; a single worker): the same rules, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, QueueState] = {}
        # spent numbers in the order they were spent
        self._spent: OrderedDict[tuple[str, int], float] = OrderedDict()

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
        with self._lock:
            while self._spent and (
                len(self._spent) > MEMORY_SPENT_MAX
                or next(iter(self._spent.values())) <= now_s - spent_ttl_s
            ):
                self._spent.popitem(last=False)
            if number is not None and (space_id, number) in self._spent:
                return spent_verdict(number)
            state = self._states.setdefault(space_id, new_state(now_s, burst))
            verdict, spent = decide_join(state, number, now_s, rate, burst)
            if spent is not None:
                self._spent[(space_id, spent)] = now_s
            return verdict

    def snapshot(self, space_id: str, *, now_s: float, rate: float, burst: int) -> QueueSnapshot:
        with self._lock:
            return snapshot_of(self._states.get(space_id), now_s, rate, burst)

    def close(self) -> None:
        return None
