"""The live HLS renditions of a program, AAC-LC and Opus, and where each cuts its segments and
parts so that both share the AAC timeline: segment n of either starts within one frame of
n × 1.024 s, whatever the frame length, with no drift however long the program runs.

Media plane. Pure: names, numbers and init bytes (struct only); no codec library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rostra.media.audio import SAMPLE_RATE_HZ
from rostra.media.codecs import (
    AAC_AVERAGE_BANDWIDTH_BPS,
    AAC_BANDWIDTH_BPS,
    AAC_CODECS,
    AAC_FRAME_SAMPLES,
    CHANNELS,
    OPUS_AVERAGE_BANDWIDTH_BPS,
    OPUS_BANDWIDTH_BPS,
    OPUS_CODECS,
    OPUS_FRAME_SAMPLES,
    OPUS_PRE_SKIP_SAMPLES,
    PART_SAMPLES,
    PARTS_PER_SEGMENT,
)
from rostra.media.fmp4 import (
    OPUS_TIMESCALE_HZ,
    audio_specific_config,
    init_segment,
    opus_init_segment,
)
from rostra.media.record import (
    INIT_NAME,
    LIVE_PLAYLIST_NAME,
    OPUS_INIT_NAME,
    OPUS_PART_NAME_RE,
    OPUS_PLAYLIST_NAME,
    OPUS_PREFIX,
    OPUS_SEGMENT_NAME_RE,
    PART_NAME_RE,
    SEGMENT_NAME_RE,
    part_name,
    segment_name,
)


def frames_before_part(part_count: int, frame_samples: int) -> int:
    """The frames of `frame_samples` a rendition has cut when the AAC rendition has cut
    `part_count` parts (of PART_SAMPLES) since the same start: the first frame boundary at or
    after part_count × PART_SAMPLES. Exact integers, so it never drifts."""
    if part_count < 0:
        raise ValueError(f"part count {part_count} must be >= 0")
    if frame_samples < 1:
        raise ValueError(f"frame of {frame_samples} samples must hold at least 1")
    return -(-part_count * PART_SAMPLES // frame_samples)


def frames_before_segment(segment_count: int, frame_samples: int) -> int:
    """As frames_before_part, at the end of `segment_count` whole segments."""
    return frames_before_part(segment_count * PARTS_PER_SEGMENT, frame_samples)


@dataclass(frozen=True, slots=True)
class Rendition:
    """One variant of the live HLS: its file names, codec, frame length and wire cost.

    `is_recorded`: its segments stay on disk as the recording (the replay and the download are
    made of them); otherwise a segment is deleted once it leaves the live window.
    """

    name: str
    prefix: str
    init_name: str
    playlist_name: str
    codecs: str
    frame_samples: int
    timescale_hz: int
    bandwidth_bps: int
    average_bandwidth_bps: int
    is_recorded: bool
    segment_pattern: re.Pattern[str]
    part_pattern: re.Pattern[str]

    def segment_name(self, sequence_number: int) -> str:
        return segment_name(sequence_number, prefix=self.prefix)

    def part_name(self, sequence_number: int, index: int) -> str:
        return part_name(sequence_number, index, prefix=self.prefix)

    @property
    def part_target_s(self) -> float:
        """The longest part the cut rule makes: a whole number of frames covering PART_SAMPLES."""
        return frames_before_part(1, self.frame_samples) * self.frame_samples / SAMPLE_RATE_HZ

    def init_bytes(self) -> bytes:
        if self.codecs == OPUS_CODECS:
            return opus_init_segment(
                channels=CHANNELS,
                pre_skip=OPUS_PRE_SKIP_SAMPLES,
                input_sample_rate_hz=SAMPLE_RATE_HZ,
            )
        return init_segment(
            audio_specific_config=audio_specific_config(SAMPLE_RATE_HZ, CHANNELS),
            sample_rate_hz=SAMPLE_RATE_HZ,
            channels=CHANNELS,
        )


AAC_RENDITION = Rendition(
    name="aac",
    prefix="",
    init_name=INIT_NAME,
    playlist_name=LIVE_PLAYLIST_NAME,
    codecs=AAC_CODECS,
    frame_samples=AAC_FRAME_SAMPLES,
    timescale_hz=SAMPLE_RATE_HZ,
    bandwidth_bps=AAC_BANDWIDTH_BPS,
    average_bandwidth_bps=AAC_AVERAGE_BANDWIDTH_BPS,
    is_recorded=True,
    segment_pattern=SEGMENT_NAME_RE,
    part_pattern=PART_NAME_RE,
)

OPUS_RENDITION = Rendition(
    name="opus",
    prefix=OPUS_PREFIX,
    init_name=OPUS_INIT_NAME,
    playlist_name=OPUS_PLAYLIST_NAME,
    codecs=OPUS_CODECS,
    frame_samples=OPUS_FRAME_SAMPLES,
    timescale_hz=OPUS_TIMESCALE_HZ,
    bandwidth_bps=OPUS_BANDWIDTH_BPS,
    average_bandwidth_bps=OPUS_AVERAGE_BANDWIDTH_BPS,
    is_recorded=False,
    segment_pattern=OPUS_SEGMENT_NAME_RE,
    part_pattern=OPUS_PART_NAME_RE,
)

RENDITIONS = (AAC_RENDITION, OPUS_RENDITION)
