"""The mixer: program = every levelled voice; mix-minus = everyone but the listener; no clipping,
not even between samples."""

from __future__ import annotations

import numpy as np
from scipy import signal

from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ
from rostra.media.leveller import TARGET_LUFS
from rostra.media.loudness import (
    LOOKAHEAD_BLOCK_SAMPLES,
    LOOKAHEAD_SAMPLES,
    TRUE_PEAK_CEILING_DBTP,
    Limiter,
    db_to_gain,
)
from rostra.media.mixer import Mixer

T = np.arange(FRAME_SAMPLES) / SAMPLE_RATE_HZ


def sine(frequency_hz: float, level: float) -> np.ndarray:
    return (level * np.sin(2 * np.pi * frequency_hz * T)).astype(np.float32)


def delayed(frame: np.ndarray) -> np.ndarray:
    """The program of a first frame: the limiter's look-ahead delays it, silence before."""
    return np.concatenate((np.zeros(LOOKAHEAD_SAMPLES, np.float32), frame[:-LOOKAHEAD_SAMPLES]))


def test_mix_minus_excludes_own_voice() -> None:
    a, b, c = sine(300, 0.1), sine(500, 0.1), sine(700, 0.1)
    result = Mixer().mix({"a": a, "b": b, "c": c}, ["a", "b", "c"])
    np.testing.assert_allclose(result.mix_minus["a"], b + c, atol=1e-6)
    np.testing.assert_allclose(result.mix_minus["b"], a + c, atol=1e-6)
    np.testing.assert_allclose(result.program, delayed(a + b + c), atol=1e-6)


def test_single_voice_passes_at_its_level() -> None:
    voice = sine(1000, 0.5)
    result = Mixer().mix({"a": voice, "b": None}, ["a", "b"])
    np.testing.assert_array_equal(result.program, delayed(voice))
    np.testing.assert_array_equal(result.mix_minus["b"], voice)
    assert not np.any(result.mix_minus["a"])


def test_loud_sum_is_limited_not_clipped_or_wrapped() -> None:
    mixer = Mixer()
    voices = {str(i): sine(200 + 50 * i, 0.9) for i in range(13)}
    for _ in range(20):
        result = mixer.mix(voices, list(voices))
        assert float(np.max(np.abs(result.program))) <= db_to_gain(-1.0) + 1e-6
    # the limited program still follows the summed waveform (scaled, not folded over), which
    # repeats every frame here: the look-ahead delays it
    total = np.roll(sum(voices.values()), LOOKAHEAD_SAMPLES)
    correlation = np.corrcoef(result.program, total)[0, 1]
    # 23 dB over the threshold, the 10 ms release follows the sum's 20 ms beat
    assert correlation > 0.85


def test_limiter_releases_after_a_peak() -> None:
    limiter = Limiter()
    limiter.process(sine(100, 2.0))
    assert limiter.gain < 0.5
    for _ in range(100):
        limiter.process(sine(100, 0.1))
    assert limiter.gain > 0.99


def through(limiter: Limiter, audio: np.ndarray) -> np.ndarray:
    return np.concatenate([limiter.process(f) for f in audio.reshape(-1, FRAME_SAMPLES)])


