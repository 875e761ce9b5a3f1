"""A clip of the recording: whole AAC frames copied, never re-encoded, from the recorded CMAF
segments into one plain (unfragmented) m4a, its index first (ISO/IEC 14496-12, 14496-14).

Media plane, pure Python (no PyAV): a listener worker cuts clips from the data folder.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rostra.errors import ClipNoRecording, ClipOutsideRecording
from rostra.media.codecs import FRAMES_PER_SEGMENT, SEGMENT_DURATION_S
from rostra.media.record import INIT_NAME, recorded_segments, segment_name

_BOX_HEADER_BYTES = 8
_LARGE_SIZE_BYTES = 8
_FULL_BOX_HEADER_BYTES = 4
_U32_MAX = 0xFFFF_FFFF
# a segment's styp + moof (48 sample sizes and a few headers) fits in this; longer ones are read
_HEAD_READ_BYTES = 4096

_M4A_BRANDS = (b"M4A ", b"isom", b"iso2", b"mp41")
_AAC_SAMPLE_ENTRY = b"mp4a"
_TRACK_ID = 1
_FIXED_16_16_ONE = 0x0001_0000
_FIXED_8_8_ONE = 0x0100
_UNITY_MATRIX = (_FIXED_16_16_ONE, 0, 0, 0, _FIXED_16_16_ONE, 0, 0, 0, 0x4000_0000)
_LANGUAGE_UND = 0x55C4  # "und", three 5-bit letters
_TKHD_ENABLED_IN_MOVIE = 0x00_0003
_URL_SELF_CONTAINED = 0x00_0001

_TFHD_BASE_DATA_OFFSET = 0x00_0001
_TFHD_SAMPLE_DESCRIPTION_INDEX = 0x00_0002
_TFHD_DEFAULT_SAMPLE_DURATION = 0x00_0008
_TFHD_DEFAULT_SAMPLE_SIZE = 0x00_0010
_TFHD_DEFAULT_SAMPLE_FLAGS = 0x00_0020
_TRUN_DATA_OFFSET = 0x00_0001
_TRUN_FIRST_SAMPLE_FLAGS = 0x00_0004
_TRUN_SAMPLE_DURATION = 0x00_0100
_TRUN_SAMPLE_SIZE = 0x00_0200
_TRUN_SAMPLE_FLAGS = 0x00_0400
_TRUN_SAMPLE_COMPOSITION_OFFSET = 0x00_0800


class ClipSourceUnreadable(ValueError):
    """A recorded file is not the CMAF this module reads (a bug or a damaged file)."""


@dataclass(frozen=True, slots=True)
class Track:
    """What a clip keeps of the recording's init segment: the sample description as written."""

    stsd: bytes
    timescale_hz: int


@dataclass(frozen=True, slots=True)
class Fragment:
    """One recorded segment's samples: sizes and durations, stored one after the other from
    `data_offset` (bytes from the start of the file)."""

    sizes: tuple[int, ...]
    durations: tuple[int, ...]
    data_offset: int


@dataclass(frozen=True, slots=True)
class Piece:
    """Frames `first` up to (not including) `stop` of segment `index`."""

    index: int
    first: int
    stop: int


def frames_for(seconds: float, *, timescale_hz: int, frame_samples: int) -> int:
    """The whole number of frames nearest to `seconds` (within half a frame of it)."""
    return round(seconds * timescale_hz / frame_samples)


def frames_covering(seconds: float, *, timescale_hz: int, frame_samples: int) -> int:
    """The fewest whole frames that last at least `seconds` (less than a frame longer)."""
    # rounded first: 1.024 s is 48 frames, not 48.000000001
    return math.ceil(round(seconds * timescale_hz / frame_samples, 6))


