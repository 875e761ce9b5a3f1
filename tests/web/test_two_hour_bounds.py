"""What a two-hour event can grow, bounded: the per-source limit counters kept in memory, the
incident recorder's rows between flushes, and the proof-of-work state kept per space. Each is
driven with far more distinct keys than it may hold, through the real classes (the `limits`
package, SQLite, ALTCHA)."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from pathlib import Path

from limits import parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import Message, Receive, Scope, Send

from rostra.audience.challenge import (
    MAX_TRACKED_SPACES,
    ChallengeBook,
    PowPolicy,
    ProofOfWork,
)
from rostra.audience.defense import PowMode
from rostra.audience.incident import (
    MAX_PREFIXES_PER_SPACE,
    MAX_SPACES_PER_BATCH,
    OTHER_PREFIXES,
    SERVER_SPACE,
    TOP_PREFIXES,
)
from rostra.clock import ManualClock
from rostra.config import Settings
from rostra.errors import ChallengeRequired
from rostra.store.challenge_spent import MemorySpentSolutions
from rostra.store.incident_sqlite import SqliteIncidentStore
from rostra.web.incident_recorder import IncidentRecorder
from rostra.web.problems import PROBLEM_HEADER
from rostra.web.source_limits import BoundedMemoryStorage, SourceLimits

SECRET = "two-hour-bounds-secret"


def address(n: int) -> str:
    """The n-th of many client addresses, over many /24 prefixes (2001:db8::/32 for IPv6)."""
    if n % 2:
        return f"2001:db8:{n >> 16:x}:{n & 0xFFFF:x}::1"
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def http_scope(path: str, client: str, method: str = "POST") -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [],
        "client": (client, 40_000),
        "query_string": b"",
    }


async def call(app: object, scope: Scope) -> int:
    """One request through an ASGI app; its status."""
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(int(message["status"]))

    await app(scope, receive, send)  # type: ignore[operator]
    return statuses[0]


async def no_content(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_source_counters_are_capped_and_the_oldest_forgotten_first() -> None:
    async def flood() -> None:
        storage = BoundedMemoryStorage(max_counters=1_000)
        limiter = SlidingWindowCounterRateLimiter(storage)
        item = parse("3/minute")
        first = address(0)
        assert all([await limiter.hit(item, "join", "address", first) for _ in range(3)])
        assert not await limiter.hit(item, "join", "address", first)  # the limit holds
        for n in range(1, 5_000):
            assert await limiter.hit(item, "join", "address", address(n))
            assert storage.counters <= 1_000
            assert len(storage.storage) <= 1_000
        # the oldest counter went first: the first address has a fresh allowance (lenient, never
        # stricter); the newest are still counted
        assert await limiter.hit(item, "join", "address", first)
        newest = address(4_999)
        assert all([await limiter.hit(item, "join", "address", newest) for _ in range(2)])
        assert not await limiter.hit(item, "join", "address", newest)

    asyncio.run(flood())


def test_source_counters_expire_two_windows_after_their_source_went_quiet() -> None:
    async def flood() -> None:
        storage = BoundedMemoryStorage()
        limiter = SlidingWindowCounterRateLimiter(storage)
        item = parse("5/second")
        for n in range(2_000):
            await limiter.hit(item, "write", "address", address(n))
        assert storage.counters == 2_000
        await asyncio.sleep(2.1)  # a counter lives two windows (this one and the next)
        await limiter.hit(item, "write", "address", "192.0.2.1")
        assert storage.counters == 1
        assert len(storage.storage) == len(storage.expirations) == 1

    asyncio.run(flood())


def test_a_flood_of_new_addresses_leaves_each_limited_write_cheap() -> None:
    """`limits`' own memory storage scanned every counter on the event loop after each hit:
    21 ms a hit at 100,000 counters. Through the real middleware, with 40,000 counters (a flood of
    new addresses, or a large event's heartbeats), a write stays in microseconds."""
    settings = Settings(
        limits_exempt=(), limit_write_ip="600/minute", limit_write_prefix="1000000/minute"
    )
    limits = SourceLimits(no_content, settings=settings)
    path = "/api/v1/spaces/abcdefghijkl/heartbeat"

    async def flood() -> float:
        for n in range(20_000):
            assert await call(limits, http_scope(path, address(n))) == 204
        await asyncio.sleep(0.05)  # any expiry task the storage scheduled runs here
        started = time.perf_counter()
        for n in range(20_000, 21_000):
            assert await call(limits, http_scope(path, address(n))) == 204
            await asyncio.sleep(0)
        return time.perf_counter() - started

    elapsed_s = asyncio.run(flood())
    assert elapsed_s < 1.0, f"1,000 limited writes took {elapsed_s:.2f} s"


async def problem_401(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(PROBLEM_HEADER.lower().encode(), b"ticket-invalid")]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def test_incident_rows_between_flushes_are_bounded_whatever_the_flood(tmp_path: Path) -> None:
    """Rejected heartbeats to 100 spaces, and from 3,000 prefixes to one, in one flush: the
    recorder keeps at most MAX_SPACES_PER_BATCH spaces (the rest count as the server's) and
    MAX_PREFIXES_PER_SPACE prefixes a space and second, and writes the TOP_PREFIXES of each."""
    store = SqliteIncidentStore(tmp_path / "incident.db")
    recorder = IncidentRecorder(problem_401, stores=[store], retention_s=86_400)
    spaces = [f"sp{n:010d}" for n in range(100)]

    async def flood() -> int:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(3_000):
            path = f"/api/v1/spaces/{spaces[n % len(spaces)]}/heartbeat"
            assert await call(recorder, http_scope(path, address(n))) == 401
        for n in range(3_000):  # new prefixes all: 10.0.0.0/24 holds one of them
            path = f"/api/v1/spaces/{spaces[0]}/heartbeat"
            assert await call(recorder, http_scope(path, f"10.{n >> 8}.{n & 255}.1")) == 401
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        await recorder.flush()
        return held

    started_s = int(time.time())
    held_bytes = asyncio.run(flood())
    seconds = int(time.time()) - started_s + 1
    # a second's worth at most (MAX_SPACES_PER_BATCH x MAX_PREFIXES_PER_SPACE entries is about
    # 10 MB), for each second the flood spanned
    assert held_bytes < 12_000_000 * seconds, f"{held_bytes} bytes held between flushes"
    written = [store.read(space) for space in spaces]
    assert sum(1 for rows in written if rows.counts) == MAX_SPACES_PER_BATCH
    assert sum(count.count for count in store.read(SERVER_SPACE).counts) > 0
    top = written[0].prefixes
    assert 0 < len(top) <= TOP_PREFIXES * seconds
    # every request counted, though most of their prefixes were past MAX_PREFIXES_PER_SPACE
    assert sum(c.count for c in written[0].counts) == 3_000 // len(spaces) + 3_000
    others = sum(p.count for p in top if p.prefix == OTHER_PREFIXES)
    assert others >= 3_000 - MAX_PREFIXES_PER_SPACE * seconds
    # everything drained: a second flush writes nothing new
    asyncio.run(recorder.flush())
    assert store.read(spaces[0]).prefixes == top


def test_proof_of_work_state_per_space_is_capped_at_max_tracked_spaces() -> None:
    clock = ManualClock()
    pow_check = ProofOfWork(
        ChallengeBook(SECRET, MemorySpentSolutions(), clock), PowPolicy(clock), mode=PowMode.ON
    )
    flood = MAX_TRACKED_SPACES + 2_000
    for n in range(flood):
        try:
            pow_check.check(f"sp{n:010d}", None)
        except ChallengeRequired:
            pass
        else:
            raise AssertionError("a space with proof-of-work on asked for none")
    assert len(pow_check.last_max_number) == MAX_TRACKED_SPACES
    assert len(pow_check.policy._spaces) == MAX_TRACKED_SPACES  # the bound itself
    # the oldest went first; the newest is remembered
    assert f"sp{0:010d}" not in pow_check.last_max_number
    assert f"sp{flood - 1:010d}" in pow_check.last_max_number
