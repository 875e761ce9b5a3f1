"""The count at 1,300,000 listeners: relative error against truth, the 1σ the store reports,
memory per window, heartbeats ingested per second, and the time until a heartbeat is in the count
— in process (MemoryPresenceStore, DataSketches HLL) and on a real Redis (pipelined PFADD).

A full window in virtual time: 1,300,000 distinct listener ids (random 128-bit, seeded) each
heartbeat once per default interval (20 s) for one default window (60 s), through a gate worker's
PresenceService batcher, flushed every 100 ms of virtual time: 6,500 ids a flush, 65,000
heartbeats/s, 3.9 million in all. Then the count over the window is read. Each seed is a new set
of ids (`--seeds`).

Then in real time, on the store holding those listeners, with the batcher's own flusher task
running and heartbeats arriving at 65,000/s: from a new listener's heartbeat accepted by the
batcher to a count read issued once the flush that carried it returned (`--trials` of them).

Redis runs pinned to core 0 and this process to core 1.

Run from the repository root:  .venv/bin/python bench/count.py [--seeds 10] [--trials 20]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import statistics
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

import redis

import gate_servers
from harness import ROOT, percentiles, prioritize_clients, write_results
from rostra.audience.presence import (
    DEFAULT_COUNT_TTL_S,
    DEFAULT_FLUSH_INTERVAL_S,
    PresenceService,
)
from rostra.clock import ManualClock, SystemClock
from rostra.config import Settings
from rostra.ids import new_space_id
from rostra.store.presence import PresenceBatch, PresenceCount, PresenceStore, SlidingWindow
from rostra.store.presence_memory import MemoryPresenceStore, sketch_max_bytes
from rostra.store.presence_redis import RedisPresenceStore

if TYPE_CHECKING:
    from tests.redis_server import RedisServer

NAME = "count"
LISTENERS = 1_300_000
TARGET_ERROR = 0.02
REDIS_CORE = 0
BENCH_CORE = 1
DEFAULTS = Settings()
WINDOW = SlidingWindow(DEFAULTS.presence_window, DEFAULTS.presence_slices)
INTERVAL_S = DEFAULTS.heartbeat_interval_s
FLUSH_S = DEFAULT_FLUSH_INTERVAL_S
HEARTBEATS_PER_S = LISTENERS / INTERVAL_S
TRIAL_GAP_S = (0.05, 0.25)  # random pause before each trial: any phase of the flusher
TRIAL_TIMEOUT_S = 5.0
BACKGROUND_TICK_S = 0.01

Figures = dict[str, Any]


def listener_ids(seed: int, count: int = LISTENERS) -> list[str]:
    """Distinct listener ids as the gate makes them (32 hex digits), from one seed."""
    rng = random.Random(seed)
    return [rng.randbytes(16).hex() for _ in range(count)]


def cpu_of(pid: int | None) -> float:
    return gate_servers.tree_cpu_s(pid) if pid is not None else 0.0


def full_window(
    store: PresenceStore, space_id: str, ids: Sequence[str], *, redis_pid: int | None
) -> Figures:
    """Every listener heartbeats every INTERVAL_S for one window, in virtual time; the count."""
    # start half a slice into a slice, a window ago: the heartbeats fill every slice of the window
    slice_s = WINDOW.slice_s
    start_s = (math.floor(time.time() / slice_s) - WINDOW.slices - 0.5) * slice_s
    clock = ManualClock(datetime.fromtimestamp(start_s, UTC))
    service = PresenceService(store, clock)
    flushes_per_interval = round(INTERVAL_S / FLUSH_S)
    per_flush = math.ceil(len(ids) / flushes_per_interval)
    rounds = round(WINDOW.window_s / INTERVAL_S)
    redis_cpu, cpu, wall = cpu_of(redis_pid), time.process_time(), time.perf_counter()
    for _ in range(rounds):
        for flush in range(flushes_per_interval):
            for listener_id in ids[flush * per_flush : (flush + 1) * per_flush]:
                service.record_heartbeat(space_id, listener_id)
            clock.advance(FLUSH_S)
            service.flush()
    wall_s = time.perf_counter() - wall
    cpu_s, redis_cpu_s = time.process_time() - cpu, cpu_of(redis_pid) - redis_cpu
    now_s = clock.now().timestamp()
    counted = store.count(space_id, now_s)
    heartbeats = rounds * len(ids)
    return {
        "truth": len(ids),
        "listeners": counted.listeners,
        "relative_error": round((counted.listeners - len(ids)) / len(ids), 5),
        "reported_sigma": round(counted.error, 5),
        "memory_bytes_per_window": store.memory_bytes(space_id, now_s),
        "slices_per_window": len(WINDOW.counted(now_s)),
        "heartbeats": heartbeats,
        "ids_per_flush": per_flush,
        "heartbeats_per_s": round(heartbeats / wall_s),
        "bench_cpu_s": round(cpu_s, 2),
        "redis_cpu_s": round(redis_cpu_s, 2),
        "wall_s": round(wall_s, 2),
        "flushed_ids": service.stats.flushed_ids,
        "dropped_ids": service.stats.dropped_ids,
    }


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


async def _steady_heartbeats(service: PresenceService, space_id: str, ids: Sequence[str]) -> None:
    """HEARTBEATS_PER_S heartbeats from the known listeners, until cancelled."""
    started, sent = time.perf_counter(), 0
    while True:
        due = int((time.perf_counter() - started) * HEARTBEATS_PER_S)
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
    store: PresenceStore, space_id: str, ids: Sequence[str], *, trials: int, seed: int
) -> Figures:
    """New listeners' heartbeats into the batcher, with its real flusher and 65,000/s around."""
    observed = ObservedStore(store)
    service = PresenceService(observed, SystemClock())
    rng = random.Random(seed)
    to_flush, to_read, totals, counts = [], [], [], []
    async with asyncio.TaskGroup() as group:
        flusher = group.create_task(service.run_flusher(FLUSH_S))
        background = group.create_task(_steady_heartbeats(service, space_id, ids))
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
        "background_heartbeats_per_s": round(HEARTBEATS_PER_S),
        "store_latency_s_last_flush": round(service.stats.store_latency_s, 5),
    }


