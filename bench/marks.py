"""Latency marks: 40 ms tone bursts at irregular, seeded intervals; a streaming onset detector
that also tells which tone it heard; and the matching of detected onsets to sent marks.

Marks cycle through four tones, so a listener whose latency jumps (a stall, a catch-up) by up to
a mark or two, or who misses one, is still matched to the right mark.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 48_000
FRAME_SAMPLES = 960
MARK_FREQUENCIES_HZ = (1_250.0, 1_750.0, 2_250.0, 2_750.0)
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
# a detection whose latency differs more than this from the previous mark's is not matched
MAX_LATENCY_STEP_S = 1.5

Pcm = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class MarkTrain:
    """PCM holding the marks, the sample index where each starts (frame-aligned), its tone."""

    pcm: Pcm
    starts: tuple[int, ...]
    tones: tuple[int, ...]  # index into MARK_FREQUENCIES_HZ


@dataclass(frozen=True, slots=True)
class Mark:
    """A mark sent or heard: when, and which tone."""

    at: float
    tone: int


def mark_burst(frequency_hz: float) -> Pcm:
    samples = int(MARK_DURATION_S * SAMPLE_RATE_HZ)
    t = np.arange(samples) / SAMPLE_RATE_HZ
    burst = MARK_LEVEL * np.sin(2 * np.pi * frequency_hz * t)
    ramp = int(MARK_RAMP_S * SAMPLE_RATE_HZ)
    envelope = np.ones(samples)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
    return (burst * envelope).astype(np.float32)


def mark_train(count: int, *, lead_s: float, seed: int) -> MarkTrain:
    """`count` marks after `lead_s` of silence; each starts on a 20 ms frame boundary."""
    rng = random.Random(seed)
    bursts = [mark_burst(f) for f in MARK_FREQUENCIES_HZ]
    starts: list[int] = []
    position = _frame_aligned(lead_s)
    for _ in range(count):
        starts.append(position)
        position += _frame_aligned(rng.uniform(MARK_INTERVAL_MIN_S, MARK_INTERVAL_MAX_S))
    pcm = np.zeros(position, dtype=np.float32)
    tones = tuple(i % len(bursts) for i in range(count))
    for start, tone in zip(starts, tones, strict=True):
        pcm[start : start + bursts[tone].size] = bursts[tone]
    return MarkTrain(pcm=pcm, starts=tuple(starts), tones=tones)


def tone_of(window: Pcm, sample_rate_hz: int) -> int:
    """Which mark tone is strongest in `window` (one DFT bin per tone)."""
    n = np.arange(window.size) / sample_rate_hz
    powers = [
        abs(complex(np.dot(window, np.exp(-2j * np.pi * f * n)))) for f in MARK_FREQUENCIES_HZ
    ]
    return int(np.argmax(powers))


def _frame_aligned(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE_HZ / FRAME_SAMPLES) * FRAME_SAMPLES


class OnsetDetector:
    """Fed decoded audio chunk by chunk, each with the wall-clock time it became available;
    `onsets` holds, per mark heard, the time of the chunk in which it began and its tone."""

    def __init__(self, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.onsets: list[Mark] = []
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
                tone = tone_of(body, self.sample_rate_hz)
                self.onsets.append(Mark(at=self._time_of(onset), tone=tone))
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
    per_mark_s: list[float | None]  # latency of each sent mark, None when not heard
    unmatched_detections: int

    @property
    def latencies_s(self) -> list[float]:
        return [x for x in self.per_mark_s if x is not None]

    @property
    def matched(self) -> int:
        return len(self.latencies_s)

    @property
    def missed_marks(self) -> int:
        return len(self.per_mark_s) - self.matched


def match_marks(sent: Sequence[Mark], heard: Sequence[Mark]) -> Matched:
    """Pair each detection with the next mark of its tone, in order: the one whose latency is
    nearest the previous mark's (marks are heard in the order they were sent)."""
    per_mark: list[float | None] = [None] * len(sent)
    unmatched = 0
    last = -1
    latency: float | None = None
    for mark in sorted(heard, key=lambda m: m.at):
        candidates = [
            k
            for k in range(last + 1, len(sent))
            if sent[k].tone == mark.tone and sent[k].at < mark.at
        ]
        if latency is not None:
            steps = {k: abs(mark.at - sent[k].at - latency) for k in candidates}
            candidates = sorted(
                (k for k in candidates if steps[k] <= MAX_LATENCY_STEP_S), key=steps.get
            )
        if not candidates:
            unmatched += 1
            continue
        last = candidates[0]
        latency = mark.at - sent[last].at
        per_mark[last] = latency
    return Matched(per_mark_s=per_mark, unmatched_detections=unmatched)