def window(segment_frames: Sequence[int], *, end_frames_ago: int, frame_count: int) -> list[Piece]:
    """The pieces of the segments (frame counts in recording order) holding `frame_count` frames
    that end `end_frames_ago` frames before the end of the last one."""
    if frame_count < 1 or end_frames_ago < 0:
        raise ValueError(f"a window of {frame_count} frames ending {end_frames_ago} frames ago")
    total = sum(segment_frames)
    stop = total - end_frames_ago
    start = stop - frame_count
    if start < 0:
        raise ValueError(f"the window starts {-start} frames before the recording")
    pieces = []
    offset = 0
    for index, count in enumerate(segment_frames):
        first, last = max(start - offset, 0), min(stop - offset, count)
        if first < last:
            pieces.append(Piece(index, first, last))
        offset += count
    return pieces


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in `data[start:end]`."""
    position = start
    while position + _BOX_HEADER_BYTES <= end:
        size, box_type = struct.unpack_from(">I4s", data, position)
        header = _BOX_HEADER_BYTES
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, position + header)
            header += _LARGE_SIZE_BYTES
        elif size == 0:
            size = end - position
        if size < header:
            raise ClipSourceUnreadable(f"box '{box_type!r}' claims {size} bytes")
        yield box_type, position + header, position + size
        position += size


def _child(data: bytes, start: int, end: int, path: Sequence[bytes]) -> tuple[int, int]:
    """The payload bounds of the box at `path` under `data[start:end]`."""
    for box_type, payload, box_end in _boxes(data, start, end):
        if box_type == path[0]:
            if len(path) == 1:
                return payload, box_end
            return _child(data, payload, box_end, path[1:])
    raise ClipSourceUnreadable(f"no '{path[0].decode(errors='replace')}' box")


def read_track(init: bytes) -> Track:
    """The sample description and media timescale of the recording's init segment; AAC only,
    since a clip copies frames and never re-encodes them."""
    mdia = (b"moov", b"trak", b"mdia")
    mdhd_start, _ = _child(init, 0, len(init), (*mdia, b"mdhd"))
    version = init[mdhd_start]
    timescale_at = mdhd_start + _FULL_BOX_HEADER_BYTES + (16 if version == 1 else 8)
    (timescale_hz,) = struct.unpack_from(">I", init, timescale_at)
    stsd_start, stsd_end = _child(init, 0, len(init), (*mdia, b"minf", b"stbl", b"stsd"))
    first_entry = init[stsd_start + 12 : stsd_start + 16]  # after version, flags and count
    if first_entry != _AAC_SAMPLE_ENTRY:
        raise ClipSourceUnreadable(f"the recording is '{first_entry!r}', not AAC ('mp4a')")
    stsd = init[stsd_start - _BOX_HEADER_BYTES : stsd_end]
    return Track(stsd=stsd, timescale_hz=timescale_hz)


def read_fragment(head: bytes) -> Fragment:
    """The sample table of one segment (styp, moof with one traf and trun, then mdat) from the
    file's first bytes, up to the end of its moof."""
    moof = next(((p, end) for t, p, end in _boxes(head, 0, len(head)) if t == b"moof"), None)
    if moof is None:
        raise ClipSourceUnreadable("no 'moof' box in the segment's first bytes")
    moof_start, moof_end = moof
    moof_at = moof_start - _BOX_HEADER_BYTES
    if moof_end > len(head):
        raise ClipSourceUnreadable(f"the moof ends at byte {moof_end}, past the bytes read")
    tfhd_start, _ = _child(head, moof_start, moof_end, (b"traf", b"tfhd"))
    trun_start, _ = _child(head, moof_start, moof_end, (b"traf", b"trun"))
    tfhd_flags = int.from_bytes(head[tfhd_start + 1 : tfhd_start + 4], "big")
    position = tfhd_start + _FULL_BOX_HEADER_BYTES + 4  # past track_ID
    base = moof_at
    if tfhd_flags & _TFHD_BASE_DATA_OFFSET:
        (base,) = struct.unpack_from(">Q", head, position)
        position += 8
    position += 4 if tfhd_flags & _TFHD_SAMPLE_DESCRIPTION_INDEX else 0
    default_duration = default_size = 0
    if tfhd_flags & _TFHD_DEFAULT_SAMPLE_DURATION:
        (default_duration,) = struct.unpack_from(">I", head, position)
        position += 4
    if tfhd_flags & _TFHD_DEFAULT_SAMPLE_SIZE:
        (default_size,) = struct.unpack_from(">I", head, position)
    return _read_trun(head, trun_start, base, default_duration, default_size)


