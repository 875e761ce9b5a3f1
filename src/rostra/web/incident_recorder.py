"""The incident log's recorders: an ASGI middleware that counts every listener-side request by
space, endpoint and verdict (and the prefix of each rejected one), and the origin's sampler of
its media health; both flush once a second off the event loop.

Web plane. The middleware reads only the response's status and `X-Rostra-Problem` header (set by
problems.py), never a body. What it holds between flushes is bounded (audience/incident.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rostra.audience.incident import (
    SERVER_SPACE,
    IncidentBatch,
    classify,
    endpoint_of,
    is_rejected,
)
from rostra.config import Settings
from rostra.errors import RostraError
from rostra.store.incident import GaugeRow, IncidentRows, IncidentStore, IncidentStoreUnavailable
from rostra.store.incident_sqlite import DATABASE_NAME, SqliteIncidentStore
from rostra.web.problems import PROBLEM_HEADER
from rostra.web.source_limits import source_of

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
PRUNE_INTERVAL_S = 3600.0
DAY_S = 86_400
_PROBLEM_HEADER = PROBLEM_HEADER.lower().encode()
_POW_MODES = {"off": 0.0, "on": 1.0, "auto": 2.0}


def open_incident_stores(
    settings: Settings, *, has_data_folder: bool
) -> tuple[IncidentStore, list[IncidentStore]]:
    """The store this process writes its requests to (Redis when the deployment has it, so gate
    workers of every node add up; else the data folder's SQLite file), and the stores a report
    reads: those, and the data folder's file where the origin writes its media health."""
    local = SqliteIncidentStore(settings.data / DATABASE_NAME) if has_data_folder else None
    if settings.redis:
        from rostra.store.incident_redis import RedisIncidentStore

        shared = RedisIncidentStore(settings.redis, retention_s=retention_s(settings))
        return shared, [shared] if local is None else [local, shared]
    if local is None:
        raise ValueError("an incident log needs Redis or a data folder")
    return local, [local]


def retention_s(settings: Settings) -> int:
    return settings.incident_retention_days * DAY_S


def read_incident(stores: list[IncidentStore], space_id: str) -> IncidentRows:
    rows = IncidentRows()
    for store in stores:
        rows.extend(store.read(space_id))
    return rows


class IncidentRecorder:
    """The ASGI middleware. Starts its flusher with the app's lifespan and flushes at shutdown."""

    def __init__(self, app: ASGIApp, *, stores: list[IncidentStore], retention_s: int) -> None:
        self.app = app
        self._stores = stores
        self._retention_s = retention_s
        self._batch = IncidentBatch()
        self._flusher: asyncio.Task[None] | None = None
        self._gate: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._gate is None:
            self._gate = getattr(getattr(scope.get("app"), "state", None), "gate", False)
        seen: list[tuple[int, str | None]] = []

        async def send_seen(message: Message) -> None:
            if message["type"] == "http.response.start":
                problem = None
                for key, value in message.get("headers", []):
                    if key == _PROBLEM_HEADER:
                        problem = value.decode("latin-1")
                seen.append((int(message["status"]), problem))
                self._count(scope, *seen[0])
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        except Exception:
            if not seen:
                self._count(scope, 500, None)
            raise

    def _count(self, scope: Scope, status: int, problem: str | None) -> None:
        space_id, endpoint = endpoint_of(scope["path"])
        verdict = classify(endpoint, status, problem)
        # the prefix costs an address parse: only a rejected request's is kept
        prefix = source_of(scope).prefix if is_rejected(verdict) else ""
        self._batch.add(int(time.time()), space_id, endpoint, verdict, prefix)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup" and self._flusher is None:
                self._flusher = asyncio.create_task(self._run())
            elif message["type"] == "lifespan.shutdown" and self._flusher is not None:
                self._flusher.cancel()
                await asyncio.gather(self._flusher, return_exceptions=True)
                await self.flush()
            return message

        return wrapped

    async def _run(self) -> None:
        last_prune_s = 0.0
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await self.flush()
            if time.monotonic() - last_prune_s > PRUNE_INTERVAL_S:
                last_prune_s = time.monotonic()
                await asyncio.to_thread(self._prune)

    async def flush(self) -> None:
        spaces = self._batch.spaces
        rows = self._batch.drain()
        if spaces - {SERVER_SPACE}:
            # a space not in the defence cache is a storage read: off the loop (up to
            # MAX_SPACES_PER_BATCH of them a second, each named by a request)
            rows.gauges.extend(await asyncio.to_thread(self._defense_gauges, spaces))
        if rows:
            await asyncio.to_thread(write_rows, self._stores, rows)

    def _defense_gauges(self, spaces: frozenset[str]) -> list[GaugeRow]:
        """The admission rate, proof-of-work mode and difficulty of the spaces seen this second,
        as far as this gate has them."""
        defense = getattr(self._gate, "defense", None)
        if not callable(defense):
            return []
        second = int(time.time())
        gauges: list[GaugeRow] = []
        challenge = getattr(self._gate, "challenge", None)
        difficulties = getattr(challenge, "last_max_number", None)
        for space_id in spaces - {SERVER_SPACE}:
            try:
                settings = defense(space_id)
            except (RostraError, OSError, RuntimeError) as exc:
                log.warning("defence not sampled", extra={"space": space_id, "error": repr(exc)})
                continue
            rate = getattr(settings, "admission_rate", None)
            if isinstance(rate, int | float):
                gauges.append(GaugeRow(space_id, second, "admission_rate", float(rate)))
            mode = str(getattr(settings, "pow", ""))
            if mode in _POW_MODES:
                gauges.append(GaugeRow(space_id, second, "pow_mode", _POW_MODES[mode]))
            if isinstance(difficulties, Mapping) and space_id in difficulties:
                value = float(difficulties[space_id])
                gauges.append(GaugeRow(space_id, second, "difficulty", value))
        return gauges

    def _prune(self) -> None:
        before_s = int(time.time()) - self._retention_s
        for store in self._stores:
            try:
                store.prune(before_s)
            except (IncidentStoreUnavailable, OSError) as exc:
                log.warning("incident log not pruned", extra={"error": str(exc)[:200]})


def write_rows(stores: list[IncidentStore], rows: IncidentRows) -> None:
    for store in stores:
        try:
            store.add(rows)
        except IncidentStoreUnavailable as exc:
            log.warning("incident rows dropped", extra={"error": str(exc)[:200]})


def install_incident_log(app: FastAPI, settings: Settings, *, has_data_folder: bool) -> None:
    """Record every request of this app; outermost, so it sees the limits' 429s too."""
    writer, readers = open_incident_stores(settings, has_data_folder=has_data_folder)
    app.state.incident_stores = readers
    app.add_middleware(IncidentRecorder, stores=[writer], retention_s=retention_s(settings))


class OriginView(Protocol):
    """What the origin's sampler reads (rostra.media.origin.Origin has it)."""

    def space_ids(self) -> list[str]: ...

    def pipeline(self, space_id: str) -> Any: ...

    def health(self, space_id: str) -> Any: ...

    def ingest_totals(self, space_id: str) -> dict[str, int]: ...


def origin_gauges(origin: OriginView, second: int, monotonic_s: float) -> list[GaugeRow]:
    """Each space's media health this second: cumulative mixer and ingest counters (the report
    takes differences) and the age of the newest segment."""
    gauges: list[GaugeRow] = []
    for space_id in origin.space_ids():
        values: dict[str, float] = {}
        pipeline = origin.pipeline(space_id)
        stats = getattr(pipeline, "clock_stats", None)
        for name in ("late_ticks", "late_ticks_over_frame", "dropped_program_frames"):
            if stats is not None:
                values[name] = float(getattr(stats, name, 0))
        values["voices"] = float(getattr(pipeline, "voice_count", 0))
        health = origin.health(space_id)
        if health is not None:
            values["segments_lost"] = float(health.segments_lost)
            if health.last_segment_at_s is not None:
                values["segment_age_s"] = max(0.0, monotonic_s - health.last_segment_at_s)
        for fate, count in origin.ingest_totals(space_id).items():
            values[f"packets_{fate}"] = float(count)
        gauges.extend(GaugeRow(space_id, second, n, v) for n, v in values.items())
    return gauges


class OriginIncidentSampler:
    """The origin's part of the incident log: one row of media health per space and second."""

    def __init__(self, data: Path) -> None:
        self._path = data / DATABASE_NAME
        self._store: SqliteIncidentStore | None = None

    async def sample(self, origin: OriginView, monotonic_s: float) -> None:
        """Never raises for the store: the speakers' path must not wait on its log."""
        if self._store is None:
            try:
                self._store = await asyncio.to_thread(SqliteIncidentStore, self._path)
            except IncidentStoreUnavailable as exc:
                log.warning("origin incident log unavailable", extra={"error": str(exc)[:200]})
                return
        rows = IncidentRows(gauges=origin_gauges(origin, int(time.time()), monotonic_s))
        if rows:
            await asyncio.to_thread(write_rows, [self._store], rows)
