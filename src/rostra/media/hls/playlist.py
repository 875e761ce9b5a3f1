"""HLS playlist text (RFC 8216): the master playlist and the media playlist of fMP4 segments,
and the reading back of a media playlist this module wrote (to continue it after a restart).

Media plane. Pure text; the packager decides which segments a playlist lists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import pairwise

# RFC 8216 §7: EXT-X-MAP without EXT-X-I-FRAMES-ONLY needs version 6; nothing here needs 7.
PROTOCOL_VERSION = 6
EXTINF_DECIMALS = 3

_EXTINF_QUANTUM = Decimal(1).scaleb(-EXTINF_DECIMALS)
_FORBIDDEN_IN_QUOTED_STRING = frozenset('"\r\n')
_FORBIDDEN_IN_URI_LINE = frozenset("\r\n")


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """One media segment as a playlist lists it.

    `program_date_time` (timezone-aware) is the wall clock of its first sample; `is_discontinuity`
    says it does not continue the segment before it (RFC 8216 §4.3.2.3), as after a restart.
    """

    uri: str
    duration_s: float
    sequence_number: int
    program_date_time: datetime | None = None
    is_discontinuity: bool = False

    def __post_init__(self) -> None:
        _check_uri(self.uri, forbidden=_FORBIDDEN_IN_URI_LINE)
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"segment '{self.uri}' lasts {self.duration_s} s; must be > 0")
        if self.sequence_number < 0:
            raise ValueError(f"segment '{self.uri}' has sequence number {self.sequence_number} < 0")
        if self.program_date_time is not None:
            _iso8601_utc_ms(self.program_date_time)

    @property
    def end_date_time(self) -> datetime | None:
        if self.program_date_time is None:
            return None
        return self.program_date_time + timedelta(seconds=self.duration_s)


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """A media playlist read back: its segments (each with its date-time, where one is known)."""

    segments: tuple[SegmentRef, ...]
    discontinuity_sequence: int
    is_ended: bool


@dataclass(frozen=True, slots=True)
class Variant:
    """One variant stream of a multivariant playlist: an audio-only media playlist, its CODECS,
    its peak segment bit rate and (where known) its average one (RFC 8216 §4.3.4.2)."""

    uri: str
    codecs: str
    bandwidth_bps: int
    average_bandwidth_bps: int | None = None

    def __post_init__(self) -> None:
        _check_uri(self.uri, forbidden=_FORBIDDEN_IN_URI_LINE)
        if self.bandwidth_bps <= 0:
            raise ValueError(f"bandwidth {self.bandwidth_bps} bit/s must be > 0")
        average = self.average_bandwidth_bps
        if average is not None and not 0 < average <= self.bandwidth_bps:
            raise ValueError(f"average bandwidth {average} bit/s must be in 1..BANDWIDTH")
        if not self.codecs or _FORBIDDEN_IN_QUOTED_STRING & set(self.codecs):
            raise ValueError(f"codecs {self.codecs!r} is not a valid quoted string")


@dataclass(frozen=True, slots=True)
class SubtitlesRendition:
    """A WebVTT subtitles rendition (RFC 8216 §4.3.4.1), offered but not selected by default."""

    uri: str
    name: str
    language: str
    group_id: str = "subs"

    def __post_init__(self) -> None:
        _check_uri(self.uri, forbidden=_FORBIDDEN_IN_QUOTED_STRING)
        for value in (self.name, self.language, self.group_id):
            if not value or _FORBIDDEN_IN_QUOTED_STRING & set(value):
                raise ValueError(f"{value!r} is not a valid quoted string")


def multivariant_playlist(
    variants: Sequence[Variant], subtitles: SubtitlesRendition | None = None
) -> str:
    """A multivariant playlist of audio-only variants whose segments start independently, in the
    order given: a native player starts on the first it can play. With `subtitles`, each variant
    names that rendition's group."""
    if not variants:
        raise ValueError("a multivariant playlist needs at least one variant")
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{PROTOCOL_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    group_attribute = ""
    if subtitles is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{subtitles.group_id}",NAME="{subtitles.name}",'
            f'LANGUAGE="{subtitles.language}",AUTOSELECT=YES,DEFAULT=NO,URI="{subtitles.uri}"'
        )
        group_attribute = f',SUBTITLES="{subtitles.group_id}"'
    for variant in variants:
        average = variant.average_bandwidth_bps
        average_attribute = f",AVERAGE-BANDWIDTH={average}" if average is not None else ""
        lines += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={variant.bandwidth_bps}{average_attribute},"
            f'CODECS="{variant.codecs}"{group_attribute}',
            variant.uri,
        ]
    return "\n".join(lines) + "\n"


def master_playlist(*, media_uri: str, bandwidth_bps: int, codecs: str) -> str:
    """A master playlist with one variant stream whose segments start independently."""
    _check_uri(media_uri, forbidden=_FORBIDDEN_IN_URI_LINE)
    if bandwidth_bps <= 0:
        raise ValueError(f"bandwidth {bandwidth_bps} bit/s must be > 0")
    if not codecs or _FORBIDDEN_IN_QUOTED_STRING & set(codecs):
        raise ValueError(f"codecs {codecs!r} is not a valid quoted string")
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{PROTOCOL_VERSION}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth_bps},CODECS="{codecs}"',
        media_uri,
    ]
    return "\n".join(lines) + "\n"


