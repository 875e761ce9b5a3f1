"""The SQLite presence store with two worker processes writing one file at once: what a 100 ms
flush and a count read cost, how much a flusher thread takes from a gate's heartbeat path, and the
count's error at 1,300,000 listeners.

1. Flushes: two processes each flush a batch of fresh ids every 100 ms (`--ids` per batch, 1,000 by
   default, and 2,100: a worker at ~21,000 heartbeats/s) into one space and read the count every
   0.5 s, for `--seconds`; wall and CPU time per flush, time per count read, failed flushes.
   The same loop on the in-process store (MemoryPresenceStore) is the baseline.
2. Heartbeat path: in each of two processes a gate verifies tickets and records heartbeats as fast
   as one thread can, while a second thread flushes every 100 ms (as `run_flusher` does), on the
   SQLite store vs the in-process store; heartbeats/s per process. No HTTP: this isolates what
   the flush takes from the request path (GIL and CPU).
3. Error: 1,300,000 distinct listeners (random 128-bit, seeded), half heartbeating through each of
   two writer processes, every 20 s for one 60 s window in virtual time (3,250 ids per process
   per 100 ms flush); then the count over the window, against truth and the reported 1σ.

Run from the repository root:  .venv/bin/python bench/presence_sqlite.py [--seeds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from harness import write_results
from rostra.audience.gate import Gate
from rostra.audience.presence import PresenceService
from rostra.audience.tickets import TicketSigner
from rostra.clock import SystemClock
from rostra.config import Settings
from rostra.store.presence import PresenceBatch, PresenceStore, PresenceUnavailable, SlidingWindow
from rostra.store.presence_memory import MemoryPresenceStore
from rostra.store.presence_sqlite import SqlitePresenceStore
from rostra.store.reactions import MemoryReactionStore
from rostra.store.status import SpaceStatusStore

NAME = "presence_sqlite"
WRITERS = 2
LISTENERS = 1_300_000
SPACE = "benchspace00"
DEFAULTS = Settings()
WINDOW = SlidingWindow(DEFAULTS.presence_window, DEFAULTS.presence_slices)
INTERVAL_S = DEFAULTS.heartbeat_interval_s
FLUSH_S = 0.1
COUNT_EVERY_S = 0.5
TICKETS = 20_000
SECRET = "bench-presence-sqlite-secret-0123456789"  # noqa: S105 (a bench, not a deployment)

Figures = dict[str, Any]


def listener_ids(seed: int, count: int = LISTENERS) -> list[str]:
    rng = random.Random(seed)
    return [rng.randbytes(16).hex() for _ in range(count)]


def spread(values_ms: Sequence[float]) -> Figures:
    ordered = sorted(values_ms)
    if not ordered:
        return {"n": 0}

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.floor(share * len(ordered)))], 3)

    return {
        "n": len(ordered),
        "p50": at(0.5),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1], 3),
    }


def open_store(kind: str, path: str) -> PresenceStore:
    if kind == "sqlite":
        return SqlitePresenceStore(Path(path), WINDOW)
    return MemoryPresenceStore(WINDOW)


def flush_loop(
    kind: str, path: str, ids: int, seconds: float, number: int, barrier: Barrier
) -> Figures:
    """Flush `ids` fresh ids every 100 ms and read the count every 0.5 s, for `seconds`."""
    store, rng = open_store(kind, path), random.Random(number)
    flush_ms: list[float] = []
    flush_cpu_ms: list[float] = []
    count_ms: list[float] = []
    failed = 0
    barrier.wait(60)
    started = next_flush = next_count = time.monotonic()
    while time.monotonic() - started < seconds:
        batch = [rng.randbytes(16).hex() for _ in range(ids)]
        time.sleep(max(0.0, next_flush - time.monotonic()))
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            store.add_batches([PresenceBatch(SPACE, batch, (), time.time())])
        except PresenceUnavailable:
            failed += 1
        flush_ms.append(1000 * (time.perf_counter() - wall))
        flush_cpu_ms.append(1000 * (time.thread_time() - cpu))
        next_flush += FLUSH_S
        if time.monotonic() >= next_count:
            wall = time.perf_counter()
            store.count(SPACE, time.time())
            count_ms.append(1000 * (time.perf_counter() - wall))
            next_count += COUNT_EVERY_S
    store.close()
    return {
        "flush_ms": spread(flush_ms),
        "flush_cpu_ms": spread(flush_cpu_ms),
        "count_ms": spread(count_ms),
        "failed_flushes": failed,
    }


class _LiveStatus(SpaceStatusStore):
    def get_status(self, space_id: str) -> str | None:
        return "live"

    def set_status(self, space_id: str, status: str) -> None:
        return None


def heartbeat_loop(kind: str, path: str, seconds: float, number: int, barrier: Barrier) -> Figures:
    """Heartbeats/s through one gate with a flusher thread beside it, every 100 ms."""
    store = open_store(kind, path)
    clock = SystemClock()
    gate = Gate(
        tickets=TicketSigner(SECRET),
        presence=PresenceService(store, clock, count_ttl_s=0.5),
        reactions=MemoryReactionStore(),
        statuses=_LiveStatus(),
        clock=clock,
        ticket_ttl_s=3600,
        heartbeat_interval_s=20.0,
        reactions_per_10s=10,
    )
    tokens = [gate.join(SPACE).issued.token for _ in range(TICKETS)]
    gate.flush()
    is_running = threading.Event()
    is_running.set()
    flushes: list[float] = []
    flush_cpu: list[float] = []

    def flusher() -> None:
        while is_running.is_set():
            time.sleep(FLUSH_S)
            wall, cpu = time.perf_counter(), time.thread_time()
            gate.flush()
            flushes.append(1000 * (time.perf_counter() - wall))
            flush_cpu.append(1000 * (time.thread_time() - cpu))

    barrier.wait(60)
    thread = threading.Thread(target=flusher)
    thread.start()
    beats, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for token in tokens[beats % TICKETS : beats % TICKETS + 1_000]:
            gate.heartbeat(token, SPACE)
        beats += 1_000
    elapsed_s = time.perf_counter() - started
    is_running.clear()
    thread.join()
    store.close()
    return {
        "heartbeats_per_s": round(beats / elapsed_s),
        "flush_ms": spread(flushes),
        "flush_cpu_ms": spread(flush_cpu),
        # the flusher thread's CPU (mostly under the GIL) as a share of the run
        "flush_cpu_share": round(sum(flush_cpu) / 1000 / elapsed_s, 4),
        "flushed_ids_per_flush": round(gate.presence.stats.flushed_ids / max(1, len(flushes))),
    }


def window_writer(path: str, seed: int, part: int, start_s: float, barrier: Barrier) -> Figures:
    """Half of the listeners, each heartbeating every INTERVAL_S for one window, virtual time."""
    ids = listener_ids(seed)[part::WRITERS]
    store = SqlitePresenceStore(Path(path), WINDOW)
    flushes_per_interval = round(INTERVAL_S / FLUSH_S)
    per_flush = math.ceil(len(ids) / flushes_per_interval)
    flush_ms: list[float] = []
    barrier.wait(120)
    for round_number in range(round(WINDOW.window_s / INTERVAL_S)):
        for flush in range(flushes_per_interval):
            at_s = start_s + (round_number * flushes_per_interval + flush + 1) * FLUSH_S
            batch = ids[flush * per_flush : (flush + 1) * per_flush]
            wall = time.perf_counter()
            store.add_batches([PresenceBatch(SPACE, batch, batch, at_s)])
            flush_ms.append(1000 * (time.perf_counter() - wall))
    store.close()
    return {"ids_per_flush": per_flush, "flush_ms": spread(flush_ms)}


def _call(target: Callable[..., Figures], args: tuple[Any, ...], results: Any) -> None:
    results.put(target(*args))


def in_processes(
    target: Callable[..., Figures], argument_sets: list[tuple[Any, ...]]
) -> list[Figures]:
    """`target(*args, barrier)` in one fresh process per argument set, started together."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(argument_sets)), context.Queue()
    processes = [
        context.Process(target=_call, args=(target, (*args, barrier), results))
        for args in argument_sets
    ]
    for process in processes:
        process.start()
    figures = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    return figures


