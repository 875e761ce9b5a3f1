"""Loudness: a look-ahead true-peak limiter that keeps the summed program under -1 dBTP, and an
instant sample-peak limiter for each speaker's mix-minus, which must not add latency.

Media plane. Peaks are estimated 4x oversampled (ITU-R BS.1770 annex 2), and the program limiter
aims a measured margin below -1 dBTP, since AAC and Opus decoding add overshoot at the listener.
Its gain is already down when a peak arrives and never steps. Per-voice loudness is
media/leveller.py.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from rostra.media.audio import FRAME_DURATION_S, FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm

TRUE_PEAK_CEILING_DBTP = -1.0
# Measured at the listener (tests/e2e/test_loudness.py): limited at -2 dBTP, speech decodes at
# about -1.5 dBTP from the ADTS stream and -1.8 from Ogg/Opus; limited at -1 dBFS sample peaks, at
# -0.2 dBTP. So the limiter aims this far under the ceiling.
CODEC_OVERSHOOT_MARGIN_DB = 1.0
THRESHOLD_DBFS = TRUE_PEAK_CEILING_DBTP - CODEC_OVERSHOOT_MARGIN_DB
RELEASE_S = 0.08  # the instant limiter's (mix-minus)
BLOCKS_PER_FRAME = 4  # the instant limiter's attack acts on 5 ms parts of a 20 ms frame
# The program limiter: peaks measured per 1 ms block, a 5 ms look-ahead (the program's delay)
LOOKAHEAD_BLOCK_SAMPLES = 48
LOOKAHEAD_BLOCKS = 5
LOOKAHEAD_SAMPLES = LOOKAHEAD_BLOCK_SAMPLES * LOOKAHEAD_BLOCKS
# Offline (bench/quality.py stage split), a longer release takes more loudness off speech for
# the same peaks, and making it up pushes syllables harder into the limiter: the sibilant band
# then rises against the voice. At 10 ms the gain still changes by at most 1/240 per sample.
LOOKAHEAD_RELEASE_S = 0.01
OVERSAMPLING = 4
TAPS_PER_PHASE = 12
KAISER_BETA = 8.0


def db_to_gain(gain_db: float) -> float:
    return float(10.0 ** (gain_db / 20.0))


def _interpolation_phases() -> npt.NDArray[np.float64]:
    """The fractional phases (1/4, 2/4, 3/4) of a windowed-sinc 4x interpolator, one row each."""
    length = OVERSAMPLING * TAPS_PER_PHASE + 1
    n = np.arange(length) - length // 2
    taps = np.sinc(n / OVERSAMPLING) * np.kaiser(length, KAISER_BETA)
    phases = [taps[phase::OVERSAMPLING][:TAPS_PER_PHASE] for phase in range(1, OVERSAMPLING)]
    return np.asarray(phases, dtype=np.float64)


INTERPOLATION_PHASES = _interpolation_phases()
HALF_TAPS = TAPS_PER_PHASE // 2
BLOCK_RAMP = np.linspace(0.0, 1.0, FRAME_SAMPLES // BLOCKS_PER_FRAME)
INTERPOLATION_BOUND = max(1.0, float(np.max(np.sum(np.abs(INTERPOLATION_PHASES), axis=1))))


class TruePeakMeter:
    """The peak of a stream of frames between the samples too, 4x oversampled, per sub-block of
    a frame; keeps the last samples of each frame so peaks across a frame boundary are seen."""

    def __init__(self) -> None:
        self._history = np.zeros(TAPS_PER_PHASE, dtype=np.float64)

    def upper_bound(self, frame: Pcm) -> float:
        """A bound no interpolated value of `frame` can pass (the sample peak times the largest
        sum of a phase's taps): when it is under a threshold, the meter need not interpolate."""
        highest = max(float(np.max(np.abs(frame))), float(np.max(np.abs(self._history))))
        return highest * INTERPOLATION_BOUND

    def advance(self, frame: Pcm) -> None:
        """Keeps the frame's last samples without measuring it."""
        self._history = frame[-TAPS_PER_PHASE:].astype(np.float64)

    def peaks(self, frame: Pcm, blocks: int) -> npt.NDArray[np.float64]:
        """The true peak of each of `blocks` equal parts of `frame`."""
        samples = np.concatenate((self._history, frame.astype(np.float64)))
        self._history = samples[-TAPS_PER_PHASE:]
        # between[i] interpolates next to samples[i + HALF_TAPS], about frame sample i - HALF_TAPS
        between = np.abs(np.convolve(samples, INTERPOLATION_PHASES[0], mode="valid"))
        for phase in INTERPOLATION_PHASES[1:]:
            np.maximum(between, np.abs(np.convolve(samples, phase, mode="valid")), out=between)
        size = frame.size // blocks
        edges = [0, *(HALF_TAPS + size * block for block in range(1, blocks)), between.size]
        sampled = np.abs(frame).reshape(blocks, size).max(axis=1)
        inter = [between[edges[b] : edges[b + 1]].max() for b in range(blocks)]
        return np.asarray(np.maximum(sampled, inter), dtype=np.float64)


class Limiter:
    """The program's look-ahead true-peak limiter. The output is the input delayed by
    LOOKAHEAD_SAMPLES (5 ms; the frame size stays 20 ms). Each 1 ms block's true peak sets the
    gain it may have; each block takes the lowest of its own and the next LOOKAHEAD_BLOCKS
    blocks', releases exponentially from there, and the gain is the moving average of that over
    the look-ahead: it ramps down over the 5 ms before a peak, reaches the peak's gain in time,
    never overshoots, and never steps. Gain is broadband, so sibilants keep their share."""

    def __init__(
        self, threshold_dbfs: float = THRESHOLD_DBFS, release_s: float = LOOKAHEAD_RELEASE_S
    ) -> None:
        self._threshold = db_to_gain(threshold_dbfs)
        self._release = math.exp(-LOOKAHEAD_BLOCK_SAMPLES / SAMPLE_RATE_HZ / release_s)
        self._delayed = np.zeros(LOOKAHEAD_SAMPLES, dtype=np.float32)
        # the allowed gain of the last LOOKAHEAD_BLOCKS input blocks, not yet windowed
        self._pending = np.ones(LOOKAHEAD_BLOCKS, dtype=np.float64)
        # the released gain of the last LOOKAHEAD_BLOCKS output blocks, for the moving average
        self._released = np.ones(LOOKAHEAD_BLOCKS, dtype=np.float64)
        self._meter = TruePeakMeter()

    @property
    def gain(self) -> float:
        return float(self._released[-1])

    def process(self, frame: Pcm) -> Pcm:
        delayed = np.concatenate((self._delayed, frame))
        self._delayed = delayed[FRAME_SAMPLES:]
        out = delayed[:FRAME_SAMPLES]
        resting = bool(np.all(self._pending == 1.0)) and bool(np.all(self._released == 1.0))
        if resting and self._meter.upper_bound(frame) <= self._threshold:
            self._meter.advance(frame)
            return out
        peaks = self._meter.peaks(frame, FRAME_SAMPLES // LOOKAHEAD_BLOCK_SAMPLES)
        allowed = np.minimum(1.0, self._threshold / np.maximum(peaks, 1e-12))
        window = np.concatenate((self._pending, allowed))
        self._pending = window[-LOOKAHEAD_BLOCKS:]
        # each output block: the lowest allowed gain from itself to LOOKAHEAD_BLOCKS ahead
        ahead = np.lib.stride_tricks.sliding_window_view(window, LOOKAHEAD_BLOCKS + 1).min(axis=1)
        released = np.empty(ahead.size + LOOKAHEAD_BLOCKS)
        released[:LOOKAHEAD_BLOCKS] = self._released
        gain = float(self._released[-1])
        for block, wanted in enumerate(ahead.tolist()):
            # instant attack (the moving average below smooths it), exponential release
            gain = wanted if wanted <= gain else wanted - (wanted - gain) * self._release
            released[LOOKAHEAD_BLOCKS + block] = gain
        self._released = released[-LOOKAHEAD_BLOCKS:]
        if resting and gain == 1.0 and float(ahead.min()) == 1.0:
            return out
        # moving average over the look-ahead: blocks are constant, so the gain ramps linearly
        summed = np.concatenate(([0.0], np.cumsum(np.repeat(released, LOOKAHEAD_BLOCK_SAMPLES))))
        gains = (summed[LOOKAHEAD_SAMPLES:] - summed[:-LOOKAHEAD_SAMPLES])[1:] / LOOKAHEAD_SAMPLES
        limited = (out * gains).astype(np.float32)
        return np.clip(limited, -self._threshold, self._threshold).astype(np.float32)


class InstantLimiter:
    """A limiter that adds no latency, for a mix-minus: instant attack on the (true) peak of each
    5 ms part of a frame, exponential release, with a linear gain ramp between parts. Gain is
    broadband. With `is_true_peak=False` it limits sample peaks, for a return no codec margin
    applies to."""

    def __init__(
        self,
        threshold_dbfs: float = THRESHOLD_DBFS,
        release_s: float = RELEASE_S,
        *,
        is_true_peak: bool = True,
    ) -> None:
        self._threshold = db_to_gain(threshold_dbfs)
        self._is_true_peak = is_true_peak
        self._release = math.exp(-FRAME_DURATION_S / BLOCKS_PER_FRAME / release_s)
        self._gain = 1.0
        self._meter = TruePeakMeter()

    @property
    def gain(self) -> float:
        return self._gain

    def process(self, frame: Pcm) -> Pcm:
        peaks = self._peaks(frame)
        if peaks is None:
            return frame
        if self._gain == 1.0 and float(peaks.max()) <= self._threshold:
            return frame
        starts, ends, ceilings = [], [], []
        for peak in peaks.tolist():
            wanted = min(1.0, self._threshold / peak) if peak > 0 else 1.0
            previous = self._gain
            # instant attack, exponential release
            target = wanted if wanted < previous else wanted - (wanted - previous) * self._release
            self._gain = target
            starts.append(previous)
            ends.append(target)
            ceilings.append(wanted)
        start = np.asarray(starts)[:, None]
        ramps = start + (np.asarray(ends)[:, None] - start) * BLOCK_RAMP
        # never let a ramp's start exceed what its part's peak allows
        gains = np.minimum(ramps, np.asarray(ceilings)[:, None]).ravel()
        out: Pcm = (frame * gains).astype(np.float32)
        return np.clip(out, -self._threshold, self._threshold).astype(np.float32)

    def _peaks(self, frame: Pcm) -> npt.NDArray[np.float64] | None:
        """Each part's peak; None when the gain rests at 1 and no peak can reach the threshold."""
        if not self._is_true_peak:
            peaks = np.abs(frame).reshape(BLOCKS_PER_FRAME, -1).max(axis=1)
            return np.asarray(peaks, dtype=np.float64)
        if self._gain == 1.0 and self._meter.upper_bound(frame) <= self._threshold:
            self._meter.advance(frame)
            return None
        return self._meter.peaks(frame, BLOCKS_PER_FRAME)
