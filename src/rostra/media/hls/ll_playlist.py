"""Low-Latency HLS media playlist text (RFC 8216bis §4.4.3.7–4.4.5.2): partial segments, the
preload hint and server control, over the window the packager lists; and the position of the
live edge read back from that text, for blocking playlist reloads.

Media plane. Pure text, as playlist.py; the packager decides which segments and parts exist.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from rostra.media.hls.playlist import (
    PROTOCOL_VERSION,
    SegmentRef,
    _check_segments,
    _check_uri,
    _extinf,
    _iso8601_utc_ms,
    media_playlist,
)

# RFC 8216bis §4.4.3.8: PART-HOLD-BACK MUST be >= 2 part targets and SHOULD be >= 3.
MIN_PART_HOLD_BACK_PARTS = 3
# §6.2.2: a server MUST list the parts of at least the last three target durations.
PART_LIST_TARGET_DURATIONS = 3
# §4.4.4.9: every part but the last of its segment lasts at least 85 % of the part target.
MIN_PART_SHARE = Decimal("0.85")
DURATION_DECIMALS = 3

_QUANTUM = Decimal(1).scaleb(-DURATION_DECIMALS)
_FORBIDDEN_IN_QUOTED_STRING = frozenset('"\r\n')
# the names the packager gives parts: part_NNNNNN.K.m4s, part K of segment NNNNNN, with the
# rendition's prefix (opus_part_NNNNNN.K.m4s)
_PART_URI_RE = re.compile(r'URI="(?:[a-z]+_)?part_(\d{6})\.(\d+)\.m4s"')


@dataclass(frozen=True, slots=True)
class PartRef:
    """One partial segment as a playlist lists it; an AAC part starts on a sync sample, so it is
    independent unless said otherwise."""

    uri: str
    duration_s: float
    is_independent: bool = True

    def __post_init__(self) -> None:
        _check_uri(self.uri, forbidden=_FORBIDDEN_IN_QUOTED_STRING)
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"part '{self.uri}' lasts {self.duration_s} s; must be > 0")


@dataclass(frozen=True, slots=True)
class SegmentInProgress:
    """The segment being made: its parts so far, and the tags that go before them."""

    sequence_number: int
    parts: tuple[PartRef, ...] = ()
    program_date_time: datetime | None = None
    is_discontinuity: bool = False


@dataclass(frozen=True, slots=True)
class LiveEdge:
    """Where a live playlist ends: its last whole segment and its last part, each as a media
    sequence number (and part index), or None when it lists none."""

    last_segment: int | None
    last_part: tuple[int, int] | None = None
    is_ended: bool = False

    def has(self, msn: int, part: int | None) -> bool:
        """True when the playlist holds segment `msn` (whole, `part` None) or that part."""
        if self.is_ended:
            return True
        if self.last_segment is not None and self.last_segment >= msn:
            return True
        return part is not None and self.last_part is not None and self.last_part >= (msn, part)


def ll_media_playlist(
    *,
    segments: Sequence[SegmentRef],
    parts: Mapping[int, Sequence[PartRef]],
    in_progress: SegmentInProgress,
    next_part_uri: str,
    target_duration_s: int,
    part_target_s: float,
    part_hold_back_s: float,
    init_uri: str,
    discontinuity_sequence: int = 0,
) -> str:
    """A live media playlist with partial segments: `parts` of the listed segments (keyed by
    sequence number; listed for the last three target durations at least, since the caller keeps
    them), those of the segment `in_progress`, and a preload hint for `next_part_uri`.

    An ended playlist has no parts and no hint: use `media_playlist(is_ended=True)`.
    """
    _check_segments(segments, target_duration_s)
    _check_uri(init_uri, forbidden=_FORBIDDEN_IN_QUOTED_STRING)
    _check_uri(next_part_uri, forbidden=_FORBIDDEN_IN_QUOTED_STRING)
    _check_part_timing(part_target_s, part_hold_back_s, target_duration_s)
    expected = segments[-1].sequence_number + 1 if segments else in_progress.sequence_number
    if in_progress.sequence_number != expected:
        raise ValueError(
            f"the segment in progress is {in_progress.sequence_number}; "
            f"after the listed segments comes {expected}"
        )
    listed = {segment.sequence_number for segment in segments}
    for sequence, segment_parts in parts.items():
        if sequence not in listed:
            raise ValueError(f"parts of segment {sequence}, which the playlist does not list")
        _check_parts(segment_parts, part_target_s, is_whole=True)
        _check_parts_sum(segments[sequence - segments[0].sequence_number], segment_parts)
    _check_parts(in_progress.parts, part_target_s, is_whole=False)
    _check_parts_cover(segments, parts, target_duration_s)
    media_sequence = segments[0].sequence_number if segments else in_progress.sequence_number
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{PROTOCOL_VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration_s}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={_decimal(part_hold_back_s)}",
        f"#EXT-X-PART-INF:PART-TARGET={_decimal(part_target_s)}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
    ]
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    lines += ["#EXT-X-INDEPENDENT-SEGMENTS", f'#EXT-X-MAP:URI="{init_uri}"']
    for index, segment in enumerate(segments):
        lines += _segment_head(index == 0, segment.is_discontinuity, segment.program_date_time)
        lines += [_part_line(part) for part in parts.get(segment.sequence_number, ())]
        lines += [f"#EXTINF:{_extinf(segment.duration_s)},", segment.uri]
    if in_progress.parts:
        lines += _segment_head(
            not segments, in_progress.is_discontinuity, in_progress.program_date_time
        )
        lines += [_part_line(part) for part in in_progress.parts]
    lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{next_part_uri}"')
    return "\n".join(lines) + "\n"


def ended_media_playlist(
    *,
    segments: Sequence[SegmentRef],
    target_duration_s: int,
    init_uri: str,
    discontinuity_sequence: int = 0,
) -> str:
    """The final live playlist: the same window and media sequence, no parts, no hint, ENDLIST
    (a client never asks a finished playlist to block)."""
    return media_playlist(
        segments=segments,
        target_duration_s=target_duration_s,
        init_uri=init_uri,
        is_ended=True,
        discontinuity_sequence=discontinuity_sequence,
    )


def live_edge(text: str) -> LiveEdge:
    """The last whole segment and the last part a playlist this module (or playlist.py) wrote
    lists, read from its text without parsing every line's attributes."""
    media_sequence = 0
    segment_count = 0
    last_part: tuple[int, int] | None = None
    is_ended = False
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            media_sequence = int(line.partition(":")[2])
        elif line.startswith("#EXT-X-PART:"):
            match = _PART_URI_RE.search(line)
            if match:
                last_part = (int(match.group(1)), int(match.group(2)))
        elif line.startswith("#EXTINF:"):
            segment_count += 1
        elif line.startswith("#EXT-X-ENDLIST"):
            is_ended = True
    last_segment = media_sequence + segment_count - 1 if segment_count else None
    return LiveEdge(last_segment, last_part, is_ended)


