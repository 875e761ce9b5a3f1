"""The presence store port: the honest live count, as HyperLogLog sketches over a sliding window.

Storage plane: imports only the foundation. Adapters sit beside it (presence_memory.py in process,
presence_redis.py shared by every gate worker) and pass one test suite.

The window is cut into time slices: a heartbeat goes into the sketch of its slice, and a count
merges the slices that cover the last window (the running slice plus `slices` whole ones before
it). So a live listener who heartbeats at least once a window is always counted, and one who stops
drops out within window + one slice (at most two windows). Older slices expire.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from rostra.errors import Unavailable

DEFAULT_WINDOW_S = 30.0
DEFAULT_SLICES = 6


def hll_relative_error(precision_bits: int) -> float:
    """Relative standard error (1σ) of a HyperLogLog estimate with 2**precision_bits registers."""
    return 1.04 / math.sqrt(2**precision_bits)


class PresenceUnavailable(Unavailable):
    """The presence store cannot be reached: the count is frozen until it returns."""

    type_slug = "presence-unavailable"
    title = "Live count unavailable"


@dataclass(frozen=True, slots=True)
class PresenceCount:
    """One reading of a space's count; `error` is the relative 1σ of `listeners`."""

    listeners: int
    error: float
    admitted: int
    peak: int
    counted_at_s: float


@dataclass(frozen=True, slots=True)
class PresenceBatch:
    """What one gate worker saw for one space since its last flush."""

    space_id: str
    heartbeats: Collection[str]
    admissions: Collection[str]
    at_s: float


@dataclass(frozen=True, slots=True)
class SlidingWindow:
    """How a window of `window_s` seconds is cut into `slices` slices, in whole milliseconds."""

    window_s: float = DEFAULT_WINDOW_S
    slices: int = DEFAULT_SLICES

    def __post_init__(self) -> None:
        if self.slices < 1 or self.slice_ms < 1:
            raise ValueError(
                f"a presence window of {self.window_s} s cannot be cut into {self.slices} slices"
            )

    @property
    def slice_ms(self) -> int:
        return round(self.window_s * 1000 / self.slices)

    @property
    def slice_s(self) -> float:
        return self.slice_ms / 1000

    def slice_of(self, now_s: float) -> int:
        """The index of the slice that holds this moment."""
        return math.floor(now_s * 1000) // self.slice_ms

    def counted(self, now_s: float) -> range:
        """The slices a count at this moment merges: the running one and `slices` before it."""
        current = self.slice_of(now_s)
        return range(current - self.slices, current + 1)

    def start_ms(self, index: int) -> int:
        return index * self.slice_ms


class PresenceStore(Protocol):
    """Distinct listeners per space over a sliding window, plus admissions and the peak.

    Every method raises PresenceUnavailable, and only that, when the backing service is away.
    """

    @property
    def window(self) -> SlidingWindow: ...

    def add_heartbeats(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        """Listeners seen alive at `now_s` (wall-clock seconds, shared by every gate node)."""

    def add_admissions(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        """Listeners who joined: they raise `admitted`, not `listeners`."""

    def add_batches(self, batches: Sequence[PresenceBatch]) -> None:
        """Heartbeats and admissions of many spaces in one round trip."""

    def count(self, space_id: str, now_s: float) -> PresenceCount:
        """The count over the window ending at `now_s`; raises the stored peak when beaten."""

    def memory_bytes(self, space_id: str, now_s: float) -> int:
        """Bytes the slice sketches of the window ending at `now_s` take (not admissions)."""

    def close(self) -> None: ...
