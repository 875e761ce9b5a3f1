"""The per-voice leveller: brings each voice's speech loudness (ITU-R BS.1770) to the target.

Media plane, pure. Each 20 ms frame is K-weighted in the frequency domain (an rfft times |H(f)|² of
the BS.1770 pre-filter and RLB high-pass: by Parseval, the filtered energy up to edge effects),
so the runtime needs numpy only. Loudness is gated like BS.1770's integrated measure, on 400 ms
momentary blocks (the standard's block, short enough to tell a syllable from a pause), and averaged
over about 3 s of speech (the standard's short-term span: long enough that one loud word does not
move the gain). When the voice falls silent the gate closes and the gain holds: room noise is never
pumped up.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from rostra.media.audio import FRAME_DURATION_S, FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm

TARGET_LUFS = -16.0
# BS.1770's offset: a 997 Hz sine at 0 dBFS reads -3.01 LUFS
LOUDNESS_OFFSET_DB = -0.691
BLOCK_S = 0.4  # BS.1770 momentary block
AVERAGE_S = 3.0  # BS.1770 short-term span, counted in speech time only
# Speech gate: a block counts as speech above both thresholds. The absolute one sits well above
# a quiet room (BS.1770's own -70 LUFS would let breathing and hiss in); the relative one, 20 LU
# under the voice's running level, keeps pauses and a loud room out without shutting a voice that
# softens.
ABSOLUTE_GATE_LUFS = -50.0
RELATIVE_GATE_LU = 20.0
MEASURE_GATE_LU = 10.0  # BS.1770's relative gate
SOFT_WEIGHT = 0.1  # weight of speech between the two relative gates in the running level
MIN_GAIN_DB = -20.0
MAX_GAIN_DB = 24.0
SLEW_DB_PER_S = 5.0  # slow enough to be heard as a fader, not a compressor
# The gain starts to move when its target is this far, then goes all the way: no wandering on
# every syllable, and no voice left resting a dead band away from the target.
DEAD_BAND_DB = 0.5
# The program's look-ahead limiter takes about 1.5 LU off speech levelled to -16 LUFS (peaks
# some 20 dB over the loudness, the limiter at -2 dBTP); aiming this much higher brings the program
# back within 1 LU of the target, each voice by the same fixed amount. A feedback loop on the
# limiter's gain made up more but drove the limiter harder, on syllables: sibilants rose 2.4 dB.
LIMITER_ALLOWANCE_LU = 0.75

# ITU-R BS.1770-4 K-weighting at 48 kHz, as (numerator, denominator) biquads
PRE_FILTER = (
    (1.53512485958697, -2.69169618940638, 1.19839281085285),
    (1.0, -1.69065929318241, 0.73248077421585),
)
RLB_FILTER = ((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621))

BLOCK_FRAMES = round(BLOCK_S / FRAME_DURATION_S)
AVERAGE_FRAMES = AVERAGE_S / FRAME_DURATION_S


def _biquad_power(
    coefficients: tuple[tuple[float, float, float], tuple[float, float, float]],
    frequencies_hz: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    b, a = coefficients
    z = np.exp(-2j * np.pi * frequencies_hz / SAMPLE_RATE_HZ)
    numerator = b[0] + b[1] * z + b[2] * z * z
    denominator = a[0] + a[1] * z + a[2] * z * z
    return np.asarray(np.abs(numerator / denominator) ** 2, dtype=np.float64)


def _k_weights(samples: int) -> npt.NDArray[np.float64]:
    """Per-bin weights w such that w · |rfft(x)|² is the K-weighted mean square of x."""
    frequencies = np.asarray(np.fft.rfftfreq(samples, 1.0 / SAMPLE_RATE_HZ), dtype=np.float64)
    power: npt.NDArray[np.float64] = _biquad_power(PRE_FILTER, frequencies) * _biquad_power(
        RLB_FILTER, frequencies
    )
    # Parseval for a real signal: DC and Nyquist once, every other bin twice
    folds = np.full(frequencies.size, 2.0)
    folds[0] = 1.0
    if samples % 2 == 0:
        folds[-1] = 1.0
    return np.asarray(power * folds / (samples * samples), dtype=np.float64)


K_WEIGHTS = _k_weights(FRAME_SAMPLES)


def k_weighted_power(frame: Pcm) -> float:
    """Mean square of `frame` after BS.1770 K-weighting (mono channel weight 1)."""
    spectrum = np.fft.rfft(frame)
    return float(np.dot(K_WEIGHTS, spectrum.real**2 + spectrum.imag**2))


def power_to_lufs(power: float) -> float:
    return LOUDNESS_OFFSET_DB + 10.0 * math.log10(power) if power > 0 else float("-inf")


def lufs_to_power(loudness_lufs: float) -> float:
    return float(10.0 ** ((loudness_lufs - LOUDNESS_OFFSET_DB) / 10.0))


ABSOLUTE_GATE_POWER = lufs_to_power(ABSOLUTE_GATE_LUFS)
RELATIVE_GATE_RATIO = 10.0 ** (-RELATIVE_GATE_LU / 10.0)
MEASURE_GATE_RATIO = 10.0 ** (-MEASURE_GATE_LU / 10.0)
SLEW_DB_PER_FRAME = SLEW_DB_PER_S * FRAME_DURATION_S
FRAME_RAMP = np.linspace(0.0, 1.0, FRAME_SAMPLES, dtype=np.float32)


class Leveller:
    """One voice's leveller: measure, gate, and move a smooth gain towards the target (plus
    LIMITER_ALLOWANCE_LU, for what the program limiter takes off peaky speech)."""

    def __init__(self, target_lufs: float = TARGET_LUFS) -> None:
        self._target_lufs = target_lufs
        self._block = np.zeros(BLOCK_FRAMES, dtype=np.float64)  # last frames' K-weighted power
        self._block_sum = 0.0
        self._position = 0
        self._frames_seen = 0
        self._speech_frames = 0
        self._level_power = 0.0  # running speech level; 0 until the voice first speaks
        self._gain_db = 0.0
        self._is_moving = False
        self._is_speech = False  # the last frame's block passed the gate

    @property
    def gain_db(self) -> float:
        return self._gain_db

    @property
    def loudness_lufs(self) -> float:
        """The voice's running speech loudness before the gain (-inf until it has spoken)."""
        return power_to_lufs(self._level_power)

    def process(self, frame: Pcm) -> Pcm:
        previous_db = self._gain_db
        power = k_weighted_power(frame)
        self._is_speech = self._measure(power)
        if self._is_speech:
            self._gain_db = self._step_towards(self._wanted_gain_db())
        if previous_db == self._gain_db:
            return frame if previous_db == 0.0 else (frame * _gain(previous_db)).astype(np.float32)
        start = _gain(previous_db)
        ramp = start + (_gain(self._gain_db) - start) * FRAME_RAMP
        return (frame * ramp).astype(np.float32)

    def _measure(self, power: float) -> bool:
        """Adds the frame to the momentary block; True when the block is speech (gate open)."""
        self._block_sum += power - self._block[self._position]
        self._block[self._position] = power
        self._position = (self._position + 1) % BLOCK_FRAMES
        self._frames_seen += 1
        if self._frames_seen < BLOCK_FRAMES:
            return False
        block_power = max(self._block_sum, 0.0) / BLOCK_FRAMES
        if block_power < ABSOLUTE_GATE_POWER:
            return False
        if block_power < self._level_power * RELATIVE_GATE_RATIO:
            return False
        self._speech_frames += 1
        # a plain mean over the first seconds of speech, then a running one
        weight = 1.0 / min(self._speech_frames, AVERAGE_FRAMES)
        if block_power < self._level_power * MEASURE_GATE_RATIO:
            # BS.1770's relative gate (-10 LU) picks the blocks that measure the level; softer
            # speech moves it only slowly, so a voice that stays softer is still followed
            weight *= SOFT_WEIGHT
        self._level_power += (block_power - self._level_power) * weight
        return True

    def _wanted_gain_db(self) -> float:
        wanted = self._target_lufs + LIMITER_ALLOWANCE_LU - power_to_lufs(self._level_power)
        return min(MAX_GAIN_DB, max(MIN_GAIN_DB, wanted))

    def _step_towards(self, wanted_db: float) -> float:
        error = wanted_db - self._gain_db
        if abs(error) > DEAD_BAND_DB:
            self._is_moving = True
        if not self._is_moving:
            return self._gain_db
        if abs(error) <= SLEW_DB_PER_FRAME:
            self._is_moving = False
            return wanted_db
        return self._gain_db + math.copysign(SLEW_DB_PER_FRAME, error)


def _gain(gain_db: float) -> float:
    return float(10.0 ** (gain_db / 20.0))
