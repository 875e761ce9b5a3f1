"""The recording: every segment written and fsync'd as it is made, so a crash loses at most the
segment in flight; the replay playlist and a single-file download are derived from those files.

Media plane.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

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


def write_durable(path: Path, data: bytes, *, is_durable: bool = True) -> None:
    """Write to a temporary name, fsync, rename over: readers see the old or the new file whole."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            if is_durable:
                handle.flush()
                os.fsync(handle.fileno())
        temporary.replace(path)
    except OSError:
        # a full disk must not also leave half a file behind to fill it further; the first
        # error is the one to report, so a failing clean-up stays quiet
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    if is_durable:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


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
