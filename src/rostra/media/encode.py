"""Program encoders: AAC-LC for HLS and the ADTS stream, full-band Opus for the Ogg stream.

Media plane. Encoded once per format for the whole audience, never per listener (PyAV).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, cast

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext

from rostra.media.audio import SAMPLE_RATE_HZ, Pcm
from rostra.media.codecs import (
    AAC_BITRATE_BPS,
    AAC_FRAME_SAMPLES,
    CHANNELS,
    OPUS_BITRATE_BPS,
    OPUS_FRAME_SAMPLES,
    OPUS_PRE_SKIP_SAMPLES,
    EncodedPacket,
)

# re-exported: callers that already encode keep importing them from here
__all__ = [
    "AAC_BITRATE_BPS",
    "AAC_FRAME_SAMPLES",
    "CHANNELS",
    "OPUS_BITRATE_BPS",
    "OPUS_FRAME_SAMPLES",
    "OPUS_PRE_SKIP_SAMPLES",
    "TIME_BASE",
    "AacEncoder",
    "EncodedPacket",
    "OpusEncoder",
]

TIME_BASE = Fraction(1, SAMPLE_RATE_HZ)


def _frame(pcm: Pcm, pts: int, sample_format: str) -> av.AudioFrame:
    if sample_format == "fltp":
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="fltp", layout="mono")
    else:
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = SAMPLE_RATE_HZ
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class _Encoder:
    def __init__(self, codec: str, sample_format: str, bitrate_bps: int, options: dict[str, str]):
        self._context = cast(AudioCodecContext, av.CodecContext.create(codec, "w"))
        self._context.sample_rate = SAMPLE_RATE_HZ
        self._context.layout = "mono"
        self._context.format = sample_format
        self._context.bit_rate = bitrate_bps
        self._context.time_base = TIME_BASE
        self._context.options = options
        self._context.open()
        self._format = sample_format
        self._pts = 0

    @property
    def extradata(self) -> bytes:
        return bytes(self._context.extradata or b"")

    def encode(self, pcm: Pcm) -> list[EncodedPacket]:
        frame = _frame(np.ascontiguousarray(pcm, dtype=np.float32), self._pts, self._format)
        self._pts += pcm.size
        return self._packets(self._context.encode(frame))

    def flush(self) -> list[EncodedPacket]:
        return self._packets(self._context.encode(None))

    def _packets(self, packets: list[Any]) -> list[EncodedPacket]:
        return [
            EncodedPacket(data=bytes(packet), duration_samples=int(packet.duration or 0))
            for packet in packets
            if packet.size
        ]


class AacEncoder(_Encoder):
    def __init__(self) -> None:
        super().__init__("aac", "fltp", AAC_BITRATE_BPS, {})


class OpusEncoder(_Encoder):
    def __init__(self) -> None:
        # constrained VBR: on speech, libopus's free VBR spends 1.7 times its target
        options = {"application": "audio", "vbr": "constrained"}
        super().__init__("libopus", "flt", OPUS_BITRATE_BPS, options)
