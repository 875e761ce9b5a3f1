"""Reactions and raised hands: the reaction tallies of the last seconds and the hand queue, as a
port with an in-process adapter (the Redis adapter is in reactions_redis.py).

Storage plane.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Protocol

from rostra.errors import HandQueueFull

REACTION_WINDOW_S = 10.0
# raised hands kept per space: far more than a host can read, and a bound on what listeners write
HANDS_MAX = 1_000


@dataclass(frozen=True, slots=True)
class RaisedHand:
    listener_id: str
    raised_at_s: float


class ReactionStore(Protocol):
    def add_reactions(self, space_id: str, counts: dict[str, int], now_s: float) -> None:
        """Add a batch of reactions that happened at `now_s`."""

    def tally(self, space_id: str, now_s: float) -> dict[str, int]:
        """Reactions by emoji over the last REACTION_WINDOW_S seconds."""

    def raise_hand(self, space_id: str, listener_id: str, now_s: float) -> None:
        """Join the hand queue (once: a second raise keeps the first place); HandQueueFull when
        the queue already holds `hands_max` other hands."""

    def lower_hand(self, space_id: str, listener_id: str) -> None: ...

    def hands(self, space_id: str) -> list[RaisedHand]:
        """The hand queue, first raised first."""

    def close(self) -> None: ...


def hand_queue_full(space_id: str, hands_max: int) -> HandQueueFull:
    return HandQueueFull(
        f"space '{space_id}' keeps at most {hands_max} raised hands; {hands_max} are raised"
    )


class MemoryReactionStore:
    def __init__(self, window_s: float = REACTION_WINDOW_S, *, hands_max: int = HANDS_MAX) -> None:
        self._window_s = window_s
        self._hands_max = hands_max
        self._lock = threading.Lock()
        self._events: dict[str, deque[tuple[float, dict[str, int]]]] = {}
        self._hands: dict[str, dict[str, float]] = {}

    def add_reactions(self, space_id: str, counts: dict[str, int], now_s: float) -> None:
        with self._lock:
            events = self._events.setdefault(space_id, deque())
            events.append((now_s, dict(counts)))
            self._expire(events, now_s)

    def tally(self, space_id: str, now_s: float) -> dict[str, int]:
        total: Counter[str] = Counter()
        with self._lock:
            events = self._events.get(space_id)
            if events is None:
                return {}
            self._expire(events, now_s)
            for _, counts in events:
                total.update(counts)
        return dict(total)

    def _expire(self, events: deque[tuple[float, dict[str, int]]], now_s: float) -> None:
        while events and events[0][0] <= now_s - self._window_s:
            events.popleft()

    def raise_hand(self, space_id: str, listener_id: str, now_s: float) -> None:
        with self._lock:
            hands = self._hands.setdefault(space_id, {})
            if listener_id not in hands and len(hands) >= self._hands_max:
                raise hand_queue_full(space_id, self._hands_max)
            hands.setdefault(listener_id, now_s)

    def lower_hand(self, space_id: str, listener_id: str) -> None:
        with self._lock:
            self._hands.get(space_id, {}).pop(listener_id, None)

    def hands(self, space_id: str) -> list[RaisedHand]:
        with self._lock:
            queue = dict(self._hands.get(space_id, {}))
        ordered = sorted(queue.items(), key=lambda item: item[1])
        return [RaisedHand(listener_id=lid, raised_at_s=at) for lid, at in ordered]

    def close(self) -> None:
        return None
