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
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

import redis

import gate_servers
from count_visibility import page_bound, time_to_count
from harness import prioritize_clients, write_results
from rostra.audience.presence import DEFAULT_FLUSH_INTERVAL_S, PresenceService
from rostra.clock import ManualClock
from rostra.config import Settings
from rostra.ids import new_space_id
from rostra.store.presence import PresenceStore, SlidingWindow
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
        timing = {"trials": args.trials, "seed": args.seeds, "heartbeats_per_s": HEARTBEATS_PER_S}
        memory_to_count = asyncio.run(time_to_count(memory_store, memory_space, ids, **timing))
        redis_to_count = asyncio.run(time_to_count(redis_store, redis_space, ids, **timing))
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