def measure_flushes(folder: Path, ids: int, seconds: float) -> Figures:
    path = str(folder / f"flush-{ids}.sqlite3")
    sqlite = in_processes(flush_loop, [("sqlite", path, ids, seconds, n) for n in range(WRITERS)])
    memory = in_processes(flush_loop, [("memory", path, ids, seconds, 0)])
    return {"ids_per_flush": ids, "sqlite_two_writers": sqlite, "memory_one_writer": memory[0]}


def measure_heartbeats(folder: Path, seconds: float, rounds: int = 2) -> Figures:
    """Alternately in process and on SQLite, so a load change on the machine hits both alike."""
    figures: Figures = {"memory_two_processes": [], "sqlite_two_processes": []}
    for number in range(rounds):
        for kind in ("memory", "sqlite"):
            path = str(folder / f"heartbeats-{number}.sqlite3")
            runs = [(kind, path, seconds, n) for n in range(WRITERS)]
            figures[f"{kind}_two_processes"] += in_processes(heartbeat_loop, runs)
    for kind in ("memory", "sqlite"):
        runs = figures[f"{kind}_two_processes"]
        rates = [run["heartbeats_per_s"] for run in runs]
        figures[f"{kind}_heartbeats_per_s_median"] = round(statistics.median(rates))
        shares = [run["flush_cpu_share"] for run in runs]
        figures[f"{kind}_flush_cpu_share_median"] = statistics.median(shares)
    return figures


