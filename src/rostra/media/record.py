"""The recording: every segment written whole as it is made (a temporary name renamed over) and
fsync'd right after on a thread of its own (`DiskSync`), so the live playlists never wait for the
disk. A crash of the process loses at most the segment in flight (the kernel holds what was
written); a power cut may also lose the few segments still queued for their fsync. The replay
playlist and a single-file download are derived from those files.

Media plane.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENT_NAME_RE = re.compile(r"^seg_(\d{6})\.m4s$")
# an LL-HLS part of a segment: part_NNNNNN.K.m4s, apart from the recording's seg_NNNNNN.m4s
PART_NAME_RE = re.compile(r"^part_(\d{6})\.(\d)\.m4s$")
INIT_NAME = "init.mp4"
LIVE_PLAYLIST_NAME = "audio.m3u8"
REPLAY_PLAYLIST_NAME = "replay.m3u8"
DOWNLOAD_NAME = "audio.m4a"
# the Opus rendition of the live HLS: the same names with this prefix, its own playlist
OPUS_PREFIX = "opus_"
OPUS_INIT_NAME = "opus_init.mp4"
OPUS_PLAYLIST_NAME = "opus.m3u8"
OPUS_SEGMENT_NAME_RE = re.compile(r"^opus_seg_(\d{6})\.m4s$")
OPUS_PART_NAME_RE = re.compile(r"^opus_part_(\d{6})\.(\d)\.m4s$")


def segment_name(sequence_number: int, *, prefix: str = "") -> str:
    return f"{prefix}seg_{sequence_number:06d}.m4s"


def part_name(sequence_number: int, index: int, *, prefix: str = "") -> str:
    """Part `index` of segment `sequence_number`: named after both, so it never changes."""
    return f"{prefix}part_{sequence_number:06d}.{index}.m4s"


def delete_parts(directory: Path, sequence_number: int, *, count: int, prefix: str = "") -> None:
    """Remove the `count` part files of one segment: once it has left the live window no
    playlist names them, and the segment itself stays recorded."""
    for index in range(count):
        (directory / part_name(sequence_number, index, prefix=prefix)).unlink(missing_ok=True)


def delete_parts_before(
    directory: Path, sequence_number: int, *, pattern: re.Pattern[str] = PART_NAME_RE
) -> None:
    """Remove the files whose names `pattern` matches (parts by default) of every segment
    numbered below `sequence_number` (those a previous run left behind)."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and int(match.group(1)) < sequence_number:
            entry.unlink(missing_ok=True)


def recorded_segments(directory: Path, *, pattern: re.Pattern[str] = SEGMENT_NAME_RE) -> list[int]:
    """Sequence numbers of the segments on disk (of the AAC rendition unless `pattern` says
    otherwise), in order."""
    if not directory.is_dir():
        return []
    numbers = []
    for entry in directory.iterdir():
        match = pattern.fullmatch(entry.name)
        if match:
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def fsync_file(path: Path) -> None:
    """Make a file already written (and renamed into place) durable: its data, then its folder's
    entry. A file removed meanwhile has nothing left to keep."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# segments waiting for their fsync at most: past it the writer syncs itself (back-pressure), so
# a disk that cannot keep up slows the writer, as before, instead of queueing without end
MAX_QUEUED_SYNCS = 8
SYNC_CLOSE_S = 5.0


class DiskSync:
    """fsyncs written files on a thread of its own, in order, started at the first file and
    stopped by `close`. A failure is reported to `on_error`; the thread goes on with the next."""

    def __init__(
        self,
        name: str,
        on_error: Callable[[BaseException], None],
        *,
        max_queued: int = MAX_QUEUED_SYNCS,
    ) -> None:
        self._name = name
        self._on_error = on_error
        self._max_queued = max_queued
        self._queue: queue.Queue[Path | None] | None = None
        self._thread: threading.Thread | None = None

    def sync(self, path: Path) -> None:
        """Queue `path` for its fsync; when the queue is full, fsync it now."""
        if self._queue is None:
            self._queue = queue.Queue(maxsize=self._max_queued)
            self._thread = threading.Thread(
                target=self._run, args=(self._queue,), name=f"sync-{self._name}", daemon=True
            )
            self._thread.start()
        try:
            self._queue.put_nowait(path)
        except queue.Full:
            self._sync_one(path)

    def close(self, timeout_s: float = SYNC_CLOSE_S) -> None:
        """fsync what is queued, then stop the thread (waiting `timeout_s` at most)."""
        pending, thread = self._queue, self._thread
        self._queue, self._thread = None, None
        if pending is None or thread is None:
            return
        try:
            pending.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("disk sync still busy at close", extra={"thread": thread.name})
            return
        thread.join(timeout_s)

    def _run(self, pending: queue.Queue[Path | None]) -> None:
        while (path := pending.get()) is not None:
            self._sync_one(path)

    def _sync_one(self, path: Path) -> None:
        try:
            fsync_file(path)
        except Exception as error:  # noqa: BLE001 - reported; the next file is synced all the same
            self._on_error(error)
