"""The live HLS packager: AAC frames into 1.024 s CMAF segments, written durably, and the live,
master and replay playlists (RFC 8216).

Media plane. Segment names are immutable; playlists are replaced atomically.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

from rostra.media.audio import SAMPLE_RATE_HZ
from rostra.media.encode import AAC_BITRATE_BPS, AAC_FRAME_SAMPLES, CHANNELS, EncodedPacket
from rostra.media.fmp4 import audio_specific_config, init_segment, media_segment
from rostra.media.hls.playlist import SegmentRef, master_playlist, media_playlist
from rostra.media.record import (
    INIT_NAME,
    LIVE_PLAYLIST_NAME,
    REPLAY_PLAYLIST_NAME,
    recorded_segments,
    segment_name,
    write_durable,
)

FRAMES_PER_SEGMENT = 48
SEGMENT_SAMPLES = FRAMES_PER_SEGMENT * AAC_FRAME_SAMPLES
SEGMENT_DURATION_S = SEGMENT_SAMPLES / SAMPLE_RATE_HZ
TARGET_DURATION_S = 1
AAC_CODECS = "mp4a.40.2"
# what a segment costs on the wire, including container overhead
BANDWIDTH_BPS = AAC_BITRATE_BPS + 8_000


def master_text() -> str:
    return master_playlist(
        media_uri=LIVE_PLAYLIST_NAME, bandwidth_bps=BANDWIDTH_BPS, codecs=AAC_CODECS
    )


def replay_text(directory: Path) -> str | None:
    """A VOD playlist of every segment recorded in `directory`, or None if there are none."""
    numbers = recorded_segments(directory)
    if not numbers:
        return None
    # positions, not file numbers: a segment lost in a crash leaves no hole in the playlist
    refs = [SegmentRef(segment_name(n), SEGMENT_DURATION_S, i) for i, n in enumerate(numbers)]
    last = directory / segment_name(numbers[-1])
    refs[-1] = SegmentRef(refs[-1].uri, _segment_duration_s(last), len(numbers) - 1)
    return media_playlist(
        segments=refs,
        target_duration_s=TARGET_DURATION_S,
        init_uri=INIT_NAME,
        is_ended=True,
        is_vod=True,
    )


def _segment_duration_s(path: Path) -> float:
    """The final segment may be short; its true length is in the sample count of its trun."""
    data = path.read_bytes()
    index = data.find(b"trun")
    if index < 0:
        return SEGMENT_DURATION_S
    count = int.from_bytes(data[index + 8 : index + 12], "big")
    return count * AAC_FRAME_SAMPLES / SAMPLE_RATE_HZ


class HlsPackager:
    def __init__(self, directory: Path, *, window_segments: int, started_at: datetime) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._window = window_segments
        existing = recorded_segments(directory)
        self._next_sequence = existing[-1] + 1 if existing else 0
        self._started_at = started_at
        self._first_sequence = self._next_sequence
        self._pending: list[bytes] = []
        self._segments: list[SegmentRef] = []
        self._lock = threading.Lock()
        self._live_text: str | None = None
        write_durable(
            directory / INIT_NAME,
            init_segment(
                audio_specific_config=audio_specific_config(SAMPLE_RATE_HZ, CHANNELS),
                sample_rate_hz=SAMPLE_RATE_HZ,
                channels=CHANNELS,
            ),
        )

    @property
    def live_text(self) -> str | None:
        return self._live_text

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def add(self, packet: EncodedPacket) -> None:
        self._pending.append(packet.data)
        if len(self._pending) >= FRAMES_PER_SEGMENT:
            self._cut()

    def finish(self) -> None:
        """Write the segment in flight, close the live playlist and write the replay playlist."""
        if self._pending:
            self._cut()
        self._write_live(is_ended=True)
        replay = replay_text(self._directory)
        if replay is not None:
            write_durable(self._directory / REPLAY_PLAYLIST_NAME, replay.encode())

    def _cut(self) -> None:
        sequence = self._next_sequence
        samples, self._pending = self._pending, []
        data = media_segment(
            sequence_number=sequence + 1,
            base_media_decode_time=sequence * SEGMENT_SAMPLES,
            samples=samples,
            sample_duration=AAC_FRAME_SAMPLES,
        )
        write_durable(self._directory / segment_name(sequence), data)
        duration_s = len(samples) * AAC_FRAME_SAMPLES / SAMPLE_RATE_HZ
        self._segments.append(SegmentRef(segment_name(sequence), duration_s, sequence))
        self._next_sequence += 1
        self._write_live(is_ended=False)

    def _write_live(self, *, is_ended: bool) -> None:
        window = self._segments[-self._window :]
        if not window:
            return
        first = window[0].sequence_number - self._first_sequence
        date_time = self._started_at + timedelta(seconds=first * SEGMENT_DURATION_S)
        text = media_playlist(
            segments=window,
            target_duration_s=TARGET_DURATION_S,
            init_uri=INIT_NAME,
            is_ended=is_ended,
            program_date_time=date_time,
        )
        write_durable(self._directory / LIVE_PLAYLIST_NAME, text.encode(), is_durable=False)
        with self._lock:
            self._live_text = text
