"""Rostra as an Icecast source: each live space's program fed to an Icecast 2.4 server as mounts
`/ID.aac` (ADTS) and `/ID.opus` (Ogg/Opus), the same bytes as `/live/ID/stream.aac` and `.opus`.

Web plane (one listener worker). The feeder runs in a listener worker, not in the origin: to the
origin it is one more progressive feed per mount, the path it already serves to every worker with
a bounded queue, so an Icecast that stalls or vanishes can cost the speakers nothing. One worker
of the machine feeds (it holds a lock file in the run folder; if it dies, another takes over).
It joins the origin client and the space store, so it sits here beside `feeds.py`, the workers'
other reader of the origin's feeds, not in media/ (which may import neither).

The source protocol is Icecast 2.4's HTTP PUT: Basic auth, `Content-Type`, `ice-name`,
`ice-public: 0`, `Expect: 100-continue`, and then a body without a length that lasts as long as
the program. A feed that fails (Icecast down, the source dropped, the origin restarting) comes
back after 1 s, doubling to 30 s, with jitter; a feed whose space is no longer live stops.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx

from rostra import __version__
from rostra.config import IcecastTarget, Settings, parse_icecast_url
from rostra.errors import SpaceNotLive
from rostra.stage.spaces import SpaceStatus
from rostra.store.base import SpaceStore
from rostra.web.origin_client import FRAME_HEADER, OriginClient
from rostra.web.routes.media import icy_name

log = logging.getLogger(__name__)

CONTENT_TYPES = {"aac": "audio/aac", "opus": "application/ogg"}
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
# a feed that carried the program this long starts its next backoff from the minimum again
HEALTHY_AFTER_S = 5.0
CONNECT_TIMEOUT_S = 5.0
# Icecast that takes no bytes for this long is dropped (the origin's queue would drop us anyway)
WRITE_TIMEOUT_S = 10.0
MAX_RESPONSE_HEAD_BYTES = 8 * 1024
SPACES_INTERVAL_S = 1.0
LOCK_RETRY_S = 2.0
LOCK_FILE = "icecast-feeder.lock"
RESTART_S = 5.0


class IcecastRefused(Exception):
    """Icecast answered the source request with something other than go-ahead."""


def mount_path(space_id: str, kind: str) -> str:
    return f"/{space_id}.{kind}"


def source_request(target: IcecastTarget, mount: str, kind: str, title: str) -> bytes:
    login = base64.b64encode(f"{target.user}:{target.password}".encode()).decode()
    host = f"[{target.host}]" if ":" in target.host else target.host
    lines = [
        f"PUT {mount} HTTP/1.1",
        f"Host: {host}:{target.port}",
        f"Authorization: Basic {login}",
        f"User-Agent: rostra/{__version__}",
        f"Content-Type: {CONTENT_TYPES[kind]}",
        f"ice-name: {icy_name(title)}",
        "ice-public: 0",
        "Expect: 100-continue",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def open_source(
    target: IcecastTarget, mount: str, kind: str, title: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A source connection Icecast has said yes to (100 Continue or 200)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(target.host, target.port), CONNECT_TIMEOUT_S
    )
    try:
        writer.write(source_request(target, mount, kind, title))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT_S)
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or parts[1] not in {"100", "200"}:
            raise IcecastRefused(f"{mount}: Icecast answered {status_line[:120]!r}")
    except BaseException:
        writer.close()
        raise
    return reader, writer


class MountFeed:
    """One mount: the origin's feed of one kind, written to Icecast, again and again."""

    def __init__(
        self, origin: OriginClient, target: IcecastTarget, space_id: str, kind: str, title: str
    ) -> None:
        self.space_id = space_id
        self.kind = kind
        self.mount = mount_path(space_id, kind)
        self.title = title
        self.connections = 0  # source connections Icecast accepted
        self._origin = origin
        self._target = target
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"icecast{self.mount}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay_s = BACKOFF_MIN_S
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await self._feed_once()
                error = "the origin ended the feed"
            except (IcecastRefused, SpaceNotLive, httpx.HTTPError, ValueError) as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - sockets, timeouts and the unforeseen alike:
                error = f"{type(exc).__name__}: {exc}"  # logged and retried, no feed dies unseen
            if time.monotonic() - started >= HEALTHY_AFTER_S:
                delay_s, failures = BACKOFF_MIN_S, 0
            failures += 1
            # logged on the first failure of a run and then at each doubling, not every retry
            if failures == 1 or failures & (failures - 1) == 0:
                log.warning(
                    "icecast feed interrupted",
                    extra={"mount": self.mount, "error": error[:200], "retry_s": delay_s},
                )
            await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            delay_s = min(delay_s * 2, BACKOFF_MAX_S)

    async def _feed_once(self) -> None:
        frames = self._origin.feed(self.space_id, self.kind)
        writer: asyncio.StreamWriter | None = None
        watcher: asyncio.Task[None] | None = None
        try:
            async for kind, chunk in frames:
                if writer is None:
                    reader, writer = await open_source(
                        self._target, self.mount, self.kind, self.title
                    )
                    self.connections += 1
                    log.info("icecast feed on air", extra={"mount": self.mount})
                    watcher = asyncio.create_task(_until_closed(reader))
                if watcher is not None and watcher.done():
                    raise ConnectionResetError("Icecast closed the source connection")
                if kind == FRAME_HEADER and not chunk:
                    continue
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        finally:
            if watcher is not None:
                watcher.cancel()
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)
            await _close(frames)