def applied_gain(audio: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The limiter's gain on each input sample (NaN where the input is too small to tell)."""
    heard = out[LOOKAHEAD_SAMPLES:]
    sent = audio[: heard.size].astype(np.float64)
    usable = np.abs(sent) > 0.02
    return np.where(usable, heard / np.where(usable, sent, 1.0), np.nan)


def test_program_is_delayed_by_exactly_the_look_ahead() -> None:
    rng = np.random.default_rng(4)
    quiet = (rng.standard_normal(FRAME_SAMPLES * 10) * 0.05).astype(np.float32)
    np.testing.assert_array_equal(
        through(Limiter(), quiet)[LOOKAHEAD_SAMPLES:], quiet[:-LOOKAHEAD_SAMPLES]
    )
    loud = quiet * 20  # limited most of the time
    out = through(Limiter(), loud).astype(np.float64)
    lags = [
        float(np.dot(out[lag:], loud[: out.size - lag])) for lag in range(2 * LOOKAHEAD_SAMPLES)
    ]
    assert int(np.argmax(lags)) == LOOKAHEAD_SAMPLES


def test_limiter_gain_never_steps() -> None:
    # a 1 kHz tone jumps 20 dB, to 8 dB over the threshold, in the middle of a frame
    t = np.arange(FRAME_SAMPLES * 12) / SAMPLE_RATE_HZ
    level = np.where(np.arange(t.size) < FRAME_SAMPLES * 5 + 300, 0.2, 2.0)
    tone = (level * np.sin(2 * np.pi * 1000 * t + 0.3)).astype(np.float32)
    gain = applied_gain(tone, through(Limiter(), tone))
    valid = np.flatnonzero(~np.isnan(gain))
    # the largest change between near samples, per sample apart
    steps = np.abs(np.diff(gain[valid])) / np.diff(valid)
    assert float(np.nanmax(steps)) <= 1.2 / LOOKAHEAD_SAMPLES, (
        f"gain stepped {np.nanmax(steps):.4f}"
    )
    assert float(np.nanmin(gain)) < db_to_gain(-7.0), "the loud part was not limited"


def test_a_click_pulls_the_gain_down_only_around_it() -> None:
    t = np.arange(FRAME_SAMPLES * 20) / SAMPLE_RATE_HZ
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    click = FRAME_SAMPLES * 6 + 700
    tone[click] = 1.5
    out = through(Limiter(), tone)
    gain = applied_gain(tone, out)
    dipped = np.flatnonzero(gain < 0.999)
    assert dipped.size, "the click was not limited"
    # the gain reaches a 1 ms block's value at its first sample
    assert dipped.min() >= click - LOOKAHEAD_SAMPLES - LOOKAHEAD_BLOCK_SAMPLES, "down too early"
    assert dipped.max() <= click + int(0.1 * SAMPLE_RATE_HZ), "still down 100 ms after the click"
    assert gain[click] <= db_to_gain(-2.0) / 1.5 + 1e-3, "the click itself was not limited"
    # the rest of the click's frame passes untouched
    frame_start = click - click % FRAME_SAMPLES
    assert (
        np.nanmin(gain[frame_start : click - LOOKAHEAD_SAMPLES - LOOKAHEAD_BLOCK_SAMPLES])
        > 0.999999
    )


def test_silence_when_nobody_speaks() -> None:
    result = Mixer().mix({}, [])
    assert result.program.shape == (FRAME_SAMPLES,)
    assert not np.any(result.program)


def test_limiter_holds_the_true_peak_between_samples() -> None:
    # a 12 kHz sine sampled at 45°: every sample is 3 dB under the waveform's real peak
    t = np.arange(FRAME_SAMPLES * 10) / SAMPLE_RATE_HZ
    wave = np.sin(2 * np.pi * 12_000 * t + np.pi / 4).astype(np.float32)
    assert float(np.max(np.abs(wave))) < db_to_gain(-2.9)
    limiter = Limiter()
    out = np.concatenate([limiter.process(f) for f in wave.reshape(-1, FRAME_SAMPLES)])
    true_peak = float(np.max(np.abs(signal.resample_poly(out[FRAME_SAMPLES:], 4, 1))))
    assert true_peak <= db_to_gain(TRUE_PEAK_CEILING_DBTP), f"{20 * np.log10(true_peak):.2f} dBTP"


def test_mix_minus_carries_the_levelled_voice() -> None:
    mixer = Mixer()
    quiet = sine(1000, db_to_gain(-36.0) * np.sqrt(2))  # -36 dBFS RMS, -36 LUFS at 1 kHz
    silent = np.zeros(FRAME_SAMPLES, dtype=np.float32)
    for _ in range(250):  # 5 s: the leveller has brought the voice up
        result = mixer.mix({"a": quiet, "b": silent}, ["a", "b"])
    program_db = 20 * np.log10(np.sqrt(np.mean(np.square(result.program, dtype=np.float64))))
    heard_by_b = result.mix_minus["b"]
    minus_db = 20 * np.log10(np.sqrt(np.mean(np.square(heard_by_b, dtype=np.float64))))
    assert abs(program_db - TARGET_LUFS) <= 1.0, f"program at {program_db:.2f} dBFS"
    assert abs(minus_db - program_db) <= 0.1, f"b hears a at {minus_db:.2f}, not {program_db:.2f}"


def test_forget_drops_the_voice_leveller() -> None:
    mixer = Mixer()
    mixer.mix({"a": sine(300, 0.1)}, ["a"])
    assert mixer.leveller("a") is not None
    assert mixer.speaker_count == 1
    mixer.forget("a")
    assert mixer.leveller("a") is None
    assert mixer.speaker_count == 0
