"""Reactions: a fixed set of emoji, rate-limited per ticket, tallied over the last few seconds.

Audience plane. One tally per gate worker, kept in process: `state.json` shows `{emoji: count}` over
the last `window_s` seconds. Per-ticket limits are token buckets (a burst, then a steady rate).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rostra.clock import Clock
from rostra.errors import ReactionNotAllowed, ReactionRateLimited

DEFAULT_EMOJI = ("👏", "❤️", "😂", "🔥", "💯", "🙌", "👍", "😮")
DEFAULT_WINDOW_S = 10
DEFAULT_RATE_PER_S = 1.0
DEFAULT_BURST = 5
_VARIATION_SELECTOR = "\ufe0f"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class ReactionTally:
    """Reactions of the spaces one gate worker serves."""

    def __init__(
        self,
        clock: Clock,
        *,
        emoji: Iterable[str] = DEFAULT_EMOJI,
        window_s: int = DEFAULT_WINDOW_S,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: int = DEFAULT_BURST,
    ) -> None:
        self._clock = clock
        # Clients send hearts with or without the emoji variation selector: both are one reaction.
        self._emoji = {item.replace(_VARIATION_SELECTOR, ""): item for item in emoji}
        self._window_s = window_s
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._lock = threading.Lock()
        self._seconds: dict[str, dict[int, Counter[str]]] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._pruned_at_s = clock.monotonic_s()

    @property
    def emoji(self) -> tuple[str, ...]:
        return tuple(self._emoji.values())

    def react(self, space_id: str, listener_id: str, emoji: str) -> None:
        """Count one reaction, or raise ReactionNotAllowed / ReactionRateLimited."""
        canonical = self._emoji.get(emoji.replace(_VARIATION_SELECTOR, ""))
        if canonical is None:
            allowed = " ".join(self._emoji.values())
            raise ReactionNotAllowed(f"reaction {emoji[:8]!r} is not one of {allowed}")
        now_s = self._clock.monotonic_s()
        with self._lock:
            self._take_token(space_id, listener_id, now_s)
            second = math.floor(now_s)
            seconds = self._seconds.setdefault(space_id, {})
            seconds.setdefault(second, Counter())[canonical] += 1
            for old in [s for s in seconds if s <= second - self._window_s]:
                del seconds[old]
            self._prune_buckets(now_s)

    def _take_token(self, space_id: str, listener_id: str, now_s: float) -> None:
        bucket = self._buckets.get((space_id, listener_id))
        if bucket is None:
            bucket = self._buckets[(space_id, listener_id)] = _Bucket(self._burst, now_s)
        bucket.tokens = min(
            self._burst, bucket.tokens + (now_s - bucket.updated_s) * self._rate_per_s
        )
        bucket.updated_s = now_s
        if bucket.tokens < 1:
            wait_s = (1 - bucket.tokens) / self._rate_per_s
            raise ReactionRateLimited(
                f"a ticket may send {self._burst} reactions at once, then"
                f" {self._rate_per_s:g} a second",
                retry_after_s=wait_s,
            )
        bucket.tokens -= 1

    def _prune_buckets(self, now_s: float) -> None:
        """Forget buckets that have refilled: they act as if never used."""
        refill_s = self._burst / self._rate_per_s
        if now_s - self._pruned_at_s < refill_s:
            return
        self._pruned_at_s = now_s
        for key in [k for k, b in self._buckets.items() if now_s - b.updated_s >= refill_s]:
            del self._buckets[key]

    def counts(self, space_id: str) -> dict[str, int]:
        """`{emoji: count}` over the last `window_s` seconds."""
        newest = math.floor(self._clock.monotonic_s())
        total: Counter[str] = Counter()
        with self._lock:
            for second, counter in self._seconds.get(space_id, {}).items():
                if newest - self._window_s < second <= newest:
                    total.update(counter)
        return dict(total)

    def tracked_tickets(self) -> int:
        """How many rate-limit buckets are held (for /metrics and tests)."""
        return len(self._buckets)