def _ms(values: Sequence[float]) -> dict[str, float]:
    figures = percentiles([1000 * value for value in values], points=(50, 95))
    return {name: round(value, 2) for name, value in figures.items()}


def error_summary(runs: Sequence[Figures]) -> Figures:
    errors = [run["relative_error"] for run in runs]
    return {
        "seeds": len(errors),
        "relative_errors": errors,
        "mean": round(statistics.fmean(errors), 5),
        "rms": round(math.sqrt(statistics.fmean([e * e for e in errors])), 5),
        "max_abs": round(max(abs(e) for e in errors), 5),
        "reported_sigma": runs[0]["reported_sigma"],
        "within_target": all(abs(e) <= TARGET_ERROR for e in errors),
    }


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
        "worker_count_cache_s": DEFAULT_COUNT_TTL_S,
        "edge_max_age_s": max_age_s,
        "page_poll_max_s": worst_poll_s,
        "worst_case_s": round(store_s + DEFAULT_COUNT_TTL_S + max_age_s + worst_poll_s, 2),
        "worst_case_without_edge_s": round(store_s + DEFAULT_COUNT_TTL_S + worst_poll_s, 2),
        "mean_s": round(
            time_to_count["accepted_to_counted_ms"]["p50"] / 1000
            + (DEFAULT_COUNT_TTL_S + max_age_s + poll_s) / 2,
            2,
        ),
    }


def _constant(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"{pattern!r} not found: the bound needs updating")
    return match.group(1)


def in_process(ids: Sequence[str]) -> tuple[Figures, MemoryPresenceStore, str]:
    store, space_id = MemoryPresenceStore(WINDOW), new_space_id()
    return full_window(store, space_id, ids, redis_pid=None), store, space_id


def on_redis(redis_server: RedisServer, ids: Sequence[str]) -> tuple[Figures, PresenceStore, str]:
    assert redis_server.process is not None
    store, space_id = RedisPresenceStore(redis_server.url, WINDOW), new_space_id()
    run = full_window(store, space_id, ids, redis_pid=redis_server.process.pid)
    client = redis.Redis.from_url(redis_server.url)
    run["slice_keys"] = sum(1 for _ in client.scan_iter(f"rostra:presence:{{{space_id}}}:slice:*"))
    client.close()
    run["redis_cpu_us_per_heartbeat"] = round(1e6 * run["redis_cpu_s"] / run["heartbeats"], 3)
    return run, store, space_id


def _print_run(kind: str, seed: int, run: Figures) -> None:
    print(
        f"  seed {seed} {kind:10s} {run['listeners']:>9,} counted  "
        f"error {100 * run['relative_error']:+.2f} % (1σ {100 * run['reported_sigma']:.2f} %)  "
        f"{run['memory_bytes_per_window']:,} B/window  {run['heartbeats_per_s']:,} heartbeats/s"
    )


