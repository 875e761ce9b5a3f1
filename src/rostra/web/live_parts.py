"""Blocking playlist reload (RFC 8216bis §6.2.5.2) in a listener worker: requests that wait for
a part of a live playlist the origin has not made yet, woken together when it appears.

Web plane. One watch per live playlist file, and only while someone waits: it looks at the
file every `poll_s` (a stat, a read when the packager replaced it) and wakes every waiter of
that playlist at once. The waiters of a worker are capped; past the cap a request is refused at
once rather than held.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from rostra.errors import PlaylistWaitersFull
from rostra.media.hls.ll_playlist import LiveEdge, live_edge

log = logging.getLogger(__name__)

# a part lasts 256 ms: 20 ms of polling adds at most a tenth of one to the latency
POLL_S = 0.02
MAX_WAITERS = 4_000
# playlists remembered between reads; past it, those nobody waits for are forgotten
MAX_SNAPSHOTS = 64
WAITERS_FULL_RETRY_S = 1.0
_ETAG_BYTES = 12


@dataclass(frozen=True, slots=True)
class PlaylistSnapshot:
    """A playlist file as read: its bytes, an entity tag, and the live edge it lists."""

    data: bytes
    etag: str
    edge: LiveEdge
    version: tuple[int, int, int]


class _Watch:
    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None


class LiveParts:
    """The playlists this worker reads, and the requests waiting for them to move on."""

    def __init__(self, *, poll_s: float = POLL_S, max_waiters: int = MAX_WAITERS) -> None:
        self._poll_s = poll_s
        self._max_waiters = max_waiters
        self._snapshots: dict[Path, PlaylistSnapshot] = {}
        self._watches: dict[Path, _Watch] = {}
        self._waiters = 0

    @property
    def waiters(self) -> int:
        return self._waiters

    def read(self, path: Path) -> PlaylistSnapshot | None:
        """The playlist at `path` as it is now, or None when it does not exist; the file is read
        again only when the packager has replaced it."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._snapshots.pop(path, None)
            return None
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        known = self._snapshots.get(path)
        if known is not None and known.version == version:
            return known
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            edge = live_edge(data.decode("utf-8", "replace"))
        except ValueError as error:
            # a playlist this worker cannot read is answered as absent (404, or a blocking reload
            # that times out), never a 500, and the watcher that reads it keeps running
            log.warning("live playlist unreadable", extra={"path": str(path), "error": str(error)})
            return None
        etag = '"' + hashlib.blake2b(data, digest_size=_ETAG_BYTES).hexdigest() + '"'
        snapshot = PlaylistSnapshot(data, etag, edge, version)
        if len(self._snapshots) >= MAX_SNAPSHOTS:
            # a worker serves many spaces over its life: keep those someone waits for
            self._snapshots = {p: s for p, s in self._snapshots.items() if p in self._watches}
        self._snapshots[path] = snapshot
        return snapshot

    async def wait_for(
        self, path: Path, msn: int, part: int | None, *, timeout_s: float
    ) -> PlaylistSnapshot | None:
        """The playlist once it holds segment `msn` (whole when `part` is None, else that part),
        or None if it does not within `timeout_s`. PlaylistWaitersFull past the cap."""
        snapshot = self.read(path)
        if snapshot is not None and snapshot.edge.has(msn, part):
            return snapshot
        if self._waiters >= self._max_waiters:
            raise PlaylistWaitersFull(
                f"this worker holds {self._waiters} blocking playlist reloads, its limit",
                retry_after_s=WAITERS_FULL_RETRY_S,
            )
        watch = self._watches.get(path)
        if watch is None:
            watch = self._watches[path] = _Watch()
        watch.waiters += 1
        self._waiters += 1
        if watch.task is None:
            watch.task = asyncio.create_task(self._poll(path, watch), name=f"live-parts {path}")
        try:
            return await self._wait(path, watch, msn, part, timeout_s)
        finally:
            watch.waiters -= 1
            self._waiters -= 1

    async def close(self) -> None:
        for watch in list(self._watches.values()):
            if watch.task is not None:
                watch.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch.task

    async def _wait(
        self, path: Path, watch: _Watch, msn: int, part: int | None, timeout_s: float
    ) -> PlaylistSnapshot | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            changed = watch.changed
            snapshot = self._snapshots.get(path)
            if snapshot is not None and snapshot.edge.has(msn, part):
                return snapshot
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining_s)

    async def _poll(self, path: Path, watch: _Watch) -> None:
        """Look at the file while anyone waits for it; wake them all when it changes."""
        try:
            known = self._snapshots.get(path)
            while watch.waiters > 0:
                try:
                    snapshot = self.read(path)
                except OSError:
                    snapshot = None
                if snapshot is not None and snapshot is not known:
                    known = snapshot
                    woken, watch.changed = watch.changed, asyncio.Event()
                    woken.set()
                await asyncio.sleep(self._poll_s)
        finally:
            # no await since the loop test: no waiter can have joined this watch meanwhile
            watch.task = None
            if watch.waiters == 0 and self._watches.get(path) is watch:
                del self._watches[path]
