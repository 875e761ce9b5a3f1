"""A real Opus speech stream played through a jitter buffer in simulated time: one pop per 20 ms
tick, packets pushed by arrival time, and what went missing while the source was speaking.

Shared by tests/media/test_jitter.py and bench/jitter_loss.py, so that the benchmark's figure is
the tests' measurement over more seeds. Sequence numbers and timestamps start just below their
wrap, so every stream crosses it.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from aiortc.jitterbuffer import JitterBuffer as StockJitterBuffer
from aiortc.rtp import RtpPacket

from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm, rms_dbfs
from rostra.media.jitter import FrameSource, JitterBuffer, JitterStats, PlayoutFrame
from rostra.media.opus import OpusDecoder

SPEECH = (
    "Good evening, and welcome to the show. Tonight we talk about the history of radio: "
    "how a single voice could reach millions of people, and what that means for us today. "
    "Our first guest has spent twenty years building transmitters high in the mountains."
)
FEC_OPTIONS = {"fec": "1", "packet_loss": "5"}
FRAME_MS = 20
SEQUENCE_BASE = 65_500  # wraps to 0 after 36 packets
TIMESTAMP_BASE = 2**32 - 2 * SAMPLE_RATE_HZ  # wraps after 2 s
ACTIVE_DBFS = -40.0  # a source frame louder than this is speech, not a pause
LOSS_RATE = 0.03
ESPEAK_TIMEOUT_S = 30
OPUS_PAYLOAD_TYPE = 111
STOCK_CAPACITY = 16  # what aiortc's receiver gives its audio jitter buffer
STOCK_PREFETCH = 4

Arrival = tuple[float, int]  # (arrival time in ms, packet index)


def speech_pcm(directory: Path) -> Pcm:
    """espeak-ng reading SPEECH, at the program's rate (the WAV is written into `directory`)."""
    wav = directory / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), SPEECH], check=True, timeout=ESPEAK_TIMEOUT_S)
    return resample_to_program_rate(wav)


def resample_to_program_rate(path: Path) -> Pcm:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    chunks: list[Pcm] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [out.to_ndarray()[0] for out in resampler.resample(frame)]
    chunks += [out.to_ndarray()[0] for out in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32)


def encode(
    pcm: Pcm, frame_ms: int = FRAME_MS, options: Mapping[str, str] = FEC_OPTIONS
) -> list[bytes]:
    """libopus, mono, by default with in-band FEC, as a browser sends."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = SAMPLE_RATE_HZ
    encoder.layout = "mono"
    encoder.format = "flt"
    encoder.options = {"frame_duration": str(frame_ms), **options}
    encoder.open()
    packets: list[bytes] = []
    for start in range(0, pcm.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, start : start + FRAME_SAMPLES].copy(), format="flt", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = start
        packets += [bytes(packet) for packet in encoder.encode(frame)]
    packets += [bytes(packet) for packet in encoder.encode(None)]
    return packets


def straight_decode(packets: Iterable[bytes]) -> list[Pcm]:
    with OpusDecoder() as decoder:
        return [decoder.decode(packet) for packet in packets]


def rtp(index: int, samples_per_packet: int = FRAME_SAMPLES) -> tuple[int, int]:
    return SEQUENCE_BASE + index, TIMESTAMP_BASE + index * samples_per_packet


def on_time(count: int, packet_ms: float = FRAME_MS) -> list[Arrival]:
    return [(index * packet_ms, index) for index in range(count)]


def lossy_arrivals(count: int, seed: int, loss_rate: float = LOSS_RATE) -> list[Arrival]:
    """On time, each packet dropped with `loss_rate` (seeded); the first packet always arrives, so
    playback starts with it and frame k carries packet k."""
    rng = random.Random(seed)
    return [arrival for arrival in on_time(count) if arrival[1] == 0 or rng.random() >= loss_rate]


def simulate(
    buffer: JitterBuffer,
    packets: Sequence[bytes],
    arrivals: Iterable[Arrival],
    *,
    pops: int,
    header: Callable[[int], tuple[int, int]] = rtp,
    depths_ms: list[float] | None = None,
) -> list[PlayoutFrame | None]:
    """Pop once every 20 ms of simulated time, pushing every packet that arrived by then."""
    pending = sorted(arrivals, key=lambda arrival: arrival[0])
    frames: list[PlayoutFrame | None] = []
    next_arrival = 0
    for tick in range(pops):
        while next_arrival < len(pending) and pending[next_arrival][0] <= tick * FRAME_MS:
            index = pending[next_arrival][1]
            buffer.push(*header(index), packets[index])
            next_arrival += 1
        frames.append(buffer.pop_frame())
        if depths_ms is not None:
            depths_ms.append(buffer.stats.depth_ms)
    return frames


def playout(frames: Sequence[PlayoutFrame | None], count: int) -> list[PlayoutFrame]:
    """The `count` frames from the start of playback: frame k carries packet k."""
    start = next(index for index, frame in enumerate(frames) if frame is not None)
    played = frames[start : start + count]
    assert all(frame is not None for frame in played)
    return [frame for frame in played if frame is not None]


def is_speaking(source: Pcm) -> bool:
    return rms_dbfs(source) > ACTIVE_DBFS


def missing_frames(played: Sequence[PlayoutFrame], reference: Sequence[Pcm]) -> list[bool]:
    """Frames not decoded (or FEC-rebuilt) from the packet while the source was speaking."""
    return [
        frame.source not in (FrameSource.DECODED, FrameSource.RECOVERED) and is_speaking(source)
        for frame, source in zip(played, reference, strict=True)
    ]


def longest_run(flags: Sequence[bool]) -> int:
    longest = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return longest


@dataclass(frozen=True, slots=True)
class LossPlayout:
    """One lossy stream through Rostra's jitter buffer."""

    kept: list[Arrival]
    played: list[PlayoutFrame]
    missing: list[bool]
    stats: JitterStats


def play_with_loss(packets: Sequence[bytes], reference: Sequence[Pcm], seed: int) -> LossPlayout:
    kept = lossy_arrivals(len(packets), seed)
    buffer = JitterBuffer()
    played = playout(simulate(buffer, packets, kept, pops=len(packets) + 10), len(packets))
    return LossPlayout(kept, played, missing_frames(played, reference), buffer.stats)


def stock_delivered(packets: Sequence[bytes], kept: Iterable[Arrival]) -> list[bool]:
    """Which packets aiortc's stock audio jitter buffer hands on, given the ones that arrived."""
    stock = StockJitterBuffer(capacity=STOCK_CAPACITY, prefetch=STOCK_PREFETCH)
    timestamps: set[int] = set()
    for _, index in sorted(kept):
        sequence, timestamp = rtp(index)
        packet = RtpPacket(
            payload_type=OPUS_PAYLOAD_TYPE, sequence_number=sequence % 2**16, timestamp=timestamp
        )
        packet._data = packets[index]  # type: ignore[attr-defined]  # set by aiortc's depayloader
        _, frame = stock.add(packet)
        if frame is not None:
            timestamps.add(frame.timestamp)
    return [rtp(index)[1] in timestamps for index in range(len(packets))]


def stock_missing_frames(delivered: Sequence[bool], reference: Sequence[Pcm]) -> list[bool]:
    """The same measure as `missing_frames`, for aiortc's stock buffer: not handed on while the
    source was speaking."""
    return [
        not is_delivered and is_speaking(source)
        for is_delivered, source in zip(delivered, reference, strict=True)
    ]
