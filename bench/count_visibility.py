"""How long until a heartbeat is in the count: a gate worker's batcher with its own flusher task
on a store, heartbeats arriving around each trial, and the bound from there to a listener page.

Used by bench/count.py.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

from harness import ROOT, percentiles
from rostra.audience.presence import DEFAULT_FLUSH_INTERVAL_S, PresenceService
from rostra.clock import SystemClock
from rostra.store.presence import PresenceBatch, PresenceCount, PresenceStore, SlidingWindow
from rostra.web.audience_wiring import COUNT_CACHE_S

FLUSH_S = DEFAULT_FLUSH_INTERVAL_S
TRIAL_GAP_S = (0.05, 0.25)  # random pause before each trial: any phase of the flusher
TRIAL_TIMEOUT_S = 5.0
BACKGROUND_TICK_S = 0.01

Figures = dict[str, Any]


class ObservedStore:
    """The store, telling when a flush carrying one watched listener id has returned."""

    def __init__(self, store: PresenceStore) -> None:
        self.inner = store
        self._watched: str | None = None
        self._done = threading.Event()

    @property
    def window(self) -> SlidingWindow:
        return self.inner.window

    def watch(self, listener_id: str) -> threading.Event:
        self._done.clear()
        self._watched = listener_id
        return self._done

    def add_heartbeats(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        self.add_batches([PresenceBatch(space_id, listener_ids, (), now_s)])

    def add_admissions(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        self.add_batches([PresenceBatch(space_id, (), listener_ids, now_s)])

    def add_batches(self, batches: Sequence[PresenceBatch]) -> None:
        self.inner.add_batches(batches)
        watched = self._watched
        if watched is not None and any(watched in batch.heartbeats for batch in batches):
            self._watched = None
            self._done.set()

    def count(self, space_id: str, now_s: float) -> PresenceCount:
        return self.inner.count(space_id, now_s)

    def memory_bytes(self, space_id: str, now_s: float) -> int:
        return self.inner.memory_bytes(space_id, now_s)

    def close(self) -> None:
        self.inner.close()


async def _steady_heartbeats(
    service: PresenceService, space_id: str, ids: Sequence[str], rate_per_s: float
) -> None:
    """`rate_per_s` heartbeats per second from the known listeners, until cancelled."""
    started, sent = time.perf_counter(), 0
    while True:
        due = int((time.perf_counter() - started) * rate_per_s)
        for number in range(sent, due):
            service.record_heartbeat(space_id, ids[number % len(ids)])
        sent = due
        await asyncio.sleep(BACKGROUND_TICK_S)


async def _one_trial(
    service: PresenceService, observed: ObservedStore, space_id: str, listener_id: str
) -> tuple[float, float, PresenceCount]:
    """Seconds from the heartbeat accepted to its flush returned, then to the count read."""
    flushed = observed.watch(listener_id)
    accepted = time.perf_counter()
    service.record_heartbeat(space_id, listener_id)
    if not await asyncio.to_thread(flushed.wait, TRIAL_TIMEOUT_S):
        raise RuntimeError(f"no flush carried the heartbeat within {TRIAL_TIMEOUT_S} s")
    written = time.perf_counter()
    counted = await asyncio.to_thread(observed.count, space_id, time.time())
    return written - accepted, time.perf_counter() - written, counted


async def time_to_count(
    store: PresenceStore,
    space_id: str,
    ids: Sequence[str],
    *,
    trials: int,
    seed: int,
    heartbeats_per_s: float,
) -> Figures:
    """New listeners' heartbeats into the batcher, with its real flusher running and
    `heartbeats_per_s` from the known listeners around them."""
    observed = ObservedStore(store)
    service = PresenceService(observed, SystemClock())
    rng = random.Random(seed)
    to_flush, to_read, totals, counts = [], [], [], []
    async with asyncio.TaskGroup() as group:
        flusher = group.create_task(service.run_flusher(FLUSH_S))
        background = group.create_task(_steady_heartbeats(service, space_id, ids, heartbeats_per_s))
        try:
            for _ in range(trials):
                await asyncio.sleep(rng.uniform(*TRIAL_GAP_S))
                flush_s, read_s, counted = await _one_trial(
                    service, observed, space_id, rng.randbytes(16).hex()
                )
                to_flush.append(flush_s)
                to_read.append(read_s)
                totals.append(flush_s + read_s)
                counts.append(counted.listeners)
        finally:
            flusher.cancel()
            background.cancel()
    return {
        "trials": trials,
        "accepted_to_flushed_ms": _ms(to_flush),
        "count_read_ms": _ms(to_read),
        "accepted_to_counted_ms": _ms(totals),
        "listeners_while_measured": int(statistics.median(counts)),
        "background_heartbeats_per_s": round(heartbeats_per_s),
        "store_latency_s_last_flush": round(service.stats.store_latency_s, 5),
    }


def _ms(values: Sequence[float]) -> dict[str, float]:
    figures = percentiles([1000 * value for value in values], points=(50, 95))
    return {name: round(value, 2) for name, value in figures.items()}


def page_bound(time_to_count: Figures) -> Figures:
    """The longest a listener page can take to show a heartbeat: the measured store path, then
    the count's cache in the worker, state.json's max-age at an edge cache, and the page's
    polling period (the browser's own cache never answers: polls are further apart than max-age).
    """
    from rostra.web.routes.media import STATE_CACHE

    script = (ROOT / "src/rostra/web/static/state.js").read_text()
    poll_s = int(_constant(script, r"const POLL_MS = (\d+);")) / 1000
    jitter = float(_constant(script, r"const JITTER = ([\d.]+);"))
    max_age_s = float(_constant(STATE_CACHE, r"max-age=(\d+)"))
    store_s = time_to_count["accepted_to_counted_ms"]["max"] / 1000
    worst_poll_s = round(poll_s * (1 + jitter), 2)
    return {
        "store_path_max_s": round(store_s, 3),
        "worker_count_cache_s": COUNT_CACHE_S,
        "edge_max_age_s": max_age_s,
        "page_poll_max_s": worst_poll_s,
        "worst_case_s": round(store_s + COUNT_CACHE_S + max_age_s + worst_poll_s, 2),
        "worst_case_without_edge_s": round(store_s + COUNT_CACHE_S + worst_poll_s, 2),
        "mean_s": round(
            time_to_count["accepted_to_counted_ms"]["p50"] / 1000
            + (COUNT_CACHE_S + max_age_s + poll_s) / 2,
            2,
        ),
    }


def _constant(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"{pattern!r} not found: the bound needs updating")
    return match.group(1)
