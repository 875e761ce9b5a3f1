"""A space's captions on disk: the live subtitles playlist and its WebVTT segments (one per audio
segment, written once recognition has passed its end), the last minutes as one document, every
cue in a log, and the replay's document made from that log when the space ends.

Media plane. Files are replaced atomically; a write that fails is reported and the next is tried.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from rostra.files import write_durable
from rostra.media.captions.playlist import (
    CAPTIONS_PLAYLIST_NAME,
    CUES_LOG_NAME,
    LIVE_DOCUMENT_NAME,
    REPLAY_DOCUMENT_NAME,
    SUBTITLE_SEGMENT_NAME_RE,
    subtitle_segment_name,
    subtitles_playlist,
)
from rostra.media.captions.webvtt import Cue, webvtt_document, webvtt_segment
from rostra.media.codecs import SEGMENT_DURATION_S, TARGET_DURATION_S
from rostra.media.hls.playlist import SegmentRef
from rostra.media.record import delete_parts_before, recorded_segments

# the live document holds this much of the program
LIVE_DOCUMENT_S = 300.0
# recognition runs behind the audio: the subtitles playlist lists more segments than the audio
# one, so a player at the live edge still finds the segment of what it plays
SUBTITLE_WINDOW_FACTOR = 3
# a subtitles segment is written this long after its audio even if recognition is further
# behind (or restarting): a cue that comes later still reaches the document and the replay
MAX_LAG_S = 10.0
MAX_LOG_LINE_BYTES = 4096

FaultSink = Callable[[str, BaseException], None]
Anchor = Callable[[], datetime | None]
CAPTIONS = "captions"


class CaptionStore:
    """Owned by one caption worker; its methods may be called from its threads (a lock)."""

    def __init__(
        self,
        directory: Path,
        *,
        first_sequence: int,
        window_segments: int,
        anchor: Anchor,
        on_fault: FaultSink,
    ) -> None:
        self._directory = directory
        self._first_sequence = first_sequence
        self._next_sequence = first_sequence
        self._window: deque[SegmentRef] = deque()
        self._window_segments = window_segments * SUBTITLE_WINDOW_FACTOR
        self._anchor = anchor
        self._on_fault = on_fault
        self._cues: deque[Cue] = deque()
        self._lock = threading.Lock()
        self.cue_count = 0

    def add(self, cue: Cue) -> None:
        with self._lock:
            self._cues.append(cue)
            self.cue_count += 1
            while self._cues and self._cues[0].end_s < cue.end_s - LIVE_DOCUMENT_S:
                self._cues.popleft()
            line = json.dumps([cue.start_s, cue.end_s, cue.text]) + "\n"
            self._try(self._append_log, line)
            self._try(self._write_document)

    def advance(self, through_s: float, *, fed_end_s: float, is_final: bool = False) -> None:
        """Write the subtitles segments whose audio ends by `through_s` (recognition has passed
        them), or by MAX_LAG_S before `fed_end_s`; all of them up to `fed_end_s` if `is_final`."""
        with self._lock:
            ready_s = fed_end_s if is_final else max(through_s, fed_end_s - MAX_LAG_S)
            ready_s = min(ready_s, fed_end_s)
            is_written = False
            while True:
                start_s = self._next_sequence * SEGMENT_DURATION_S
                end_s = min(start_s + SEGMENT_DURATION_S, fed_end_s)
                is_whole = end_s - start_s >= SEGMENT_DURATION_S - 1e-9
                if end_s <= start_s or end_s > ready_s or not (is_whole or is_final):
                    break
                self._write_segment(start_s, end_s)
                is_written = True
            if is_written:
                self._try(self._write_playlist, False)

    def finish(self, *, is_ending: bool, fed_end_s: float) -> None:
        self.advance(fed_end_s, fed_end_s=fed_end_s, is_final=True)
        with self._lock:
            if self._window:
                self._try(self._write_playlist, is_ending)
        if is_ending:
            self._try(self._write_replay)

    # --- files -------------------------------------------------------------------------------
    def _try(self, write: Callable[..., None], *args: object) -> None:
        try:
            write(*args)
        except OSError as error:
            self._on_fault(CAPTIONS, error)

    def _write_segment(self, start_s: float, end_s: float) -> None:
        sequence = self._next_sequence
        self._next_sequence += 1
        name = subtitle_segment_name(sequence)
        text = webvtt_segment(self._cues, start_s=start_s, end_s=end_s)
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            write_durable(self._directory / name, text.encode(), is_durable=False)
        except OSError as error:
            self._on_fault(CAPTIONS, error)
            return
        anchor = self._anchor()
        date_time = None
        if anchor is not None:
            date_time = anchor + timedelta(
                seconds=(sequence - self._first_sequence) * SEGMENT_DURATION_S
            )
        self._window.append(SegmentRef(name, end_s - start_s, sequence, date_time))
        while len(self._window) > self._window_segments:
            self._window.popleft()
        first = self._window[0].sequence_number
        try:
            delete_parts_before(self._directory, first, pattern=SUBTITLE_SEGMENT_NAME_RE)
        except OSError as error:
            self._on_fault(CAPTIONS, error)

    def _write_playlist(self, is_ended: bool) -> None:
        text = subtitles_playlist(
            segments=list(self._window), target_duration_s=TARGET_DURATION_S, is_ended=is_ended
        )
        write_durable(self._directory / CAPTIONS_PLAYLIST_NAME, text.encode(), is_durable=False)

    def _write_document(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        text = webvtt_document(self._cues)
        write_durable(self._directory / LIVE_DOCUMENT_NAME, text.encode(), is_durable=False)

    def _append_log(self, line: str) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        with (self._directory / CUES_LOG_NAME).open("a", encoding="utf-8") as log_file:
            log_file.write(line)

    def _write_replay(self) -> None:
        text = replay_document(self._directory)
        if text is not None:
            write_durable(self._directory / REPLAY_DOCUMENT_NAME, text.encode())


def read_cues(path: Path) -> list[Cue]:
    """The cues of a log, skipping any line that is not one (a crash may cut the last)."""
    cues = []
    with path.open(encoding="utf-8", errors="replace") as log_file:
        for line in log_file:
            try:
                start_s, end_s, text = json.loads(line[:MAX_LOG_LINE_BYTES])
                cues.append(Cue(float(start_s), float(end_s), str(text)))
            except (ValueError, TypeError):
                continue
    return cues


def replay_document(directory: Path) -> str | None:
    """Every cue of the recording in `directory`, timed from the replay's start (its first
    recorded segment); None if the space had no captions."""
    log_path = directory / CUES_LOG_NAME
    recorded = recorded_segments(directory)
    if not log_path.is_file() or not recorded:
        return None
    cues = sorted(read_cues(log_path), key=lambda cue: cue.start_s)
    return webvtt_document(cues, offset_s=recorded[0] * SEGMENT_DURATION_S)
