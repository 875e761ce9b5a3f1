"""What the codecs alone give, offline: the sender's own Opus packets decoded by plain libopus,
without and with the same seeded drops as the server's, then (for a listening path) the program
encoder of that path (FFmpeg's libopus or native AAC at Rostra's settings) and its decoder, so the
platform's share of a figure can be told from the codecs' and the loss's.
"""

from __future__ import annotations

import fractions
import subprocess
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc.codecs.opus import OpusEncoder as AiortcOpusEncoder

from bots import encode_opus
from harness import audio_check
from rostra.media.codecs import AAC_BITRATE_BPS, OPUS_BITRATE_BPS
from rostra.media.ingest import PacketDropper
from rostra.media.mixer import Mixer
from rostra.media.opus import OpusDecoder

SAMPLE_RATE_HZ = 48_000
FRAME_SAMPLES = 960
INT16_FULL_SCALE = 32_767

Pcm = npt.NDArray[np.float32]


def aiortc_packets(pcm: Pcm) -> list[bytes]:
    """The packets aiortc's stock encoder makes of `pcm` sent as PcmTrack sends it (L=R s16)."""
    encoder = AiortcOpusEncoder()
    packets: list[bytes] = []
    usable = pcm.size - pcm.size % FRAME_SAMPLES
    for start in range(0, usable, FRAME_SAMPLES):
        chunk = pcm[start : start + FRAME_SAMPLES]
        ints = np.round(np.clip(chunk, -1, 1) * INT16_FULL_SCALE).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(ints, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = start
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE_HZ)
        payloads, _ = encoder.encode(frame)
        packets += payloads
    return packets


def browser_packets(pcm: Pcm, *, bitrate_bps: int, options: dict[str, str]) -> list[bytes]:
    return encode_opus(pcm, bitrate_bps=bitrate_bps, options=options)


def drops(count: int, *, rate: float, seed: int) -> list[bool]:
    """Which of `count` packets the server's seeded dropper discards, in arrival order."""
    dropper = PacketDropper(rate, seed)
    return [dropper.should_drop() for _ in range(count)]


def decode(packets: Sequence[bytes], dropped: Sequence[bool] | None = None) -> Pcm:
    """Plain libopus: a dropped packet is rebuilt from the next one's FEC when it has some, and
    concealed otherwise."""
    decoder = OpusDecoder(channels=1)
    out: list[Pcm] = []
    for index, packet in enumerate(packets):
        if dropped is None or not dropped[index]:
            out.append(decoder.decode(packet))
            continue
        following = index + 1
        has_next = following < len(packets) and not dropped[following]
        if has_next and decoder.has_fec(packets[following]):
            out.append(decoder.decode_fec(packets[following], FRAME_SAMPLES))
        else:
            out.append(decoder.conceal(FRAME_SAMPLES))
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


# the program encoders of each listening path, as src/rostra/media/encode.py sets them
PROGRAM_CODECS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "opus": ("libopus", OPUS_BITRATE_BPS, ("-application", "audio")),
    "aac": ("aac", AAC_BITRATE_BPS, ()),
}
CONTAINERS = {"libopus": "ogg", "aac": "adts"}


def through_ffmpeg(
    pcm: Pcm, *, codec: str, bitrate_bps: int, options: Sequence[str] = ()
) -> tuple[Pcm, int]:
    """`pcm` (mono, 48 kHz) encoded by FFmpeg's `codec` and decoded again; with the encoded
    stream's size in bytes (ADTS or Ogg: what a progressive listener downloads)."""
    container = CONTAINERS[codec]
    with TemporaryDirectory(prefix="rostra-codec-") as folder:
        out = Path(folder) / f"encoded.{container}"
        subprocess.run(
            [
                *("ffmpeg", "-v", "error", "-nostdin", "-y"),
                *("-f", "f32le", "-ar", str(SAMPLE_RATE_HZ), "-ac", "1", "-i", "-"),
                *("-c:a", codec, "-b:a", str(bitrate_bps), *options, "-f", container, str(out)),
            ],
            input=np.ascontiguousarray(pcm, dtype=np.float32).tobytes(),
            check=True,
            capture_output=True,
        )
        return audio_check.decode(out), out.stat().st_size


def program_roundtrip(pcm: Pcm, program: str) -> Pcm:
    """What a listener of a `program` ("opus" or "aac") path hears of `pcm`, without network."""
    codec, bitrate_bps, options = PROGRAM_CODECS[program]
    decoded, _ = through_ffmpeg(pcm, codec=codec, bitrate_bps=bitrate_bps, options=options)
    return decoded


def through_stages(pcm: Pcm, stages: Sequence[Any]) -> Pcm:
    """`pcm` through each stage's `process` (a Leveller, a Limiter…), frame by frame."""
    usable = pcm.size - pcm.size % FRAME_SAMPLES
    frames = []
    for start in range(0, usable, FRAME_SAMPLES):
        frame = pcm[start : start + FRAME_SAMPLES]
        for stage in stages:
            frame = stage.process(frame)
        frames.append(frame)
    return np.concatenate(frames).astype(np.float32) if frames else np.zeros(0, np.float32)


def through_mixer(pcm: Pcm) -> Pcm:
    """`pcm` as one voice through Rostra's own mixer (its leveller and the program's true-peak
    limiter), frame by frame, offline: the program stage without network or jitter buffer."""
    mixer = Mixer()
    usable = pcm.size - pcm.size % FRAME_SAMPLES
    frames = [
        mixer.mix({"voice": pcm[start : start + FRAME_SAMPLES]}, []).program
        for start in range(0, usable, FRAME_SAMPLES)
    ]
    return np.concatenate(frames).astype(np.float32) if frames else np.zeros(0, np.float32)
