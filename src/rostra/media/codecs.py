"""The program's encoded formats as numbers: AAC-LC and Opus parameters, and the HLS segment
timing they imply. Pure constants and one value object, so listener workers can use them without
loading PyAV or libavcodec.

Media plane.
"""

from __future__ import annotations

from dataclasses import dataclass

from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ

CHANNELS = 1
# 128 kbit/s: PESQ-WB 4.24 codec alone against 3.92 at 96, for 26 % more bytes (bench/quality.py)
AAC_BITRATE_BPS = 128_000
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
# LL-HLS parts (RFC 8216bis): 12 whole frames, 256 ms, four to a segment
FRAMES_PER_PART = 12
PARTS_PER_SEGMENT = FRAMES_PER_SEGMENT // FRAMES_PER_PART
PART_SAMPLES = FRAMES_PER_PART * AAC_FRAME_SAMPLES
PART_TARGET_S = PART_SAMPLES / SAMPLE_RATE_HZ
# what a player keeps behind the newest part: three parts, the least RFC 8216bis advises
PART_HOLD_BACK_S = 3 * PART_TARGET_S
# what a segment costs on the wire, including container overhead
BANDWIDTH_BPS = AAC_BITRATE_BPS + 8_000
# the Opus HLS rendition (RFC 7845 packets in fMP4): its CODECS, and its cost on the wire with
# the container (50 sample sizes a second, a moof per part). The encoder's VBR is constrained, so
# a segment stays near the target (unconstrained, libopus spent 1.7 times it on speech)
OPUS_CODECS = "opus"
OPUS_BANDWIDTH_BPS = OPUS_BITRATE_BPS * 5 // 4 + 8_000
OPUS_AVERAGE_BANDWIDTH_BPS = OPUS_BITRATE_BPS + 4_000
# the AAC rendition as measured the same way (FFmpeg's encoder: 110-129 kbit/s a segment while a
# voice speaks, at 96 kbit/s, so up to 1.35 times its rate): BANDWIDTH and AVERAGE-BANDWIDTH
AAC_BANDWIDTH_BPS = AAC_BITRATE_BPS * 3 // 2 + 8_000
AAC_AVERAGE_BANDWIDTH_BPS = AAC_BITRATE_BPS * 5 // 4


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    data: bytes
    duration_samples: int
