"""Program loudness as a listener hears it: two real `rostra speak` speakers (aiortc over WHIP),
one at -30 dBFS and one at -10 dBFS, take turns; the ADTS stream, decoded, is at -16 LUFS, the
ADTS and Ogg/Opus streams peak under -1 dBTP, and the two voices sit within 3 LU of each other."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyloudnorm
from scipy import signal

from tests.audio_check import SAMPLE_RATE_HZ, capture, decode
from tests.conftest import Server, make_speech
from tests.e2e.test_live_space import finish, speak

Audio = npt.NDArray[np.float32]
TEXT_A = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
TEXT_B = "The juice of lemons makes fine punch. The box was thrown beside the parked truck."
QUIET_DBFS = -30.0
LOUD_DBFS = -10.0
LEAD_S = 1.5
GAP_S = 4.0  # the two speakers may start up to a few seconds apart: turns never overlap
TURN_GAP_FOUND_S = 1.2  # a pause this long in the program is a change of turn
TARGET_LUFS = -16.0
CEILING_DBTP = -1.0
OVERSAMPLING = 4


def at_rms_dbfs(speech: Audio, level_dbfs: float) -> Audio:
    """`speech` scaled to an RMS level; peaks past full scale clip as a hot microphone's would."""
    rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64))))
    return np.clip(speech * (10 ** (level_dbfs / 20) / rms), -1.0, 1.0).astype(np.float32)


def write_wav(path: Path, audio: Audio) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE_HZ)
        out.writeframes(np.round(np.clip(audio, -1, 1) * 32_767).astype("<i2").tobytes())
    return path


def turns(quiet: Audio, loud: Audio) -> tuple[Audio, Audio]:
    """Two timelines of equal length: A speaks, then B, then A, then B, with pauses between."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE_HZ), dtype=np.float32)
    lead = np.zeros(int(LEAD_S * SAMPLE_RATE_HZ), dtype=np.float32)
    hush_a, hush_b = np.zeros_like(quiet), np.zeros_like(loud)
    a = np.concatenate([lead, quiet, gap, hush_b, gap, quiet, gap, hush_b, gap])
    b = np.concatenate([lead, hush_a, gap, loud, gap, hush_a, gap, loud, gap])
    return a, b


def speech_turns(program: Audio) -> list[Audio]:
    """The program cut where it falls silent for TURN_GAP_FOUND_S or longer."""
    frame = SAMPLE_RATE_HZ // 50
    usable = program[: program.size - program.size % frame].reshape(-1, frame)
    is_sound = np.sqrt(np.mean(np.square(usable, dtype=np.float64), axis=1)) > 10 ** (-50 / 20)
    found: list[Audio] = []
    start, quiet_run = -1, 0
    for index, sounding in enumerate(is_sound):
        if sounding:
            start = index if start < 0 else start
            quiet_run = 0
            continue
        quiet_run += 1
        if start >= 0 and quiet_run * 0.02 >= TURN_GAP_FOUND_S:
            found.append(usable[start : index - quiet_run + 1].reshape(-1))
            start = -1
    if start >= 0:
        found.append(usable[start:].reshape(-1))
    return [turn for turn in found if turn.size > SAMPLE_RATE_HZ]


def loudness_lufs(audio: Audio) -> float:
    return float(pyloudnorm.Meter(SAMPLE_RATE_HZ).integrated_loudness(audio.astype(np.float64)))


def true_peak_dbtp(audio: Audio) -> float:
    oversampled = signal.resample_poly(audio.astype(np.float64), OVERSAMPLING, 1)
    return 20 * float(np.log10(np.max(np.abs(oversampled))))


def test_voices_at_minus_30_and_minus_10_dbfs_reach_the_listener_at_minus_16_lufs(
    server: Server, tmp_path: Path
) -> None:
    speech = tmp_path / "speech"
    speech.mkdir()
    quiet = at_rms_dbfs(decode(make_speech(speech, "a", TEXT_A)), QUIET_DBFS)
    loud = at_rms_dbfs(decode(make_speech(speech, "b", TEXT_B, voice="en-us+f3")), LOUD_DBFS)
    sent = {"a": loudness_lufs(quiet), "b": loudness_lufs(loud)}
    timeline_a, timeline_b = turns(quiet, loud)
    space = server.create_space("Loudness")
    seconds = timeline_a.size / SAMPLE_RATE_HZ + 3.0
    listeners = {
        "aac": capture(space["stream_url"], seconds, tmp_path / "aac.wav"),
        "opus": capture(space["opus_stream_url"], seconds, tmp_path / "opus.wav"),
    }
    bots = [
        speak(space["speaker_invite_url"], write_wav(tmp_path / f"{name}.wav", line), name, None)
        for name, line in (("a", timeline_a), ("b", timeline_b))
    ]
    for bot in bots:
        finish(bot)
    for name, listener in listeners.items():
        _, err = listener.communicate(timeout=60)
        assert listener.returncode == 0, f"{name}: {err.decode()[-1000:]}"

    program = decode(tmp_path / "aac.wav")
    found = speech_turns(program)
    lengths_s = [round(turn.size / SAMPLE_RATE_HZ, 2) for turn in found]
    expected_s = [round(v.size / SAMPLE_RATE_HZ, 2) for v in (quiet, loud, quiet, loud)]
    assert len(found) == 4, f"turns of {lengths_s} s found, {expected_s} s sent"
    for length_s, sent_s in zip(lengths_s, expected_s, strict=True):
        assert abs(length_s - sent_s) <= 1.0, f"turns of {lengths_s} s found, {expected_s} s sent"
    heard = {"a": loudness_lufs(found[2]), "b": loudness_lufs(found[3])}
    settled = np.concatenate(found[2:])
    figures: dict[str, Any] = {
        "sent": sent,
        "heard": heard,
        "program": loudness_lufs(settled),
        "true_peak": {name: true_peak_dbtp(decode(tmp_path / f"{name}.wav")) for name in listeners},
    }
    print(f"\nloudness sent and heard (LUFS; true peak dBTP): {figures}")  # noqa: T201
    assert sent["b"] - sent["a"] > 18, figures
    assert abs(figures["program"] - TARGET_LUFS) <= 1.0, figures
    for name, level in heard.items():
        assert abs(level - TARGET_LUFS) <= 1.0, f"voice {name}: {figures}"
    assert abs(heard["a"] - heard["b"]) <= 3.0, figures
    for name, peak in figures["true_peak"].items():
        assert peak <= CEILING_DBTP, f"{name}: {figures}"