def _segment_head(is_first: bool, is_discontinuity: bool, date_time: datetime | None) -> list[str]:
    lines = ["#EXT-X-DISCONTINUITY"] if is_discontinuity else []
    if date_time is not None and (is_first or is_discontinuity):
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso8601_utc_ms(date_time)}")
    return lines


def _part_line(part: PartRef) -> str:
    independent = ",INDEPENDENT=YES" if part.is_independent else ""
    return f'#EXT-X-PART:DURATION={_decimal(part.duration_s)},URI="{part.uri}"{independent}'


def _check_part_timing(part_target_s: float, part_hold_back_s: float, target_s: int) -> None:
    if not (math.isfinite(part_target_s) and 0 < part_target_s <= target_s):
        raise ValueError(f"part target {part_target_s} s must be > 0 and <= {target_s} s")
    minimum = _decimal(part_target_s) * MIN_PART_HOLD_BACK_PARTS
    if _decimal(part_hold_back_s) < minimum:
        raise ValueError(
            f"part hold-back {part_hold_back_s} s is under {MIN_PART_HOLD_BACK_PARTS} part "
            f"targets ({minimum} s)"
        )


def _check_parts(parts: Sequence[PartRef], part_target_s: float, *, is_whole: bool) -> None:
    target = _decimal(part_target_s)
    for index, part in enumerate(parts):
        duration = _decimal(part.duration_s)
        if duration > target:
            raise ValueError(f"part '{part.uri}' lasts {duration} s; the target is {target} s")
        is_last_of_segment = is_whole and index == len(parts) - 1
        if duration < target * MIN_PART_SHARE and not is_last_of_segment:
            raise ValueError(
                f"part '{part.uri}' lasts {duration} s, under 85 % of the target {target} s, "
                "and is not the last of its segment"
            )


def _check_parts_sum(segment: SegmentRef, parts: Sequence[PartRef]) -> None:
    """The parts of a segment are the segment: their durations add up to its EXTINF (to the
    rounding of each written duration)."""
    total = sum((_decimal(part.duration_s) for part in parts), Decimal(0))
    if abs(total - _extinf(segment.duration_s)) > _QUANTUM * len(parts):
        raise ValueError(
            f"the parts of segment '{segment.uri}' last {total} s; the segment lasts "
            f"{_extinf(segment.duration_s)} s"
        )


def _check_parts_cover(
    segments: Sequence[SegmentRef], parts: Mapping[int, Sequence[PartRef]], target_s: int
) -> None:
    """§6.2.2: parts are listed for the segments of the last three target durations, where the
    packager made them (it made none for segments continued from an earlier run)."""
    covered_s = Decimal(0)
    for segment in reversed(segments):
        if covered_s >= PART_LIST_TARGET_DURATIONS * target_s:
            return
        if segment.sequence_number not in parts and _made_parts(parts, segment):
            raise ValueError(f"segment '{segment.uri}' is near the live edge but has no parts")
        covered_s += _extinf(segment.duration_s)


def _made_parts(parts: Mapping[int, Sequence[PartRef]], segment: SegmentRef) -> bool:
    return any(sequence < segment.sequence_number for sequence in parts)


def _decimal(value_s: float) -> Decimal:
    return Decimal(repr(value_s)).quantize(_QUANTUM, rounding=ROUND_HALF_UP)
