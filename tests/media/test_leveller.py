"""The per-voice leveller and the program it makes: real speech at -30 and -10 dBFS comes out
at -16 LUFS (pyloudnorm, ITU-R BS.1770); noise after speech is not pumped; sibilants keep level."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyloudnorm
import pytest
from bench.speech import SENTENCES_A, SENTENCES_B, band_energy_db, synthesize, with_sibilants
from scipy import signal

from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ
from rostra.media.leveller import (
    PRE_FILTER,
    RLB_FILTER,
    TARGET_LUFS,
    Leveller,
    k_weighted_power,
    power_to_lufs,
)
from rostra.media.mixer import Mixer

Audio = npt.NDArray[np.float32]
SIBILANT_BAND_HZ = (4_000.0, 16_000.0)
NOISE_DBFS = -60.0
NOISE_S = 10.0


def at_rms_dbfs(speech: Audio, level_dbfs: float) -> Audio:
    """`speech` scaled to an RMS level; peaks past full scale clip as a hot microphone's would."""
    rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64))))
    return np.clip(speech * (10 ** (level_dbfs / 20) / rms), -1.0, 1.0).astype(np.float32)


def frames(audio: Audio) -> list[Audio]:
    usable = audio.size - audio.size % FRAME_SAMPLES
    return list(audio[:usable].reshape(-1, FRAME_SAMPLES))


def loudness_lufs(audio: Audio) -> float:
    return float(pyloudnorm.Meter(SAMPLE_RATE_HZ).integrated_loudness(audio.astype(np.float64)))


@pytest.fixture(scope="module")
def speech() -> dict[str, Audio]:
    return {
        "a": synthesize(SENTENCES_A),
        "b": synthesize(SENTENCES_B, voice="en-us+f3"),
    }


def test_k_weighting_in_frequency_domain_matches_bs1770_filters_and_pyloudnorm(
    speech: dict[str, Audio],
) -> None:
    voice = speech["a"]
    powers = np.array([k_weighted_power(frame) for frame in frames(voice)])
    # the same frames through the two biquads in the time domain
    filtered = signal.lfilter(*PRE_FILTER, voice.astype(np.float64))
    filtered = signal.lfilter(*RLB_FILTER, filtered)
    squares = np.square(filtered[: powers.size * FRAME_SAMPLES]).reshape(-1, FRAME_SAMPLES)
    per_frame = squares.mean(axis=1)
    assert abs(power_to_lufs(powers.mean()) - power_to_lufs(per_frame.mean())) < 0.1
    speaking = per_frame > per_frame.max() * 1e-3
    per_frame_error_db = 10 * np.log10(powers[speaking] / per_frame[speaking])
    assert np.median(np.abs(per_frame_error_db)) < 0.5
    # BS.1770 integrated loudness from these frame powers: 400 ms blocks, 75 % overlap, gates
    blocks = np.array([powers[i : i + 20].mean() for i in range(0, powers.size - 19, 5)])
    blocks = blocks[blocks > 10 ** ((-70 + 0.691) / 10)]
    blocks = blocks[blocks > blocks.mean() * 0.1]
    assert abs(power_to_lufs(blocks.mean()) - loudness_lufs(voice)) < 0.2


def test_voices_at_minus_30_and_minus_10_dbfs_come_out_at_the_target(
    speech: dict[str, Audio],
) -> None:
    quiet = at_rms_dbfs(speech["a"], -30.0)
    loud = at_rms_dbfs(speech["b"], -10.0)
    assert loudness_lufs(loud) - loudness_lufs(quiet) > 18
    silent = np.zeros(FRAME_SAMPLES, dtype=np.float32)
    mixer = Mixer()
    turns: list[tuple[str, Audio]] = [("a", quiet), ("b", loud)] * 2
    program: list[Audio] = []
    for speaker, voice in turns:
        for frame in frames(voice):
            other = "b" if speaker == "a" else "a"
            program.append(mixer.mix({speaker: frame, other: silent}, ["a", "b"]).program)
    # the second round, once the gains have settled
    settled = np.concatenate(program[len(program) // 2 :])
    a_frames = len(frames(quiet))
    a_out = settled[: a_frames * FRAME_SAMPLES]
    b_out = settled[a_frames * FRAME_SAMPLES :]
    levels = {"a": loudness_lufs(a_out), "b": loudness_lufs(b_out), "program": 0.0}
    levels["program"] = loudness_lufs(settled)
    for what, level in levels.items():
        assert abs(level - TARGET_LUFS) <= 1.0, f"{what} at {level:.2f} LUFS: {levels}"
    assert abs(levels["a"] - levels["b"]) <= 3.0, levels


def test_noise_after_speech_is_not_pumped_up(speech: dict[str, Audio]) -> None:
    quiet = at_rms_dbfs(speech["a"], -30.0)
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(int(NOISE_S * SAMPLE_RATE_HZ)) * 10 ** (NOISE_DBFS / 20)
    leveller = Leveller()
    for frame in frames(quiet):
        leveller.process(frame)
    assert leveller.gain_db > 10, "the quiet voice was not brought up"
    out = np.concatenate([leveller.process(f) for f in frames(noise.astype(np.float32))])
    seconds = out[: int(NOISE_S) * SAMPLE_RATE_HZ].reshape(int(NOISE_S), SAMPLE_RATE_HZ)
    levels_db = 10 * np.log10(np.mean(np.square(seconds, dtype=np.float64), axis=1))
    assert levels_db.max() - levels_db[0] <= 1.0, f"noise rose: {np.round(levels_db, 2)}"


def test_sibilant_band_keeps_its_level_through_the_mixer(speech: dict[str, Audio]) -> None:
    source = at_rms_dbfs(with_sibilants(speech["a"], seed=5), -30.0)
    mixer = Mixer()
    twice = np.concatenate((source, source))
    out = np.concatenate([mixer.mix({"a": f}, ["a"]).program for f in frames(twice)])
    settled, reference = out[source.size :], twice[source.size : out.size]
    settled = settled[: reference.size]

    def band_relative_db(audio: Audio) -> float:
        whole = band_energy_db(audio, (20.0, SAMPLE_RATE_HZ / 2))
        return band_energy_db(audio, SIBILANT_BAND_HZ) - whole

    change_db = band_relative_db(settled) - band_relative_db(reference)
    assert abs(change_db) <= 1.5, f"the 4-16 kHz band moved {change_db:+.2f} dB"
