"""Latency marks: short 2 kHz tone bursts at irregular, seeded intervals; a streaming onset
detector; and the matching of detected onsets to sent marks.

The intervals are irregular so that a listener who misses a mark, or hears a spurious one, cannot
be matched one mark off without the residuals showing it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 48_000
FRAME_SAMPLES = 960
MARK_FREQUENCY_HZ = 2_000.0
MARK_DURATION_S = 0.040
MARK_LEVEL = 0.5
MARK_RAMP_S = 0.001
MARK_INTERVAL_MIN_S = 0.8
MARK_INTERVAL_MAX_S = 1.3
# an onset is the first sample above this fraction of the mark's amplitude...
ONSET_FRACTION = 0.3
# ...confirmed when the next CONFIRM_S hold at least this fraction of the mark's RMS
CONFIRM_S = 0.010
CONFIRM_FRACTION = 0.4
REFRACTORY_S = 0.3
# a detection further than this from the latency predicted by the previous one is not a mark
MATCH_TOLERANCE_S = 0.25
ALIGNMENT_CANDIDATES = 4

Pcm = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class MarkTrain:
    """PCM holding the marks, and the sample index where each mark starts (frame-aligned)."""

    pcm: Pcm
    starts: tuple[int, ...]


def mark_burst() -> Pcm:
    samples = int(MARK_DURATION_S * SAMPLE_RATE_HZ)
    t = np.arange(samples) / SAMPLE_RATE_HZ
    burst = MARK_LEVEL * np.sin(2 * np.pi * MARK_FREQUENCY_HZ * t)
    ramp = int(MARK_RAMP_S * SAMPLE_RATE_HZ)
    envelope = np.ones(samples)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
    return (burst * envelope).astype(np.float32)


def mark_train(count: int, *, lead_s: float, seed: int) -> MarkTrain:
    """`count` marks after `lead_s` of silence; each starts on a 20 ms frame boundary."""
    rng = random.Random(seed)
    burst = mark_burst()
    starts: list[int] = []
    position = _frame_aligned(lead_s)
    for _ in range(count):
        starts.append(position)
        position += _frame_aligned(rng.uniform(MARK_INTERVAL_MIN_S, MARK_INTERVAL_MAX_S))
    pcm = np.zeros(position, dtype=np.float32)
    for start in starts:
        pcm[start : start + burst.size] = burst
    return MarkTrain(pcm=pcm, starts=tuple(starts))


def _frame_aligned(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE_HZ / FRAME_SAMPLES) * FRAME_SAMPLES


class OnsetDetector:
    """Fed decoded audio chunk by chunk, each with the wall-clock time it became available;
    `onsets` holds, per mark heard, the time of the chunk in which it began."""

    def __init__(self, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.onsets: list[float] = []
        self._buffer = np.zeros(0, dtype=np.float32)
        self._base = 0  # absolute sample index of _buffer[0]
        self._received = 0  # absolute index of the next sample to arrive
        self._chunks: list[tuple[int, float]] = []  # (absolute start, available_at)
        self._position = 0  # absolute index of the next sample to scan
        self._confirm = int(CONFIRM_S * sample_rate_hz)
        self._refractory = int(REFRACTORY_S * sample_rate_hz)

    def feed(self, samples: Pcm, available_at: float) -> None:
        self._chunks.append((self._received, available_at))
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32)])
        self._received += samples.size
        self._scan()
        new_base = min(self._position, self._received)
        if new_base > self._base:
            self._buffer = self._buffer[new_base - self._base :]
            self._base = new_base
        while len(self._chunks) > 1 and self._chunks[1][0] <= self._base:
            self._chunks.pop(0)

    def _scan(self) -> None:
        threshold = ONSET_FRACTION * MARK_LEVEL
        needed_rms = CONFIRM_FRACTION * MARK_LEVEL / np.sqrt(2)
        end = self._received - self._confirm
        while self._position < end:
            window = self._buffer[self._position - self._base : end - self._base]
            above = np.flatnonzero(np.abs(window) > threshold)
            if above.size == 0:
                self._position = end
                return
            onset = self._position + int(above[0])
            body = self._buffer[onset - self._base : onset - self._base + self._confirm]
            if float(np.sqrt(np.mean(np.square(body)))) >= needed_rms:
                self.onsets.append(self._time_of(onset))
                self._position = onset + self._refractory
            else:
                self._position = onset + 1

    def _time_of(self, index: int) -> float:
        moment = self._chunks[0][1]
        for start, available_at in self._chunks:
            if start > index:
                break
            moment = available_at
        return moment


@dataclass(frozen=True, slots=True)
class Matched:
    latencies_s: list[float]  # one per matched mark, in mark order
    matched: int
    unmatched_detections: int
    missed_marks: int


def match_marks(sent_at: Sequence[float], detected_at: Sequence[float]) -> Matched:
    """Pair detections with marks, following the latency as it drifts; the first detection is
    tried against each of the first few marks and the pairing with the steadiest latency wins."""
    detections = sorted(d for d in detected_at if sent_at and d > sent_at[0])
    if not sent_at or not detections:
        return Matched([], 0, len(detections), len(sent_at))
    best: dict[int, float] | None = None
    best_spread = float("inf")
    for first in range(min(ALIGNMENT_CANDIDATES, len(sent_at))):
        pairs = _follow(sent_at, detections, detections[0] - sent_at[first])
        if not pairs:
            continue
        values = np.array(list(pairs.values()))
        spread = float(np.median(np.abs(np.diff(values)))) if values.size > 1 else 0.0
        if len(pairs) > (len(best) if best else 0) or (
            best is not None and len(pairs) == len(best) and spread < best_spread
        ):
            best, best_spread = pairs, spread
    pairs = best or {}
    return Matched(
        latencies_s=[pairs[k] for k in sorted(pairs)],
        matched=len(pairs),
        unmatched_detections=len(detections) - len(pairs),
        missed_marks=len(sent_at) - len(pairs),
    )


def _follow(
    sent_at: Sequence[float], detections: Sequence[float], latency_s: float
) -> dict[int, float]:
    sent = np.asarray(sent_at)
    pairs: dict[int, float] = {}
    for detection in detections:
        index = int(np.argmin(np.abs(detection - sent - latency_s)))
        candidate = detection - sent[index]
        if abs(candidate - latency_s) > MATCH_TOLERANCE_S or index in pairs:
            continue
        pairs[index] = float(candidate)
        latency_s = float(candidate)
    return pairs
