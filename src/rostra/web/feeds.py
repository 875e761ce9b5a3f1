"""Progressive streams in a listener worker: one feed from the origin per space and kind, fanned
out inside the worker to every plain player, with a cap on players per worker.

Web plane. When the origin restarts, ADTS players stay connected (ADTS resynchronises on the next
frame) and hear the program again; Ogg players are closed, since a new Ogg stream may not follow
the old one without its end, and players reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from rostra.errors import SpaceNotLive, StreamListenersFull
from rostra.media.broadcast import Broadcast
from rostra.web.origin_client import FRAME_HEADER, OriginClient

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 2.0
# a feed nobody listens to is closed after this long
IDLE_FEED_S = 15.0
COUNTS_INTERVAL_S = 1.0
# another worker's counts older than this are from a worker that is gone
COUNTS_FRESH_S = 10.0
STREAM_RETRY_S = 5.0
# a new player waits this long for its feed's first frame (an Ogg player needs the headers)
FEED_READY_S = 3.0
KEEPS_LISTENERS_ON_RESTART = {"aac": True, "opus": False}


class Feed:
    def __init__(self, origin: OriginClient, space_id: str, kind: str) -> None:
        self.space_id = space_id
        self.kind = kind
        self._origin = origin
        self.broadcast = Broadcast()
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.idle_since = time.monotonic()

    @property
    def listener_count(self) -> int:
        return self.broadcast.listener_count

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"feed-{self.space_id}-{self.kind}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.broadcast.close()

    async def _run(self) -> None:
        delay_s = RECONNECT_MIN_S
        while True:
            got_frames = False
            try:
                async for kind, chunk in self._origin.feed(self.space_id, self.kind):
                    got_frames = True
                    self.ready.set()
                    if kind == FRAME_HEADER:
                        self.broadcast.set_header(chunk)
                    else:
                        self.broadcast.publish(chunk)
            except SpaceNotLive:
                self.broadcast.close()  # ended: its players are told, by the end of the body
                return
            except (httpx.HTTPError, ValueError) as error:
                log.info("feed lost", extra={"space": self.space_id, "error": str(error)[:200]})
            if not KEEPS_LISTENERS_ON_RESTART[self.kind]:
                self.broadcast.close()
                self.broadcast = Broadcast()
                self.ready = asyncio.Event()
            delay_s = RECONNECT_MIN_S if got_frames else min(delay_s * 2, RECONNECT_MAX_S)
            await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))  # noqa: S311 - jitter


class FeedHub:
    """Every feed of this worker; the count of its players is written for the other workers."""

    def __init__(self, origin: OriginClient, run_dir: Path, *, max_listeners: int) -> None:
        self._origin = origin
        self._feeds: dict[tuple[str, str], Feed] = {}
        self._max_listeners = max_listeners
        self._counts_path = run_dir / f"streams-{os.getpid()}.json"
        self._run_dir = run_dir

    def listener_count(self) -> int:
        return sum(feed.listener_count for feed in self._feeds.values())

    async def listen(self, space_id: str, kind: str) -> AsyncIterator[bytes]:
        if self.listener_count() >= self._max_listeners:
            raise StreamListenersFull(
                f"this worker carries {self._max_listeners} stream listeners, its limit; "
                "try again shortly or use the HLS stream",
                retry_after_s=STREAM_RETRY_S,
            )
        feed = self._feeds.get((space_id, kind))
        if feed is None or feed.broadcast.is_closed:
            feed = self._feeds[(space_id, kind)] = Feed(self._origin, space_id, kind)
        feed.ensure_running()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(feed.ready.wait(), FEED_READY_S)
        return feed.broadcast.listen()

    async def run(self) -> None:
        """Close idle feeds and publish this worker's counts, every second, until cancelled."""
        try:
            while True:
                await asyncio.sleep(COUNTS_INTERVAL_S)
                await self._close_idle()
                self._write_counts()
        finally:
            for feed in list(self._feeds.values()):
                await feed.stop()
            self._counts_path.unlink(missing_ok=True)

    async def _close_idle(self) -> None:
        now = time.monotonic()
        for key, feed in list(self._feeds.items()):
            if feed.listener_count:
                feed.idle_since = now
            elif now - feed.idle_since > IDLE_FEED_S:
                del self._feeds[key]
                await feed.stop()

    def _write_counts(self) -> None:
        counts: dict[str, int] = {}
        for (space_id, _), feed in self._feeds.items():
            counts[space_id] = counts.get(space_id, 0) + feed.listener_count
        temporary = self._counts_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(counts))
        temporary.replace(self._counts_path)

    def total_listeners(self, space_id: str) -> int:
        """Plain players of the space on every worker of this machine."""
        total = 0
        now = time.time()
        for path in self._run_dir.glob("streams-*.json"):
            try:
                if now - path.stat().st_mtime > COUNTS_FRESH_S:
                    continue
                total += int(json.loads(path.read_text()).get(space_id, 0))
            except (OSError, ValueError, AttributeError):
                continue
        return total
