"""What the speaker's codec alone gives, offline: the sender's own Opus packets decoded by plain
libopus, without and with the same seeded drops as the server's, so the platform's share of a
PESQ figure can be told from the codec's and the loss's.
"""

from __future__ import annotations

import fractions
from collections.abc import Sequence

import av
import numpy as np
import numpy.typing as npt
from aiortc.codecs.opus import OpusEncoder as AiortcOpusEncoder

from bots import encode_opus
from rostra.media.ingest import PacketDropper
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