def _read_trun(
    head: bytes, start: int, base: int, default_duration: int, default_size: int
) -> Fragment:
    flags = int.from_bytes(head[start + 1 : start + 4], "big")
    (count,) = struct.unpack_from(">I", head, start + _FULL_BOX_HEADER_BYTES)
    position = start + _FULL_BOX_HEADER_BYTES + 4
    data_offset = 0
    if flags & _TRUN_DATA_OFFSET:
        (data_offset,) = struct.unpack_from(">i", head, position)
        position += 4
    position += 4 if flags & _TRUN_FIRST_SAMPLE_FLAGS else 0
    fields = [
        flag
        for flag in (
            _TRUN_SAMPLE_DURATION,
            _TRUN_SAMPLE_SIZE,
            _TRUN_SAMPLE_FLAGS,
            _TRUN_SAMPLE_COMPOSITION_OFFSET,
        )
        if flags & flag
    ]
    values = struct.unpack_from(f">{count * len(fields)}I", head, position)
    rows = [values[i * len(fields) : (i + 1) * len(fields)] for i in range(count)]
    sizes = _column(rows, fields, _TRUN_SAMPLE_SIZE, default_size)
    durations = _column(rows, fields, _TRUN_SAMPLE_DURATION, default_duration)
    if 0 in sizes or 0 in durations:
        raise ClipSourceUnreadable("a sample has no size or no duration")
    return Fragment(sizes=sizes, durations=durations, data_offset=base + data_offset)


def _column(
    rows: Sequence[Sequence[int]], fields: Sequence[int], flag: int, default: int
) -> tuple[int, ...]:
    if flag not in fields:
        return tuple(default for _ in rows)
    column = fields.index(flag)
    return tuple(row[column] for row in rows)


def m4a(track: Track, samples: Sequence[bytes], durations: Sequence[int]) -> bytes:
    """One unfragmented MP4 audio file: ftyp, moov (the sample tables, one chunk), mdat."""
    if not samples or len(samples) != len(durations):
        raise ValueError(f"{len(samples)} samples and {len(durations)} durations")
    duration = sum(durations)
    ftyp = _box(b"ftyp", _M4A_BRANDS[0], _u32(0), *_M4A_BRANDS)

    def moov(chunk_offset: int) -> bytes:
        return _box(
            b"moov",
            _mvhd(track.timescale_hz, duration),
            _trak(track, samples, durations, chunk_offset),
        )

    chunk_offset = len(ftyp) + len(moov(0)) + _BOX_HEADER_BYTES
    return ftyp + moov(chunk_offset) + _box(b"mdat", *samples)


def _mvhd(timescale_hz: int, duration: int) -> bytes:
    return _full_box(
        b"mvhd",
        struct.pack(">IIII", 0, 0, timescale_hz, duration),
        struct.pack(">IH10x", _FIXED_16_16_ONE, _FIXED_8_8_ONE),
        struct.pack(">9I", *_UNITY_MATRIX),
        bytes(24),
        _u32(_TRACK_ID + 1),
    )


def _trak(track: Track, samples: Sequence[bytes], durations: Sequence[int], offset: int) -> bytes:
    duration = sum(durations)
    tkhd = _full_box(
        b"tkhd",
        struct.pack(">IIIII", 0, 0, _TRACK_ID, 0, duration),
        struct.pack(">8xhhH2x", 0, 0, _FIXED_8_8_ONE),
        struct.pack(">9I", *_UNITY_MATRIX),
        struct.pack(">II", 0, 0),
        flags=_TKHD_ENABLED_IN_MOVIE,
    )
    mdhd = _full_box(
        b"mdhd",
        struct.pack(">IIII", 0, 0, track.timescale_hz, duration),
        struct.pack(">HH", _LANGUAGE_UND, 0),
    )
    hdlr = _full_box(b"hdlr", _u32(0), b"soun", bytes(12), b"SoundHandler\x00")
    dinf = _box(b"dinf", _full_box(b"dref", _u32(1), _full_box(b"url ", flags=_URL_SELF_CONTAINED)))
    stbl = _box(
        b"stbl",
        track.stsd,
        _full_box(b"stts", *_time_to_sample(durations)),
        _full_box(b"stsc", _u32(1), struct.pack(">III", 1, len(samples), 1)),
        _full_box(b"stsz", _u32(0), _u32(len(samples)), *(_u32(len(s)) for s in samples)),
        _full_box(b"stco", _u32(1), _u32(offset)),
    )
    smhd = _full_box(b"smhd", struct.pack(">hH", 0, 0))
    minf = _box(b"minf", smhd, dinf, stbl)
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


def _time_to_sample(durations: Sequence[int]) -> list[bytes]:
    runs: list[list[int]] = []
    for duration in durations:
        if runs and runs[-1][1] == duration:
            runs[-1][0] += 1
        else:
            runs.append([1, duration])
    return [_u32(len(runs)), *(struct.pack(">II", count, delta) for count, delta in runs)]


