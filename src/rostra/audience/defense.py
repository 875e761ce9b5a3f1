"""A space's defence: whether joins need a proof-of-work, and the admission rate and burst of its
token bucket. The deployment's defaults, overridden per space by a host or admin.

Audience plane. Every gate worker reads it through a cache of about a second, so a change
reaches all of them within that and costs the store one read per space per second per worker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rostra.clock import Clock
from rostra.errors import Unavailable
from rostra.store.admission_defense import DefenseOverrides, DefenseStore

DEFENSE_CACHE_S = 1.0
DEFENSE_CACHE_ENTRIES = 10_000
MAX_ADMISSION_RATE = 1_000_000.0
MAX_ADMISSION_BURST = 1_000_000


class PowMode(StrEnum):
    OFF = "off"
    ON = "on"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class SpaceDefense:
    pow: PowMode
    admission_rate: float
    admission_burst: int

    def to_json(self) -> dict[str, Any]:
        return {
            "pow": str(self.pow),
            "admission_rate": self.admission_rate,
            "admission_burst": self.admission_burst,
        }


def _pow_mode(text: str | None, default: PowMode) -> PowMode:
    try:
        return PowMode(text) if text is not None else default
    except ValueError:  # a value written by a newer version: the default holds
        return default


class DefenseService:
    """Reads (cached) and changes the defence of spaces."""

    def __init__(
        self,
        store: DefenseStore,
        defaults: SpaceDefense,
        clock: Clock,
        *,
        cache_s: float = DEFENSE_CACHE_S,
        cache_entries: int = DEFENSE_CACHE_ENTRIES,
    ) -> None:
        self._store = store
        self.defaults = defaults
        self._clock = clock
        self._cache_s = cache_s
        self._cache_entries = cache_entries
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, SpaceDefense]] = OrderedDict()

    def _resolved(self, overrides: DefenseOverrides) -> SpaceDefense:
        return SpaceDefense(
            pow=_pow_mode(overrides.pow, self.defaults.pow),
            admission_rate=overrides.admission_rate or self.defaults.admission_rate,
            admission_burst=overrides.admission_burst or self.defaults.admission_burst,
        )

    def get(self, space_id: str) -> SpaceDefense:
        now = self._clock.monotonic_s()
        with self._lock:
            cached = self._cache.get(space_id)
            if cached is not None and now - cached[0] < self._cache_s:
                return cached[1]
        try:
            defense = self._resolved(self._store.get(space_id))
        except Unavailable:
            # the store is away: what this worker knew, else the defaults, and ask again later
            return cached[1] if cached is not None else self.defaults
        self._remember(space_id, now, defense)
        return defense

    def update(
        self,
        space_id: str,
        *,
        pow: PowMode | None = None,
        admission_rate: float | None = None,
        admission_burst: int | None = None,
    ) -> SpaceDefense:
        if admission_rate is not None and not 0 < admission_rate <= MAX_ADMISSION_RATE:
            raise ValueError(f"admission_rate must be above 0 and at most {MAX_ADMISSION_RATE}")
        if admission_burst is not None and not 0 < admission_burst <= MAX_ADMISSION_BURST:
            raise ValueError(f"admission_burst must be 1 to {MAX_ADMISSION_BURST}")
        update = DefenseOverrides(
            pow=str(pow) if pow is not None else None,
            admission_rate=admission_rate,
            admission_burst=admission_burst,
        )
        defense = self._resolved(self._store.update(space_id, update))
        self._remember(space_id, self._clock.monotonic_s(), defense)
        return defense

    def _remember(self, space_id: str, now: float, defense: SpaceDefense) -> None:
        with self._lock:
            self._cache[space_id] = (now, defense)
            self._cache.move_to_end(space_id)
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)

    def close(self) -> None:
        self._store.close()
