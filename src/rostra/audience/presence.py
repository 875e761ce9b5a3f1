"""Presence in a gate worker: batches heartbeats and joins into the presence store, reads the count.

Audience plane. Requests only touch in-memory sets (a ticket seen twice in a batch is written once);
a timer flushes them to the store about every 100 ms. Reads are cached for about a second, and when
the store is away the last good count is served with `stale=True` while writes wait, bounded, to be
sent once it returns.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rostra.clock import Clock
from rostra.store.presence import PresenceBatch, PresenceCount, PresenceStore, PresenceUnavailable

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 0.1
DEFAULT_COUNT_TTL_S = 1.0
DEFAULT_RETRY_AFTER_S = 1.0
DEFAULT_MAX_PENDING_IDS = 1_000_000


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """The count as `state.json` shows it; `stale` when the store could not be read just now."""

    listeners: int
    error: float
    admitted: int
    peak: int
    counted_at: datetime | None
    is_stale: bool


@dataclass(slots=True)
class PresenceStats:
    """Counters for /metrics."""

    flushed_ids: int = 0
    dropped_ids: int = 0
    failed_flushes: int = 0
    store_latency_s: float = 0.0


@dataclass(slots=True)
class _Pending:
    at_s: float
    heartbeats: set[str] = field(default_factory=set)
    admissions: set[str] = field(default_factory=set)

    def freeze(self, space_id: str) -> PresenceBatch:
        return PresenceBatch(space_id, self.heartbeats, self.admissions, self.at_s)


@dataclass(frozen=True, slots=True)
class _Cached:
    snapshot: PresenceSnapshot
    read_at_s: float


def _size(batch: PresenceBatch) -> int:
    return len(batch.heartbeats) + len(batch.admissions)


class PresenceService:
    """One per gate worker, between the request handlers and the presence store."""

    def __init__(
        self,
        store: PresenceStore,
        clock: Clock,
        *,
        count_ttl_s: float = DEFAULT_COUNT_TTL_S,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
        max_pending_ids: int = DEFAULT_MAX_PENDING_IDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._count_ttl_s = count_ttl_s
        self._retry_after_s = retry_after_s
        self._max_pending_ids = max_pending_ids
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._retry: list[PresenceBatch] = []
        self._pending_ids = 0
        self._cache: dict[str, _Cached] = {}
        self._unavailable_until_s = float("-inf")
        self.stats = PresenceStats()

    def _wall_s(self) -> float:
        return self._clock.now().timestamp()

    def _is_store_resting(self) -> bool:
        return self._clock.monotonic_s() < self._unavailable_until_s

    def _mark_unavailable(self, error: PresenceUnavailable) -> None:
        self._unavailable_until_s = self._clock.monotonic_s() + self._retry_after_s
        log.warning("presence store unavailable", extra={"error": error.detail})

    def _record(self, space_id: str, listener_id: str, *, is_heartbeat: bool) -> None:
        with self._lock:
            pending = self._pending.get(space_id)
            if pending is None:
                pending = self._pending[space_id] = _Pending(at_s=self._wall_s())
            ids = pending.heartbeats if is_heartbeat else pending.admissions
            if listener_id in ids:
                return
            if self._pending_ids >= self._max_pending_ids:
                self.stats.dropped_ids += 1
                return
            ids.add(listener_id)
            self._pending_ids += 1

    def record_heartbeat(self, space_id: str, listener_id: str) -> None:
        self._record(space_id, listener_id, is_heartbeat=True)

    def record_admission(self, space_id: str, listener_id: str) -> None:
        self._record(space_id, listener_id, is_heartbeat=False)

    def _take(self) -> list[PresenceBatch]:
        """Everything waiting, minus heartbeats too old to matter any more."""
        oldest_s = self._wall_s() - self._store.window.window_s
        kept = []
        with self._lock:
            batches = self._retry + [p.freeze(space) for space, p in self._pending.items()]
            self._retry, self._pending, self._pending_ids = [], {}, 0
            for batch in batches:
                if batch.at_s < oldest_s and batch.heartbeats:
                    self.stats.dropped_ids += len(batch.heartbeats)
                    batch = PresenceBatch(batch.space_id, (), batch.admissions, batch.at_s)
                if _size(batch):
                    kept.append(batch)
        return kept

    def _give_back(self, batches: list[PresenceBatch]) -> None:
        with self._lock:
            room = self._max_pending_ids - self._pending_ids
            for batch in batches:
                if _size(batch) <= room:
                    self._retry.append(batch)
                    self._pending_ids += _size(batch)
                    room -= _size(batch)
                else:
                    self.stats.dropped_ids += _size(batch)

    def flush(self) -> int:
        """Send what the handlers recorded to the store; the number of ids sent."""
        batches = self._take()
        if not batches:
            return 0
        if self._is_store_resting():
            self._give_back(batches)
            return 0
        started_s = self._clock.monotonic_s()
        try:
            self._store.add_batches(batches)
        except PresenceUnavailable as error:
            self.stats.failed_flushes += 1
            self._mark_unavailable(error)
            self._give_back(batches)
            return 0
        self.stats.store_latency_s = self._clock.monotonic_s() - started_s
        sent = sum(_size(batch) for batch in batches)
        self.stats.flushed_ids += sent
        return sent

    async def run_flusher(self, interval_s: float = DEFAULT_FLUSH_INTERVAL_S) -> None:
        """Flush every `interval_s` until cancelled; the store call runs off the event loop."""
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.flush)

    def _fresh(self, space_id: str) -> PresenceSnapshot | None:
        cached = self._cache.get(space_id)
        if cached is not None and self._clock.monotonic_s() - cached.read_at_s < self._count_ttl_s:
            return cached.snapshot
        return None

    def _stale(self, space_id: str) -> PresenceSnapshot:
        cached = self._cache.get(space_id)
        if cached is None:
            return PresenceSnapshot(0, 0.0, 0, 0, counted_at=None, is_stale=True)
        last = cached.snapshot
        return PresenceSnapshot(
            last.listeners, last.error, last.admitted, last.peak, last.counted_at, is_stale=True
        )

    def _read(self, space_id: str) -> PresenceSnapshot:
        if self._is_store_resting():
            return self._stale(space_id)
        try:
            count = self._store.count(space_id, self._wall_s())
        except PresenceUnavailable as error:
            self._mark_unavailable(error)
            return self._stale(space_id)
        return _snapshot(count)

    def snapshot(self, space_id: str) -> PresenceSnapshot:
        """The count of a space, read from the store at most once per `count_ttl_s`.

        Blocks on the store when the cached count is old; from the event loop, use `read`.
        """
        fresh = self._fresh(space_id)
        if fresh is not None:
            return fresh
        with self._count_lock:
            fresh = self._fresh(space_id)
            if fresh is not None:
                return fresh
            snapshot = self._read(space_id)
            self._cache[space_id] = _Cached(snapshot, self._clock.monotonic_s())
            return snapshot

    def last_counts(self) -> dict[str, PresenceSnapshot]:
        """The last count read for each space (for /metrics: never touches the store)."""
        return {space_id: cached.snapshot for space_id, cached in list(self._cache.items())}

    async def read(self, space_id: str) -> PresenceSnapshot:
        """`snapshot` for the event loop: cached counts at once, store reads in a thread."""
        fresh = self._fresh(space_id)
        if fresh is not None:
            return fresh
        return await asyncio.to_thread(self.snapshot, space_id)


def _snapshot(count: PresenceCount) -> PresenceSnapshot:
    return PresenceSnapshot(
        listeners=count.listeners,
        error=count.error,
        admitted=count.admitted,
        peak=count.peak,
        counted_at=datetime.fromtimestamp(count.counted_at_s, UTC),
        is_stale=False,
    )
