"""Two listener worker processes on one data folder, without Redis, share one audience: each counts
the listeners of both within the sketch's error, and sees the hands and reactions of both.

Each process builds its audience plane as `rostra serve` does (`build_audience` on the data
folder) and drives its own gate: joins, heartbeats, a hand, reactions, with the 100 ms flusher
running, both at the same time.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from rostra.clock import SystemClock
from rostra.config import Settings
from rostra.ids import new_space_id
from rostra.store.base import SpaceRecord
from rostra.store.sqlite import SqliteSpaceStore
from rostra.web.audience_wiring import build_audience, run_flusher

WORKERS = 2
LISTENERS_PER_WORKER = 5_000
HANDS_PER_WORKER = 3
SECRET = "workers-share-audience-secret-0123456789"
SPACES_DATABASE = "rostra.sqlite3"  # as `rostra serve` names it in the data folder
TIMEOUT_S = 60.0


async def _drive(settings: Settings, space_id: str, number: int, barrier: Barrier) -> Any:
    spaces = SqliteSpaceStore(settings.data / SPACES_DATABASE)
    parts = build_audience(settings, SystemClock(), spaces)
    gate = parts.gate
    flusher = asyncio.create_task(run_flusher(gate))
    await asyncio.to_thread(barrier.wait, TIMEOUT_S)  # both processes join and beat at once
    tokens = [gate.join(space_id).issued.token for _ in range(LISTENERS_PER_WORKER)]
    for start in range(0, len(tokens), 250):  # heartbeats over ~1 s, across several flushes
        for token in tokens[start : start + 250]:
            gate.heartbeat(token, space_id)
        await asyncio.sleep(0.05)
    hands = []
    for token in tokens[:HANDS_PER_WORKER]:
        gate.raise_hand(token, space_id)
        hands.append(gate.verify(token, space_id).listener_id)
        gate.react(token, space_id, "👏")
    await asyncio.sleep(0.3)  # the flusher's last rounds
    flusher.cancel()
    await asyncio.to_thread(gate.flush)
    await asyncio.to_thread(barrier.wait, TIMEOUT_S)  # the other worker has flushed too
    count = await gate.presence.read(space_id)
    seen = {
        "number": number,
        "listeners": count.listeners,
        "error": count.error,
        "admitted": count.admitted,
        "peak": count.peak,
        "my_hands": hands,
        "hands": [hand.listener_id for hand in gate.reactions.hands(space_id)],
        "tally": gate.reactions.tally(space_id, SystemClock().now().timestamp()),
    }
    parts.close()
    spaces.close()
    return seen


def _worker(data: str, space_id: str, number: int, barrier: Barrier, results: Any) -> None:
    settings = Settings(data=Path(data), signing_secret=SECRET)
    results.put(asyncio.run(_drive(settings, space_id, number, barrier)))


def _live_space(data: Path) -> str:
    spaces = SqliteSpaceStore(data / SPACES_DATABASE)
    space_id = new_space_id()
    spaces.add_space(
        SpaceRecord(id=space_id, title="Shared", status="live", created_at=datetime.now(UTC))
    )
    spaces.close()
    return space_id


def _run_workers(data: Path, space_id: str) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate workers
    barrier, results = context.Barrier(WORKERS), context.Queue()
    processes = [
        context.Process(target=_worker, args=(str(data), space_id, number, barrier, results))
        for number in range(WORKERS)
    ]
    for process in processes:
        process.start()
    seen: list[dict[str, Any]] = []
    deadline_s = time.monotonic() + TIMEOUT_S
    try:
        while len(seen) < len(processes):
            assert time.monotonic() < deadline_s, "a worker process did not report in time"
            try:
                seen.append(results.get(timeout=0.5))
            except queue.Empty:
                # a worker that died will never report: say so now, not at the deadline
                assert all(p.exitcode in (None, 0) for p in processes), "a worker process failed"
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    assert all(process.exitcode == 0 for process in processes)
    return sorted(seen, key=lambda worker: worker["number"])


def test_two_worker_processes_see_one_count_and_every_hand(tmp_path: Path) -> None:
    data = tmp_path / "data"
    space_id = _live_space(data)
    first, second = _run_workers(data, space_id)
    truth = WORKERS * LISTENERS_PER_WORKER
    for seen in (first, second):
        assert abs(seen["listeners"] - truth) <= 3 * seen["error"] * truth, seen["listeners"]
        assert abs(seen["admitted"] - truth) <= 3 * seen["error"] * truth, seen["admitted"]
        assert seen["peak"] >= seen["listeners"]
        assert sorted(seen["hands"]) == sorted(first["my_hands"] + second["my_hands"])
        assert seen["tally"] == {"👏": WORKERS * HANDS_PER_WORKER}
    assert first["listeners"] == second["listeners"]  # one state, not two halves
    assert first["hands"] == second["hands"]  # one queue, in one raise order
