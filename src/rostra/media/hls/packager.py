"""The live HLS packager: encoded frames of one rendition (AAC-LC, or Opus) into CMAF segments of
about 1.024 s, written durably, and its live playlist (RFC 8216) over a bounded window, continued
across restarts of the origin. Every rendition cuts on the AAC timeline (see rendition.py), so
segment n of each starts within a frame of the others'.

Media plane. Segment names are immutable; playlists are replaced atomically. A segment that cannot
be written is counted as lost and the next one is tried again; nothing here ends the program.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path

from rostra.clock import Clock, SystemClock
from rostra.files import write_durable
from rostra.media.audio import SAMPLE_RATE_HZ
from rostra.media.codecs import (
    AAC_CODECS,
    BANDWIDTH_BPS,
    FRAMES_PER_SEGMENT,
    PARTS_PER_SEGMENT,
    SEGMENT_DURATION_S,
    SEGMENT_SAMPLES,
    TARGET_DURATION_S,
    EncodedPacket,
)
from rostra.media.fmp4 import media_fragment, media_segment
from rostra.media.health import FaultSink, describe
from rostra.media.hls.ll_playlist import (
    MIN_PART_HOLD_BACK_PARTS,
    PART_LIST_TARGET_DURATIONS,
    PartRef,
    SegmentInProgress,
    ended_media_playlist,
    ll_media_playlist,
)
from rostra.media.hls.playlist import SegmentRef, media_playlist, read_media_playlist
from rostra.media.hls.rendition import (
    AAC_RENDITION,
    Rendition,
    frames_before_part,
    frames_before_segment,
)
from rostra.media.hls.replay import master_text, replay_text, segment_duration_s
from rostra.media.record import (
    REPLAY_PLAYLIST_NAME,
    DiskSync,
    delete_parts,
    delete_parts_before,
    recorded_segments,
)

log = logging.getLogger(__name__)

# re-exported for the callers that imported them from here before replay.py and codecs.py
__all__ = [
    "AAC_CODECS",
    "BANDWIDTH_BPS",
    "FRAMES_PER_SEGMENT",
    "SEGMENT_DURATION_S",
    "SEGMENT_SAMPLES",
    "TARGET_DURATION_S",
    "HlsPackager",
    "master_text",
    "replay_text",
]

RECORDER = "recorder"
PACKAGER = "packager"


def _log_fault(part: str, error: BaseException) -> None:
    log.error("media part failed", extra={"part": part, "error": describe(error)}, exc_info=error)


class HlsPackager:
    """Cuts segments and keeps the live window: `window_segments` listed, never more in memory.
    Each segment is also cut into LL-HLS parts of whole frames, each written as its own immutable
    fragment as it completes; the live playlist is rewritten after each part.

    On construction it resumes from `directory`: the next segment follows the last on disk, and
    the previous live playlist's window (unless it ended) stays listed before a discontinuity.
    Date-times come from `clock` at this run's first frame plus the samples since, never earlier
    than the end of the resumed window, so they only go forward.

    `rendition` names the files and sets the frame length; `first_sequence` (the AAC packager's
    next sequence, for the Opus one) keeps the renditions' sequence numbers equal, and `dated_by`
    (the AAC packager, fed the same program) its date-times: both count from the same instant.
    """

    def __init__(
        self,
        directory: Path,
        *,
        window_segments: int,
        clock: Clock | None = None,
        on_fault: FaultSink | None = None,
        rendition: Rendition = AAC_RENDITION,
        first_sequence: int | None = None,
        dated_by: HlsPackager | None = None,
    ) -> None:
        if window_segments < 1:
            raise ValueError(f"window of {window_segments} segments must hold at least 1")
        self._directory = directory
        self._window_segments = window_segments
        self._clock = clock or SystemClock()
        self._on_fault = on_fault or _log_fault
        self._rendition = rendition
        self._lock = threading.Lock()
        self._disk_sync = DiskSync(
            rendition.playlist_name, lambda error: self._on_fault(RECORDER, error)
        )
        if first_sequence is None:
            existing = recorded_segments(directory, pattern=rendition.segment_pattern)
            first_sequence = existing[-1] + 1 if existing else 0
        self._next_sequence = first_sequence
        # where this run is on the AAC timeline: segments cut (written or lost), frames taken,
        # parts cut of the segment in flight and the first frame of the next part
        self._run_segments = 0
        self._run_frames = 0
        self._part_index = 0
        self._part_start = 0
        self._window: deque[SegmentRef] = deque()
        self._discontinuity_sequence = 0
        self._resume()
        self._delete_old_parts()
        self._is_next_discontinuity = bool(self._window)
        # parts of the listed segments made by this run, and of the segment in flight
        self._parts: dict[int, tuple[PartRef, ...]] = {}
        self._current_parts: list[PartRef] = []
        # no parts for the segment in flight: one of its names may already hold other bytes
        # (the previous run crashed mid-segment), and a part's name never changes its content
        self._is_part_failed = any(
            (directory / rendition.part_name(self._next_sequence, index)).exists()
            for index in range(PARTS_PER_SEGMENT)
        )
        self._anchor: datetime | None = None
        self._dated_by = dated_by
        self._samples_since_anchor = 0
        self._pending: list[bytes] = []
        self._pending_first_sample = 0
        self._has_init = False
        self.segments_written = 0
        self.segments_lost = 0
        self.last_segment_at_s: float | None = None
        self._live_text = self._render(is_ended=False) if self._window else None

    @property
    def live_text(self) -> str | None:
        with self._lock:
            return self._live_text

    @property
    def listed_segments(self) -> tuple[SegmentRef, ...]:
        return tuple(self._window)

    @property
    def next_sequence(self) -> int:
        """The media sequence number the segment in flight will take."""
        return self._next_sequence

    @property
    def rendition(self) -> Rendition:
        return self._rendition

    @property
    def anchor(self) -> datetime | None:
        """The wall-clock time of this run's first sample, once it has one."""
        return self._anchor

    def add(self, packet: EncodedPacket) -> None:
        """One frame of the rendition (`frame_samples` long); parts and segments are cut at the
        first frame boundary at or after each AAC part's end."""
        if self._anchor is None:
            self._anchor = self._start_time()
        if not self._pending:
            self._pending_first_sample = self._samples_since_anchor
        self._pending.append(packet.data)
        self._samples_since_anchor += self._rendition.frame_samples
        self._run_frames += 1
        parts_ending = self._run_segments * PARTS_PER_SEGMENT + self._part_index + 1
        if self._run_frames < frames_before_part(parts_ending, self._rendition.frame_samples):
            return
        if self._part_index + 1 >= PARTS_PER_SEGMENT:
            self._cut()
            return
        self._cut_part()
        self._part_index += 1
        self._part_start = len(self._pending)
        if self._window:
            self._write_live(is_ended=False)

    def finish(self, *, is_ending: bool) -> None:
        """Write the segment in flight and the live playlist: with `EXT-X-ENDLIST` and the replay
        playlist when the space ends (`is_ending`), else left open for the next run to continue."""
        if self._pending:
            self._cut()
        self._disk_sync.close()  # the recording is durable before the space is said to end
        if self._window:
            self._write_live(is_ended=is_ending)
        if not is_ending or not self._rendition.is_recorded:
            return
        try:
            replay = replay_text(self._directory)
            if replay is not None:
                write_durable(self._directory / REPLAY_PLAYLIST_NAME, replay.encode())
        except OSError as error:
            self._on_fault(RECORDER, error)

    # --- segments ----------------------------------------------------------------------------
    def _start_time(self) -> datetime:
        now = self._clock.now()
        if self._window:
            resumed_end = self._window[-1].end_date_time
            if resumed_end is not None and resumed_end > now:
                return resumed_end
        return now

    def _pending_date_time(self) -> datetime:
        if self._dated_by is not None and self._dated_by.anchor is not None:
            # the other rendition's first sample is this one's: the same program, same instant
            self._anchor = self._dated_by.anchor
            self._dated_by = None
        if self._anchor is None:
            self._anchor = self._start_time()
        return self._anchor + timedelta(seconds=self._pending_first_sample / SAMPLE_RATE_HZ)

    def _segment_base(self) -> int:
        """The decode time of the segment in flight: on the AAC grid (sequence × 1.024 s), plus
        how far this rendition's cut lies past it (less than one of its frames)."""
        frame_samples = self._rendition.frame_samples
        past_grid = (
            frames_before_segment(self._run_segments, frame_samples) * frame_samples
            - self._run_segments * SEGMENT_SAMPLES
        )
        return self._next_sequence * SEGMENT_SAMPLES + past_grid

    def _cut_part(self) -> None:
        """Write the frames since the last part as the next part of the segment in flight."""
        index = self._part_index
        first = self._part_start
        samples = self._pending[first:]
        if self._is_part_failed or not samples:
            return
        sequence = self._next_sequence
        frame_samples = self._rendition.frame_samples
        data = media_fragment(
            sequence_number=sequence * PARTS_PER_SEGMENT + index + 1,
            base_media_decode_time=self._segment_base() + first * frame_samples,
            samples=samples,
            sample_duration=frame_samples,
        )
        name = self._rendition.part_name(sequence, index)
        try:
            self._write_init()
            write_durable(self._directory / name, data, is_durable=False)
        except OSError as error:
            # a playlist lists parts without holes: this segment goes on without parts, and so
            # do the earlier ones (RFC 8216bis: parts near the live edge, or none before them)
            self._is_part_failed = True
            self._current_parts = []
            self._parts.clear()
            self._on_fault(PACKAGER, error)
            return
        duration_s = len(samples) * frame_samples / SAMPLE_RATE_HZ
        self._current_parts.append(PartRef(name, duration_s))

    def _cut(self) -> None:
        date_time = self._pending_date_time()
        self._cut_part()
        parts, self._current_parts = tuple(self._current_parts), []
        samples, self._pending = self._pending, []
        sequence = self._next_sequence
        frame_samples = self._rendition.frame_samples
        name = self._rendition.segment_name(sequence)
        data = media_segment(
            sequence_number=sequence + 1,
            base_media_decode_time=self._segment_base(),
            samples=samples,
            sample_duration=frame_samples,
        )
        self._run_segments += 1
        self._part_index = 0
        self._part_start = 0
        try:
            self._write_init()
            # whole at once under its name; durable a moment later (the live path never waits)
            write_durable(self._directory / name, data, is_durable=False)
            self._disk_sync.sync(self._directory / name)
        except OSError as error:
            # the name was never listed, so the next segment takes it; its date-time jumps
            self.segments_lost += 1
            self._is_next_discontinuity = True
            # its parts were listed, and the next segment takes its name: that one goes without
            # parts, and the parts before it leave the playlist (no hole before the live edge)
            self._is_part_failed = True
            self._parts.clear()
            self._on_fault(RECORDER, error)
            return
        self._is_part_failed = False
        duration_s = len(samples) * frame_samples / SAMPLE_RATE_HZ
        self._list(
            SegmentRef(
                name,
                duration_s,
                sequence,
                program_date_time=date_time,
                is_discontinuity=self._is_next_discontinuity,
            )
        )
        if parts:
            self._parts[sequence] = parts
        self._is_next_discontinuity = False
        self._next_sequence += 1
        self.segments_written += 1
        self.last_segment_at_s = self._clock.monotonic_s()
        self._write_live(is_ended=False)

    def _write_init(self) -> None:
        if self._has_init:
            return
        self._directory.mkdir(parents=True, exist_ok=True)
        write_durable(self._directory / self._rendition.init_name, self._rendition.init_bytes())
        self._has_init = True

    def _list(self, segment: SegmentRef) -> None:
        self._window.append(segment)
        while len(self._window) > self._window_segments:
            # RFC 8216 §6.2.2: a discontinuity tag that leaves the playlist is counted
            gone = self._window.popleft()
            if gone.is_discontinuity:
                self._discontinuity_sequence += 1
            self._parts.pop(gone.sequence_number, None)
            try:
                delete_parts(
                    self._directory,
                    gone.sequence_number,
                    count=PARTS_PER_SEGMENT,
                    prefix=self._rendition.prefix,
                )
                if not self._rendition.is_recorded:
                    # not the recording: out of the live window, nothing names it any more
                    (self._directory / gone.uri).unlink(missing_ok=True)
            except OSError as error:
                self._on_fault(PACKAGER, error)

    # --- playlists ---------------------------------------------------------------------------
    def _render(self, *, is_ended: bool) -> str:
        if is_ended:
            return ended_media_playlist(
                segments=list(self._window),
                target_duration_s=TARGET_DURATION_S,
                init_uri=self._rendition.init_name,
                discontinuity_sequence=self._discontinuity_sequence,
            )
        sequence = self._next_sequence
        parts = tuple(self._current_parts)
        in_progress = SegmentInProgress(
            sequence,
            parts,
            program_date_time=self._pending_date_time() if parts else None,
            is_discontinuity=self._is_next_discontinuity,
        )
        try:
            return ll_media_playlist(
                segments=list(self._window),
                parts=self._listed_parts(),
                in_progress=in_progress,
                next_part_uri=(
                    self._rendition.part_name(sequence + 1, 0)
                    if self._is_part_failed
                    else self._rendition.part_name(sequence, len(parts))
                ),
                target_duration_s=TARGET_DURATION_S,
                part_target_s=self._rendition.part_target_s,
                # what a player keeps behind the newest part: three parts, as RFC 8216bis advises
                part_hold_back_s=MIN_PART_HOLD_BACK_PARTS * self._rendition.part_target_s,
                init_uri=self._rendition.init_name,
                discontinuity_sequence=self._discontinuity_sequence,
            )
        except ValueError as error:
            # parts that break a rule must not stop the playlist: it goes on without them
            self._on_fault(PACKAGER, error)
            return media_playlist(
                segments=list(self._window),
                target_duration_s=TARGET_DURATION_S,
                init_uri=self._rendition.init_name,
                is_ended=False,
                discontinuity_sequence=self._discontinuity_sequence,
            )

    def _listed_parts(self) -> dict[int, tuple[PartRef, ...]]:
        """The parts of the segments of the last three target durations (RFC 8216bis §6.2.2)."""
        listed: dict[int, tuple[PartRef, ...]] = {}
        covered_s = 0.0
        for segment in reversed(self._window):
            if covered_s >= PART_LIST_TARGET_DURATIONS * TARGET_DURATION_S:
                break
            parts = self._parts.get(segment.sequence_number)
            if parts is None:
                break
            listed[segment.sequence_number] = parts
            covered_s += segment.duration_s
        return listed

    def _delete_old_parts(self) -> None:
        """Parts a previous run left of segments that are no longer listed."""
        first = self._window[0].sequence_number if self._window else self._next_sequence
        try:
            delete_parts_before(self._directory, first, pattern=self._rendition.part_pattern)
            if not self._rendition.is_recorded:
                pattern = self._rendition.segment_pattern
                delete_parts_before(self._directory, first, pattern=pattern)
        except OSError as error:
            self._on_fault(PACKAGER, error)

    def _write_live(self, *, is_ended: bool) -> None:
        text = self._render(is_ended=is_ended)
        # served from memory even when the disk refuses it
        with self._lock:
            self._live_text = text
        try:
            write_durable(
                self._directory / self._rendition.playlist_name, text.encode(), is_durable=False
            )
        except OSError as error:
            self._on_fault(PACKAGER, error)

    def _resume(self) -> None:
        """Take back the window of the previous run's live playlist, if it is whole and open."""
        path = self._directory / self._rendition.playlist_name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as error:
            log.warning(
                "live playlist unreadable",
                extra={"path": str(path), "error": describe(error)},
            )
            return
        try:
            previous = read_media_playlist(text)
            segments = self._continuable(list(previous.segments)) if not previous.is_ended else []
        except (OSError, ValueError) as error:
            log.warning(
                "live playlist not continued", extra={"path": str(path), "error": describe(error)}
            )
            return
        if segments:
            self._discontinuity_sequence = previous.discontinuity_sequence
        for segment in segments:
            self._list(segment)

    def _continuable(self, segments: list[SegmentRef]) -> list[SegmentRef]:
        """The listed segments that are still on disk, plus any written after the playlist was
        (a crash between the two), so the window stays consecutive up to the next segment."""
        if not segments:
            return []
        for segment in segments:
            if segment.uri != self._rendition.segment_name(segment.sequence_number):
                raise ValueError(f"segment {segment.uri!r} is not named after its sequence")
            if not (self._directory / segment.uri).is_file():
                raise ValueError(f"segment {segment.uri!r} is listed but not on disk")
            if segment.program_date_time is None:
                raise ValueError(f"segment {segment.uri!r} has no date-time")
        last = segments[-1]
        if last.sequence_number >= self._next_sequence:
            raise ValueError(f"segment {last.uri!r} is listed after the last on disk")
        unlisted = self._next_sequence - 1 - last.sequence_number
        if unlisted > self._window_segments:
            raise ValueError(f"the playlist is {unlisted} segments behind the recording")
        frame_samples = self._rendition.frame_samples
        for sequence in range(last.sequence_number + 1, self._next_sequence):
            path = self._directory / self._rendition.segment_name(sequence)
            previous = segments[-1]
            segments.append(
                SegmentRef(
                    path.name,
                    segment_duration_s(path, frame_samples=frame_samples),
                    sequence,
                    program_date_time=previous.end_date_time,
                )
            )
        return segments
