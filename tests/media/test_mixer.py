"""The mixer: program = every voice; mix-minus = everyone but the listener; no clipping."""

from __future__ import annotations

import numpy as np

from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ
from rostra.media.loudness import Limiter, db_to_gain
from rostra.media.mixer import Mixer

T = np.arange(FRAME_SAMPLES) / SAMPLE_RATE_HZ


def sine(frequency_hz: float, level: float) -> np.ndarray:
    return (level * np.sin(2 * np.pi * frequency_hz * T)).astype(np.float32)


def test_mix_minus_excludes_own_voice() -> None:
    a, b, c = sine(300, 0.1), sine(500, 0.1), sine(700, 0.1)
    result = Mixer().mix({"a": a, "b": b, "c": c}, ["a", "b", "c"])
    np.testing.assert_allclose(result.mix_minus["a"], b + c, atol=1e-6)
    np.testing.assert_allclose(result.mix_minus["b"], a + c, atol=1e-6)
    np.testing.assert_allclose(result.program, a + b + c, atol=1e-6)


def test_single_voice_passes_at_its_level() -> None:
    voice = sine(1000, 0.5)
    result = Mixer().mix({"a": voice, "b": None}, ["a", "b"])
    np.testing.assert_array_equal(result.program, voice)
    np.testing.assert_array_equal(result.mix_minus["b"], voice)
    assert not np.any(result.mix_minus["a"])


def test_loud_sum_is_limited_not_clipped_or_wrapped() -> None:
    mixer = Mixer()
    voices = {str(i): sine(200 + 50 * i, 0.9) for i in range(13)}
    for _ in range(20):
        result = mixer.mix(voices, list(voices))
        assert float(np.max(np.abs(result.program))) <= db_to_gain(-1.0) + 1e-6
    # the limited program still follows the summed waveform (scaled, not folded over)
    total = sum(voices.values())
    correlation = np.corrcoef(result.program, total)[0, 1]
    assert correlation > 0.99


def test_limiter_releases_after_a_peak() -> None:
    limiter = Limiter()
    limiter.process(sine(100, 2.0))
    assert limiter.gain < 0.5
    for _ in range(100):
        limiter.process(sine(100, 0.1))
    assert limiter.gain > 0.99


def test_silence_when_nobody_speaks() -> None:
    result = Mixer().mix({}, [])
    assert result.program.shape == (FRAME_SAMPLES,)
    assert not np.any(result.program)