def media_playlist(
    *,
    segments: Sequence[SegmentRef],
    target_duration_s: int,
    init_uri: str | None,
    is_ended: bool,
    is_vod: bool = False,
    discontinuity_sequence: int = 0,
) -> str:
    """A media playlist of consecutive `segments` sharing the init segment at `init_uri` (None:
    segments that need none, as WebVTT ones).

    `EXT-X-DISCONTINUITY` goes before each segment that is a discontinuity;
    `EXT-X-PROGRAM-DATE-TIME` on the first segment and after each discontinuity, where the segment
    has one. `discontinuity_sequence` counts the discontinuities that slid out of the window
    (RFC 8216 §6.2.2). A VOD playlist is complete, so `is_vod` requires `is_ended`.
    """
    _check_segments(segments, target_duration_s)
    if init_uri is not None:
        _check_uri(init_uri, forbidden=_FORBIDDEN_IN_QUOTED_STRING)
    if is_vod and not is_ended:
        raise ValueError("a VOD playlist never changes, so it must be ended")
    if discontinuity_sequence < 0:
        raise ValueError(f"discontinuity sequence {discontinuity_sequence} must be >= 0")
    media_sequence = segments[0].sequence_number if segments else 0
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{PROTOCOL_VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration_s}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
    ]
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if is_vod:
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if init_uri is not None:
        lines.append(f'#EXT-X-MAP:URI="{init_uri}"')
    for index, segment in enumerate(segments):
        if segment.is_discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.program_date_time is not None and (index == 0 or segment.is_discontinuity):
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso8601_utc_ms(segment.program_date_time)}")
        lines += [f"#EXTINF:{_extinf(segment.duration_s)},", segment.uri]
    if is_ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def read_media_playlist(text: str) -> MediaPlaylist:
    """Read back a media playlist as `media_playlist` writes it; ValueError if it is not one.

    A segment without its own date-time gets the end of the one before (RFC 8216 §4.3.2.6).
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("a playlist starts with #EXTM3U")
    media_sequence = discontinuity_sequence = 0
    segments: list[SegmentRef] = []
    duration_s: float | None = None
    date_time: datetime | None = None
    is_discontinuity = is_ended = False
    for line in lines[1:]:
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-MEDIA-SEQUENCE":
            media_sequence = _read_count(value, tag)
        elif tag == "#EXT-X-DISCONTINUITY-SEQUENCE":
            discontinuity_sequence = _read_count(value, tag)
        elif tag == "#EXT-X-DISCONTINUITY":
            is_discontinuity = True
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            date_time = _read_date_time(value)
        elif tag == "#EXTINF":
            duration_s = _read_duration_s(value)
        elif tag == "#EXT-X-ENDLIST":
            is_ended = True
        elif not line.startswith("#"):
            if duration_s is None:
                raise ValueError(f"segment {line!r} has no #EXTINF before it")
            if date_time is None and segments:
                date_time = segments[-1].end_date_time
            segments.append(
                SegmentRef(
                    line, duration_s, media_sequence + len(segments), date_time, is_discontinuity
                )
            )
            duration_s, date_time, is_discontinuity = None, None, False
    return MediaPlaylist(tuple(segments), discontinuity_sequence, is_ended)


def _read_count(value: str, tag: str) -> int:
    if not value.isdigit():
        raise ValueError(f"{tag} {value!r} is not a decimal integer")
    return int(value)


def _read_duration_s(value: str) -> float:
    try:
        return float(Decimal(value.split(",", 1)[0]))
    except InvalidOperation:
        raise ValueError(f"#EXTINF {value!r} is not a duration") from None


def _read_date_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"program date-time {value!r} has no time zone")
    return moment.astimezone(UTC)


def _check_segments(segments: Sequence[SegmentRef], target_duration_s: int) -> None:
    if target_duration_s <= 0:
        raise ValueError(f"target duration {target_duration_s} s must be > 0")
    for previous, segment in pairwise(segments):
        if segment.sequence_number != previous.sequence_number + 1:
            raise ValueError(
                f"segment '{segment.uri}' has sequence number {segment.sequence_number} "
                f"after {previous.sequence_number}; listed segments must be consecutive"
            )
    for segment in segments:
        # RFC 8216 §4.3.3.1: each EXTINF, rounded to the nearest integer, <= target duration.
        rounded_s = _extinf(segment.duration_s).to_integral_value(rounding=ROUND_HALF_UP)
        if rounded_s > target_duration_s:
            raise ValueError(
                f"segment '{segment.uri}' lasts {segment.duration_s} s, which rounds to "
                f"{rounded_s} s; the target duration is {target_duration_s} s"
            )


def _extinf(duration_s: float) -> Decimal:
    return Decimal(repr(duration_s)).quantize(_EXTINF_QUANTUM, rounding=ROUND_HALF_UP)


def _iso8601_utc_ms(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"program date-time {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_uri(uri: str, *, forbidden: frozenset[str]) -> None:
    # A line that starts with '#' is a tag or a comment, never a URI.
    if not uri or uri.startswith("#") or forbidden & set(uri):
        raise ValueError(f"URI {uri!r} is empty, starts with '#' or holds a quote or line break")
