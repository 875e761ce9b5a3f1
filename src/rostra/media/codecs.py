"""The program's encoded formats as numbers: AAC-LC and Opus parameters, and the HLS segment
timing they imply. Pure constants and one value object, so listener workers can use them without
loading PyAV or libavcodec.

Media plane.
"""

from __future__ import annotations

from dataclasses import dataclass

from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ

CHANNELS = 1
AAC_BITRATE_BPS = 96_000
AAC_FRAME_SAMPLES = 1024
AAC_CODECS = "mp4a.40.2"
OPUS_BITRATE_BPS = 128_000
OPUS_FRAME_SAMPLES = FRAME_SAMPLES
OPUS_PRE_SKIP_SAMPLES = 312

# 48 AAC frames: 1.024 s, the shortest whole-frame segment at or above one second.
FRAMES_PER_SEGMENT = 48
SEGMENT_SAMPLES = FRAMES_PER_SEGMENT * AAC_FRAME_SAMPLES
SEGMENT_DURATION_S = SEGMENT_SAMPLES / SAMPLE_RATE_HZ
TARGET_DURATION_S = 1
# what a segment costs on the wire, including container overhead
BANDWIDTH_BPS = AAC_BITRATE_BPS + 8_000


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    data: bytes
    duration_samples: int
