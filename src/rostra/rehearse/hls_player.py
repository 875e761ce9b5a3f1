"""A simulated HLS player: the live media playlist read as a player reads it (with the partial
segments of Low-Latency HLS, RFC 8216bis), and the buffer a player fills with segments or parts
and drains in real time (a stall when it runs dry).

Rehearsal plane (a client). Pure: no I/O, times are passed in, so the arithmetic is tested exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class LiveSegment:
    """One segment of a live media playlist: its URI, length, sequence number and the wall
    clock of its first sample (epoch seconds; None when the playlist gives no date-time)."""

    uri: str
    duration_s: float
    sequence_number: int
    program_date_time_s: float | None


@dataclass(frozen=True, slots=True)
class LivePart:
    """One partial segment (EXT-X-PART): part `index` of segment `sequence_number`, with the
    wall clock of its first sample (its segment's date-time plus the parts before it)."""

    uri: str
    duration_s: float
    sequence_number: int
    index: int
    program_date_time_s: float | None

    @property
    def position(self) -> tuple[int, int]:
        return self.sequence_number, self.index


@dataclass(frozen=True, slots=True)
class LivePlaylist:
    """A media playlist as a player sees it. `parts`, `part_target_s`, `part_hold_back_s`,
    `can_block_reload` and `preload_hint_uri` are LL-HLS's (empty, 0 or None without it);
    `complete_through` is the sequence number of the last whole segment (-1 for none)."""

    target_duration_s: float
    segments: tuple[LiveSegment, ...]
    init_uri: str | None
    is_ended: bool
    parts: tuple[LivePart, ...] = ()
    part_target_s: float = 0.0
    part_hold_back_s: float = 0.0
    can_block_reload: bool = False
    preload_hint_uri: str | None = None

    @property
    def complete_through(self) -> int:
        return self.segments[-1].sequence_number if self.segments else -1


@dataclass(slots=True)
class _Reading:
    """A playlist's header values as its lines are read."""

    target_s: float = 0.0
    sequence: int = 0
    init_uri: str | None = None
    is_ended: bool = False
    duration_s: float | None = None
    date_time_s: float | None = None
    part_target_s: float = 0.0
    part_hold_back_s: float = 0.0
    can_block_reload: bool = False
    preload_hint_uri: str | None = None
    # the parts read since the last whole segment (they belong to the next one)
    pending_parts: list[tuple[str, float]] = field(default_factory=list)


def parse_live_playlist(text: str) -> LivePlaylist:
    """The segments of a media playlist (RFC 8216), each with its date-time: a segment without
    its own EXT-X-PROGRAM-DATE-TIME follows the one before it (§4.3.2.6); and its partial
    segments (RFC 8216bis §4.4.4.9), each with its date-time within its segment. ValueError if
    it is not a media playlist."""
    if not text.startswith("#EXTM3U"):
        raise ValueError("a playlist starts with #EXTM3U")
    reading = _Reading()
    segments: list[LiveSegment] = []
    parts: list[LivePart] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line[0] == "#":
            _read_tag(line, reading)
            continue
        if reading.duration_s is None:
            raise ValueError(f"segment {line!r} has no #EXTINF before it")
        date_time_s = _segment_start_s(reading, segments)
        number = reading.sequence + len(segments)
        parts += _parts_of(reading, number, date_time_s)
        segments.append(LiveSegment(line, reading.duration_s, number, date_time_s))
        reading.duration_s = reading.date_time_s = None
    if reading.target_s <= 0:
        raise ValueError("a media playlist has a positive #EXT-X-TARGETDURATION")
    in_progress = reading.sequence + len(segments)
    parts += _parts_of(reading, in_progress, _segment_start_s(reading, segments))
    return LivePlaylist(
        reading.target_s,
        tuple(segments),
        reading.init_uri,
        reading.is_ended,
        tuple(parts),
        reading.part_target_s,
        reading.part_hold_back_s,
        reading.can_block_reload,
        reading.preload_hint_uri,
    )


def _segment_start_s(reading: _Reading, segments: list[LiveSegment]) -> float | None:
    if reading.date_time_s is not None:
        return reading.date_time_s
    if segments and segments[-1].program_date_time_s is not None:
        return segments[-1].program_date_time_s + segments[-1].duration_s
    return None


def _parts_of(reading: _Reading, sequence: int, start_s: float | None) -> list[LivePart]:
    """The parts read since the last segment, as parts of segment `sequence`."""
    parts = []
    offset_s = 0.0
    for index, (uri, duration_s) in enumerate(reading.pending_parts):
        date_time_s = None if start_s is None else start_s + offset_s
        parts.append(LivePart(uri, duration_s, sequence, index, date_time_s))
        offset_s += duration_s
    reading.pending_parts = []
    return parts


def _attributes(value: str) -> dict[str, str]:
    """An attribute list (RFC 8216 §4.2), quoted strings unquoted; no quoted value here holds
    a comma."""
    pairs = (item.partition("=") for item in value.split(","))
    return {name.strip(): text.strip().strip('"') for name, _, text in pairs}


def _read_tag(line: str, reading: _Reading) -> None:
    tag, _, value = line.partition(":")
    if tag == "#EXTINF":
        reading.duration_s = float(value.split(",", 1)[0])
    elif tag == "#EXT-X-PART":
        attributes = _attributes(value)
        reading.pending_parts.append((attributes["URI"], float(attributes["DURATION"])))
    elif tag == "#EXT-X-PROGRAM-DATE-TIME":
        reading.date_time_s = datetime.fromisoformat(value).timestamp()
    elif tag == "#EXT-X-MEDIA-SEQUENCE":
        reading.sequence = int(value)
    elif tag == "#EXT-X-TARGETDURATION":
        reading.target_s = float(value)
    elif tag == "#EXT-X-MAP" and 'URI="' in value:
        reading.init_uri = value.split('URI="', 1)[1].split('"', 1)[0]
    elif tag == "#EXT-X-ENDLIST":
        reading.is_ended = True
    else:
        _read_ll_tag(tag, value, reading)


def _read_ll_tag(tag: str, value: str, reading: _Reading) -> None:
    if tag == "#EXT-X-PART-INF":
        reading.part_target_s = float(_attributes(value)["PART-TARGET"])
    elif tag == "#EXT-X-SERVER-CONTROL":
        attributes = _attributes(value)
        reading.can_block_reload = attributes.get("CAN-BLOCK-RELOAD") == "YES"
        reading.part_hold_back_s = float(attributes.get("PART-HOLD-BACK", 0.0))
    elif tag == "#EXT-X-PRELOAD-HINT":
        attributes = _attributes(value)
        if attributes.get("TYPE") == "PART":
            reading.preload_hint_uri = attributes.get("URI")


def start_part(playlist: LivePlaylist) -> LivePart | None:
    """Where a low-latency player starts: the part at least PART-HOLD-BACK behind the live
    edge (the end of the last listed part), as hls.js does; None without parts."""
    if not playlist.parts:
        return None
    behind_s = 0.0
    for part in reversed(playlist.parts):
        behind_s += part.duration_s
        if behind_s >= playlist.part_hold_back_s - 1e-6:
            return part
    return playlist.parts[0]


def next_position(playlist: LivePlaylist, last: tuple[int, int]) -> tuple[int, int]:
    """The part to ask for after part `last` (msn, index): the next one of its segment, or part 0
    of the next segment once the playlist shows `last`'s segment whole and `last` its final part
    (RFC 8216bis §6.2.5.2: a server reads a part past a segment's end as the next's first)."""
    msn, index = last
    if msn <= playlist.complete_through:
        later = [part for part in playlist.parts if part.sequence_number == msn]
        if not later or later[-1].index <= index:
            return msn + 1, 0
    return msn, index + 1


def parts_after(playlist: LivePlaylist, last: tuple[int, int]) -> list[LivePart]:
    """The listed parts that come after part `last`, in order."""
    return [part for part in playlist.parts if part.position > last]


class PlayerState(StrEnum):
    STARTING = "starting"  # filling the buffer before the first sound
    PLAYING = "playing"
    STALLED = "stalled"  # ran dry after playing: the listener hears nothing


@dataclass(slots=True)
class PlayerTally:
    """What a player went through, since it was made or last taken (`PlayerBuffer.take`)."""

    stalls: int = 0
    stall_s: float = 0.0
    played_s: float = 0.0


class PlayerBuffer:
    """A player's buffer: it starts playing (and plays again after a stall) once `start_buffer_s`
    of media is buffered, and drains in real time while playing. Running dry while playing is a
    stall, which lasts until the buffer holds `start_buffer_s` again. The wait before the first
    sound is start-up, not a stall.

    It knows the date-time of the audio being played, so it tells the latency to live."""

    def __init__(self, start_buffer_s: float, *, now_s: float) -> None:
        if start_buffer_s <= 0:
            raise ValueError(f"start buffer {start_buffer_s} s must be > 0")
        self.start_buffer_s = start_buffer_s
        self.state = PlayerState.STARTING
        self.started_at_s: float | None = None
        self.buffered_s = 0.0
        self.tally = PlayerTally()
        self._at_s = now_s
        # (date-time of the segment's first sample, its length, seconds of it already played)
        self._queue: deque[tuple[float | None, float]] = deque()
        self._head_played_s = 0.0

    def add(self, duration_s: float, program_date_time_s: float | None, *, now_s: float) -> None:
        """A segment arrived at `now_s` (the time up to then is played or stalled first)."""
        self.advance(now_s)
        self._queue.append((program_date_time_s, duration_s))
        self.buffered_s += duration_s
        if self.state != PlayerState.PLAYING and self.buffered_s >= self.start_buffer_s:
            if self.started_at_s is None:
                self.started_at_s = now_s
            self.state = PlayerState.PLAYING

    def advance(self, now_s: float) -> None:
        """Play (or stall) from the last call until `now_s`."""
        elapsed_s = max(0.0, now_s - self._at_s)
        self._at_s = max(self._at_s, now_s)
        if self.state == PlayerState.STALLED:
            self.tally.stall_s += elapsed_s
        elif self.state == PlayerState.PLAYING:
            played_s = min(elapsed_s, self.buffered_s)
            self._consume(played_s)
            self.tally.played_s += played_s
            if elapsed_s > played_s:  # dry before now: silence since it ran out
                self.state = PlayerState.STALLED
                self.tally.stalls += 1
                self.tally.stall_s += elapsed_s - played_s

    def _consume(self, seconds: float) -> None:
        self.buffered_s -= seconds
        if self.buffered_s < 1e-9:
            self.buffered_s = 0.0
        remaining = seconds + self._head_played_s
        while self._queue and remaining >= self._queue[0][1] - 1e-9:
            remaining -= self._queue.popleft()[1]
        self._head_played_s = max(0.0, remaining) if self._queue else 0.0

    def latency_to_live_s(self, now_s: float) -> float | None:
        """Wall clock minus the date-time of the audio being played (None when not playing or
        the segment has no date-time)."""
        self.advance(now_s)
        if self.state != PlayerState.PLAYING or not self._queue:
            return None
        date_time_s = self._queue[0][0]
        if date_time_s is None:
            return None
        return now_s - (date_time_s + self._head_played_s)

    def take(self) -> PlayerTally:
        """The tally since the last take, and a fresh one started."""
        tally, self.tally = self.tally, PlayerTally()
        return tally