def measure_error(folder: Path, seed: int) -> Figures:
    path = folder / f"error-{seed}.sqlite3"
    slice_s = WINDOW.slice_s
    start_s = (math.floor(time.time() / slice_s) - WINDOW.slices - 0.5) * slice_s
    started = time.perf_counter()
    writers = in_processes(window_writer, [(str(path), seed, n, start_s) for n in range(WRITERS)])
    wall_s = time.perf_counter() - started
    store = SqlitePresenceStore(path, WINDOW)
    end_s = start_s + WINDOW.window_s
    wall = time.perf_counter()
    counted = store.count(SPACE, end_s)
    count_ms = 1000 * (time.perf_counter() - wall)
    memory = store.memory_bytes(SPACE, end_s)
    store.close()
    return {
        "seed": seed,
        "truth": LISTENERS,
        "listeners": counted.listeners,
        "relative_error": round((counted.listeners - LISTENERS) / LISTENERS, 5),
        "admitted": counted.admitted,
        "admitted_relative_error": round((counted.admitted - LISTENERS) / LISTENERS, 5),
        "reported_sigma": round(counted.error, 5),
        "count_ms": round(count_ms, 2),
        "bytes_per_window": memory,
        "file_bytes": path.stat().st_size,
        "writers": writers,
        "wall_s": round(wall_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="sets of 1.3M ids, one window each")
    parser.add_argument("--seconds", type=float, default=10.0, help="per flush/heartbeat run")
    parser.add_argument("--rounds", type=int, default=2, help="heartbeat runs per store")
    args = parser.parse_args()
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="presence-sqlite-") as temporary:
        folder = Path(temporary)
        flushes = [measure_flushes(folder, ids, args.seconds) for ids in (1_000, 2_100)]
        for run in flushes:
            sqlite_runs = run["sqlite_two_writers"]
            print(
                f"{run['ids_per_flush']:,} ids/flush, 2 writers: flush p50/p95 "
                f"{[r['flush_ms']['p50'] for r in sqlite_runs]}/"
                f"{[r['flush_ms']['p95'] for r in sqlite_runs]} ms, count p50 "
                f"{[r['count_ms']['p50'] for r in sqlite_runs]} ms; in process: flush p50 "
                f"{run['memory_one_writer']['flush_ms']['p50']} ms"
            )
        heartbeats = measure_heartbeats(folder, args.seconds, args.rounds)
        print(
            "heartbeats/s per process with a 100 ms flusher: SQLite "
            f"{[r['heartbeats_per_s'] for r in heartbeats['sqlite_two_processes']]}, in process "
            f"{[r['heartbeats_per_s'] for r in heartbeats['memory_two_processes']]}; flusher "
            f"CPU share: SQLite {heartbeats['sqlite_flush_cpu_share_median']}, in process "
            f"{heartbeats['memory_flush_cpu_share_median']}"
        )
        errors = []
        for seed in range(1, args.seeds + 1):
            run = measure_error(folder, seed)
            errors.append(run)
            print(
                f"seed {seed}: {run['listeners']:,} counted of {LISTENERS:,}: "
                f"{100 * run['relative_error']:+.2f} % (1σ {100 * run['reported_sigma']:.2f} %); "
                f"count {run['count_ms']} ms"
            )
    relative = [run["relative_error"] for run in errors]
    result = {
        "listeners": LISTENERS,
        "writers": WRITERS,
        "window": {"window_s": WINDOW.window_s, "slices": WINDOW.slices, "flush_s": FLUSH_S},
        "flushes": flushes,
        "heartbeat_path": heartbeats,
        "error": {
            "relative_errors": relative,
            "rms": round(math.sqrt(statistics.fmean([e * e for e in relative])), 5),
            "max_abs": round(max(abs(e) for e in relative), 5),
            "reported_sigma": errors[0]["reported_sigma"],
            "runs": errors,
        },
        "load_average_at_start": load_at_start,
    }
    path = write_results(NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
