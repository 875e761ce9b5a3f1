"""In-process presence store: HyperLogLog sketches per time slice, the embedded default.

Storage plane. Sketches come from Apache DataSketches (`datasketches`, the Apache Software
Foundation's C++ library with Python bindings), chosen over `datasketch` and the small HLL packages:
it is maintained by a foundation and used in Druid and Spark, updates cost ~0.1 µs (the pure-Python
`datasketch` HyperLogLog: ~1 µs), its 4-bit registers hold a dense sketch of 2**14 registers in
~16 KiB at precision 15 (`datasketch`: 32 KiB), small sets stay in a sparse, near-exact list mode,
and unions of slices are built in. Precision 15 gives a relative standard error of 1.04/√32768 ≈
0.57 %, so the 2 % target holds at 3.5σ (precision 14, Redis' fixed choice, gives 0.81 %: 2.5σ).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import datasketches

from rostra.store.presence import (
    PresenceBatch,
    PresenceCount,
    SlidingWindow,
    hll_relative_error,
)

PRECISION_BITS = 15
_SKETCH_TYPE = datasketches.tgt_hll_type.HLL_4


def _new_sketch() -> Any:
    return datasketches.hll_sketch(PRECISION_BITS, _SKETCH_TYPE)


def sketch_max_bytes() -> int:
    """The most one slice's sketch can take, whatever the audience."""
    return int(
        datasketches.hll_sketch.get_max_updatable_serialization_bytes(PRECISION_BITS, _SKETCH_TYPE)
    )


class _SpacePresence:
    __slots__ = ("admitted", "peak", "slices")

    def __init__(self) -> None:
        self.slices: dict[int, Any] = {}
        self.admitted: Any = _new_sketch()
        self.peak = 0


class MemoryPresenceStore:
    """Presence of the spaces of one process; counts only what this process saw."""

    def __init__(self, window: SlidingWindow | None = None) -> None:
        self._window = window or SlidingWindow()
        self._lock = threading.Lock()
        self._spaces: dict[str, _SpacePresence] = {}
        self._error = hll_relative_error(PRECISION_BITS)

    @property
    def window(self) -> SlidingWindow:
        return self._window

    def _space(self, space_id: str) -> _SpacePresence:
        space = self._spaces.get(space_id)
        if space is None:
            space = self._spaces[space_id] = _SpacePresence()
        return space

    def _expire(self, space: _SpacePresence, now_s: float) -> None:
        oldest = self._window.counted(now_s).start
        for index in [index for index in space.slices if index < oldest]:
            del space.slices[index]

    def add_heartbeats(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        if not listener_ids:
            return
        index = self._window.slice_of(now_s)
        with self._lock:
            space = self._space(space_id)
            self._expire(space, now_s)
            sketch = space.slices.get(index)
            if sketch is None:
                sketch = space.slices[index] = _new_sketch()
            for listener_id in listener_ids:
                sketch.update(listener_id)

    def add_admissions(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        if not listener_ids:
            return
        with self._lock:
            admitted = self._space(space_id).admitted
            for listener_id in listener_ids:
                admitted.update(listener_id)

    def add_batches(self, batches: Sequence[PresenceBatch]) -> None:
        for batch in batches:
            self.add_heartbeats(batch.space_id, list(batch.heartbeats), batch.at_s)
            self.add_admissions(batch.space_id, list(batch.admissions), batch.at_s)

    def count(self, space_id: str, now_s: float) -> PresenceCount:
        with self._lock:
            space = self._spaces.get(space_id)
            if space is None:
                return PresenceCount(0, self._error, 0, 0, counted_at_s=now_s)
            self._expire(space, now_s)
            union = datasketches.hll_union(PRECISION_BITS)
            for index in self._window.counted(now_s):
                sketch = space.slices.get(index)
                if sketch is not None:
                    union.update(sketch)
            listeners = round(union.get_estimate())
            space.peak = max(space.peak, listeners)
            return PresenceCount(
                listeners=listeners,
                error=self._error,
                admitted=round(space.admitted.get_estimate()),
                peak=space.peak,
                counted_at_s=now_s,
            )

    def memory_bytes(self, space_id: str, now_s: float) -> int:
        with self._lock:
            space = self._spaces.get(space_id)
            if space is None:
                return 0
            return sum(
                int(space.slices[index].get_updatable_serialization_bytes())
                for index in self._window.counted(now_s)
                if index in space.slices
            )

    def close(self) -> None:
        with self._lock:
            self._spaces.clear()