def store_figures(runs: list[Figures], to_count: Figures, description: str) -> Figures:
    memory = runs[-1]["memory_bytes_per_window"]
    slices = runs[-1]["slices_per_window"]
    figures: Figures = {
        "store": description,
        "error": error_summary(runs),
        "memory_bytes_per_window": memory,
        "memory_bytes_per_slice": round(memory / slices),
        "heartbeats_per_s_median": round(statistics.median(r["heartbeats_per_s"] for r in runs)),
        "time_to_count": to_count,
        "runs": runs,
    }
    return figures


def measure(args: argparse.Namespace) -> Figures:
    os.sched_setaffinity(0, {BENCH_CORE})
    memory_runs: list[Figures] = []
    redis_runs: list[Figures] = []
    with gate_servers.pinned_redis(REDIS_CORE) as redis_server:
        for seed in range(1, args.seeds + 1):
            ids = listener_ids(seed)
            memory_run, memory_store, memory_space = in_process(ids)
            memory_runs.append(memory_run)
            _print_run("in process", seed, memory_run)
            redis_run, redis_store, redis_space = on_redis(redis_server, ids)
            redis_runs.append(redis_run)
            _print_run("Redis", seed, redis_run)
        print(f"time to count: {args.trials} trials per store, 65,000 heartbeats/s around them")
        memory_to_count = asyncio.run(
            time_to_count(memory_store, memory_space, ids, trials=args.trials, seed=args.seeds)
        )
        redis_to_count = asyncio.run(
            time_to_count(redis_store, redis_space, ids, trials=args.trials, seed=args.seeds)
        )
        redis_store.close()
    memory = store_figures(
        memory_runs, memory_to_count, "MemoryPresenceStore: DataSketches HLL_4, lg_k 14, per slice"
    )
    memory["memory_bound_bytes_per_window"] = (
        sketch_max_bytes() * memory_runs[-1]["slices_per_window"]
    )
    on_redis_figures = store_figures(
        redis_runs, redis_to_count, "RedisPresenceStore: PFADD per slice (pipelined), PFCOUNT"
    )
    on_redis_figures["redis_cpu_us_per_heartbeat_median"] = statistics.median(
        run["redis_cpu_us_per_heartbeat"] for run in redis_runs
    )
    return {
        "software": software(),
        "listeners": LISTENERS,
        "window": {
            "window_s": WINDOW.window_s,
            "slices": WINDOW.slices,
            "slice_s": WINDOW.slice_s,
            "heartbeat_interval_s": INTERVAL_S,
            "flush_interval_s": FLUSH_S,
        },
        "target_relative_error": TARGET_ERROR,
        "in_process": memory,
        "redis": on_redis_figures,
        "to_the_page": {
            "in_process": page_bound(memory_to_count),
            "redis": page_bound(redis_to_count),
        },
    }


def software() -> dict[str, str]:
    versions = {name: metadata.version(name) for name in ("datasketches", "redis")}
    versions["redis-server"] = gate_servers.redis_version()
    return versions


def print_summary(result: Figures) -> None:
    print()
    for kind in ("in_process", "redis"):
        figures = result[kind]
        error = figures["error"]
        timing = figures["time_to_count"]["accepted_to_counted_ms"]
        print(
            f"{kind:10s}: error rms {100 * error['rms']:.2f} %, "
            f"max |{100 * error['max_abs']:.2f}| % over {error['seeds']} seeds "
            f"(reported 1σ {100 * error['reported_sigma']:.2f} %, "
            f"target ≤ 2 %: {'met' if error['within_target'] else 'MISSED'}); "
            f"{figures['memory_bytes_per_window']:,} B per window; "
            f"{figures['heartbeats_per_s_median']:,} heartbeats/s; "
            f"heartbeat → count p50 {timing['p50']} ms, max {timing['max']} ms"
        )
    print(f"to the page, worst case: {result['to_the_page']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="sets of 1.3M ids, one window each")
    parser.add_argument("--trials", type=int, default=20, help="time-to-count trials per store")
    parser.add_argument(
        "--same-priority", action="store_true", help="do not run this process ahead of Redis"
    )
    args = parser.parse_args()
    if args.seeds < 1 or args.trials < 1:
        parser.error("--seeds and --trials must be at least 1")
    niceness = prioritize_clients(not args.same_priority)
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print(f"count bench: {LISTENERS:,} listeners, {args.seeds} seeds, Redis on core {REDIS_CORE}")
    result = measure(args)
    result["load_average_at_start"] = load_at_start
    result["niceness"] = niceness
    result["pinning"] = {"redis": REDIS_CORE, "bench": BENCH_CORE}
    print_summary(result)
    path = write_results(NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