async def _until_closed(reader: asyncio.StreamReader) -> None:
    """Read what Icecast still says to a source (after `100 Continue`, a `200 OK`) until it hangs
    up: the end of this task is the end of the connection."""
    while await reader.read(MAX_RESPONSE_HEAD_BYTES):
        pass


async def _close(frames: AsyncIterator[tuple[bytes, bytes]]) -> None:
    closer = getattr(frames, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()


class IcecastFeeder:
    """Every live space of the store, fed to Icecast by the worker holding the lock."""

    def __init__(self, settings: Settings, origin: OriginClient, store: SpaceStore) -> None:
        self._target = parse_icecast_url(settings.icecast)
        self._origin = origin
        self._store = store
        self._lock_path = settings.run_dir / LOCK_FILE
        self.feeds: dict[str, tuple[MountFeed, MountFeed]] = {}

    async def run(self) -> None:
        """Wait for the lock, then follow the store every second, until cancelled."""
        descriptor = await self._take_lock()
        try:
            log.info("icecast feeder", extra={"server": self._target.base_url})
            while True:
                await self._follow()
                await asyncio.sleep(SPACES_INTERVAL_S)
        finally:
            for pair in list(self.feeds.values()):
                for feed in pair:
                    await feed.stop()
            self.feeds.clear()
            os.close(descriptor)

    async def _take_lock(self) -> int:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    await asyncio.sleep(LOCK_RETRY_S)
                    continue
                return descriptor
        except BaseException:  # cancelled while waiting, too: no descriptor left behind
            os.close(descriptor)
            raise

    async def _follow(self) -> None:
        try:
            spaces = self._store.list_spaces()  # one small read a second, as the routes do
        except Exception:  # a store hiccup: keep the feeds, try next second
            log.warning("icecast feeder could not read the spaces", exc_info=True)
            return
        live = {space.id: space.title for space in spaces if space.status == SpaceStatus.LIVE}
        for space_id in set(self.feeds) - set(live):
            for feed in self.feeds.pop(space_id):
                await feed.stop()
            log.info("icecast feed ended", extra={"space": space_id})
        for space_id, title in live.items():
            if space_id not in self.feeds:
                pair = tuple(
                    MountFeed(self._origin, self._target, space_id, kind, title)
                    for kind in ("aac", "opus")
                )
                for feed in pair:
                    feed.start()
                self.feeds[space_id] = (pair[0], pair[1])


async def supervised(name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a worker's background task again after a crash, until cancelled."""
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task crashed; restarting", extra={"task": name})
        await asyncio.sleep(RESTART_S)