def _box(box_type: bytes, *payloads: bytes) -> bytes:
    body = b"".join(payloads)
    size = _BOX_HEADER_BYTES + len(body)
    if size > _U32_MAX:
        raise ValueError(f"'{box_type.decode()}' box of {size} bytes needs a 64-bit size")
    return struct.pack(">I4s", size, box_type) + body


def _full_box(box_type: bytes, *payloads: bytes, flags: int = 0) -> bytes:
    return _box(box_type, bytes((0,)), flags.to_bytes(3, "big"), *payloads)


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


# --- the recording on disk --------------------------------------------------------------------
def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        head = handle.read(_HEAD_READ_BYTES)
        moof_end = _moof_end(head)
        if moof_end > len(head):
            head += handle.read(moof_end - len(head))
    return head


def _moof_end(head: bytes) -> int:
    for box_type, payload, box_end in _boxes(head, 0, len(head)):
        if box_type == b"moof":
            return box_end
        if payload > len(head):
            break
    # the moof (or the box before it) runs past the bytes read: its end is in its header
    return len(head) + _HEAD_READ_BYTES


def cut(directory: Path, *, end_s_ago: float, duration_s: float) -> bytes:
    """The m4a of `duration_s` of the recording in `directory` ending `end_s_ago` before its
    last recorded frame: it ends on the frame boundary nearest that, and lasts whole frames, at
    least `duration_s` and less than a frame more. Reads the segments' headers
    from the newest back, and the samples of the segments the clip covers only."""
    init_path = directory / INIT_NAME
    numbers = recorded_segments(directory)
    if not numbers or not init_path.is_file():
        raise ClipNoRecording("this space has recorded nothing yet")
    # no segment is longer than SEGMENT_DURATION_S: a clip reaching past what that many could
    # hold is refused before a header is read (the refusal counts toward no limit, so it must
    # stay cheap however far back it asks)
    held_at_most_s = len(numbers) * SEGMENT_DURATION_S
    if end_s_ago + duration_s > held_at_most_s + SEGMENT_DURATION_S / FRAMES_PER_SEGMENT:
        raise ClipOutsideRecording(
            f"the recording holds at most {held_at_most_s:.3f} s; "
            + _reach(end_s_ago=end_s_ago, duration_s=duration_s)
        )
    track = read_track(init_path.read_bytes())
    fragments: list[tuple[Path, Fragment]] = []
    frame_durations = 0
    needed_samples = round((end_s_ago + duration_s) * track.timescale_hz)
    for number in reversed(numbers):
        path = directory / segment_name(number)
        fragment = read_fragment(_head(path))
        fragments.append((path, fragment))
        frame_durations += sum(fragment.durations)
        if frame_durations >= needed_samples:
            break
    fragments.reverse()
    frame_samples = fragments[-1][1].durations[0]
    end_frames = frames_for(end_s_ago, timescale_hz=track.timescale_hz, frame_samples=frame_samples)
    count = frames_covering(
        duration_s, timescale_hz=track.timescale_hz, frame_samples=frame_samples
    )
    try:
        pieces = window(
            [len(f.sizes) for _, f in fragments], end_frames_ago=end_frames, frame_count=count
        )
    except ValueError as error:
        held_s = frame_durations / track.timescale_hz
        raise ClipOutsideRecording(
            f"the recording holds {held_s:.3f} s; "
            + _reach(end_s_ago=end_s_ago, duration_s=duration_s)
        ) from error
    samples: list[bytes] = []
    durations: list[int] = []
    for piece in pieces:
        path, fragment = fragments[piece.index]
        samples.extend(_read_samples(path, fragment, piece))
        durations.extend(fragment.durations[piece.first : piece.stop])
    return m4a(track, samples, durations)


def _reach(*, end_s_ago: float, duration_s: float) -> str:
    return (
        f"a clip of {duration_s:g} s ending {end_s_ago:g} s ago "
        f"would start {end_s_ago + duration_s:g} s ago"
    )


def _read_samples(path: Path, fragment: Fragment, piece: Piece) -> list[bytes]:
    start = fragment.data_offset + sum(fragment.sizes[: piece.first])
    sizes = fragment.sizes[piece.first : piece.stop]
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(sum(sizes))
    if len(data) != sum(sizes):
        raise ClipSourceUnreadable(f"{path.name} ends {sum(sizes) - len(data)} bytes short")
    samples = []
    position = 0
    for size in sizes:
        samples.append(data[position : position + size])
        position += size
    return samples
