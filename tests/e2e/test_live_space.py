"""A live space end to end over loopback: two `rostra speak` bots talk, real clients listen to
the live HLS, the ADTS and the Ogg/Opus streams, and each bot hears the other but not itself."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.audio_check import (
    SAMPLE_RATE_HZ,
    capture,
    decode,
    peak_correlation,
    rms_db,
    speech_correlation,
)
from tests.conftest import Server, make_speech, padded, start_server, stop_server

VOICE_A = "The quick brown fox jumps over the lazy dog while the radio plays softly."
VOICE_B = "Seven silver swans swim silently across the frozen lake at midnight."
CONTROL = "Nobody ever said these words into the space, so nobody should hear them."
CAPTURE_S = 18.0
MIN_CORRELATION = 0.5
CONTROL_RATIO = 5.0


def speak(invite_url: str, wav: Path, name: str, record: Path | None) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "rostra",
        "speak",
        invite_url,
        "--file",
        str(wav),
        "--name",
        name,
    ]
    if record is not None:
        command += ["--record-return", str(record)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def speak_tone(invite_url: str, frequency_hz: int, seconds: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "rostra",
        "speak",
        invite_url,
        "--tone",
        str(frequency_hz),
        "--seconds",
        str(seconds),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes], timeout_s: float = 60) -> str:
    out, err = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, f"exit {process.returncode}: {err.decode()[-2000:]}"
    return out.decode()


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("voices")
    return {
        "a": make_speech(directory, "a", VOICE_A, voice="en"),
        "b": make_speech(directory, "b", VOICE_B, voice="en-us+f3"),
        "control": make_speech(directory, "control", CONTROL, voice="en-gb"),
    }


def wait_for_segments(server: Server, space_id: str, count: int = 3) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = server.api("GET", f"/live/{space_id}/audio.m3u8")
        if response.status_code == 200 and response.text.count("#EXTINF") >= count:
            return
        time.sleep(0.25)
    pytest.fail(f"the live playlist never had {count} segments")


def assert_hears(heard: object, source: Path, control: Path, what: str) -> float:
    assert not isinstance(heard, str)
    wanted = speech_correlation(heard, decode(source))  # type: ignore[arg-type]
    unsent = speech_correlation(heard, decode(control))  # type: ignore[arg-type]
    assert wanted >= MIN_CORRELATION, f"{what}: correlation {wanted:.2f} < {MIN_CORRELATION}"
    assert wanted >= CONTROL_RATIO * unsent, (
        f"{what}: correlation {wanted:.2f} is not {CONTROL_RATIO}x the control's {unsent:.2f}"
    )
    return wanted


def test_two_speakers_reach_every_listener_format_and_hear_each_other(
    server: Server, voices: dict[str, Path], tmp_path: Path
) -> None:
    space = server.create_space("Two voices")
    wait_for_segments(server, space["id"])
    captures = {
        "hls": capture(space["hls_url"], CAPTURE_S, tmp_path / "hls.wav"),
        "aac": capture(space["stream_url"], CAPTURE_S, tmp_path / "aac.wav"),
        "opus": capture(space["opus_stream_url"], CAPTURE_S, tmp_path / "opus.wav"),
    }
    time.sleep(1.0)
    bots = {
        name: speak(
            space["speaker_invite_url"], padded(voices[name]), who, tmp_path / f"ret-{name}.wav"
        )
        for name, who in (("a", "Alice"), ("b", "Bob"))
    }
    results = {name: json.loads(finish(bot)) for name, bot in bots.items()}
    assert all(r["connection"] == "connected" for r in results.values()), results
    for name, process in captures.items():
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, f"{name} client failed: {err.decode()[-1000:]}"

    for fmt in ("hls", "aac", "opus"):
        heard = decode(tmp_path / f"{fmt}.wav")
        assert heard.size > SAMPLE_RATE_HZ * (CAPTURE_S - 2), f"{fmt}: only {heard.size} samples"
        assert_hears(heard, voices["a"], voices["control"], f"{fmt} program, voice A")
        assert_hears(heard, voices["b"], voices["control"], f"{fmt} program, voice B")

    for own, other in (("a", "b"), ("b", "a")):
        returned = decode(tmp_path / f"ret-{own}.wav")
        assert_hears(returned, voices[other], voices["control"], f"{own}'s mix-minus")
        itself = peak_correlation(returned, decode(voices[own]))
        assert itself < 0.15, f"{own} hears its own voice back (correlation {itself:.2f})"


def test_voice_level_at_listener_matches_source(server: Server, tmp_path: Path) -> None:
    space = server.create_space("Level")
    listener = capture(space["stream_url"], 8.0, tmp_path / "aac.wav")
    time.sleep(0.5)
    bot = speak_tone(space["speaker_invite_url"], 1000, 5)
    finish(bot)
    listener.communicate(timeout=30)
    heard = decode(tmp_path / "aac.wav")
    assert np.count_nonzero(np.abs(heard) > 0.1) > SAMPLE_RATE_HZ, "no tone reached the listener"
    # the tone is sent at 0.25 full scale (-15.05 dBFS RMS, -15.05 LUFS at 1 kHz); the leveller
    # brings it to the program's -16 LUFS within its first second; keep its steady middle
    onset = int(np.argmax(np.abs(heard) > 0.1))
    window = heard[onset + SAMPLE_RATE_HZ : onset + 3 * SAMPLE_RATE_HZ]
    level = rms_db(window)
    assert abs(level - (-16.0)) <= 1.0, f"tone arrived at {level:.2f} dBFS, levelled to -16"


def test_killed_speaker_leaves_program_continuous(
    server: Server, voices: dict[str, Path], tmp_path: Path
) -> None:
    space = server.create_space("Kill")
    long_a = tmp_path / "long-a.wav"
    subprocess.run(["sox", str(voices["a"]), str(voices["a"]), str(long_a)], check=True)
    alice = speak(space["speaker_invite_url"], long_a, "Alice", None)
    bob = speak(space["speaker_invite_url"], voices["b"], "Bob", None)
    time.sleep(4.0)
    bob.send_signal(signal.SIGKILL)
    bob.wait()
    finish(alice)
    deadline = time.monotonic() + 15  # a silent speaker's seat is freed after 10 s
    while time.monotonic() < deadline:
        stage = server.api("GET", f"/live/{space['id']}/state.json").json()["stage"]
        if not stage:
            break
        time.sleep(0.5)
    assert stage == [], f"the killed speaker still holds a seat: {stage}"
    response = server.api("POST", f"/api/v1/spaces/{space['id']}/end")
    assert response.status_code == 200, response.text
    media = server.data / "spaces" / space["id"]
    numbers = sorted(int(p.stem.split("_")[1]) for p in media.glob("seg_*.m4s"))
    assert numbers, "nothing was recorded"
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), f"holes in {numbers}"
    program = decode(media / "replay.m3u8")
    spoken = decode(long_a)
    # Bob is killed about 3 s into Alice's speech: her words before, across and after it
    for start_s, end_s in ((0.5, 2.5), (2.0, 5.0), (5.0, 8.0)):
        part = spoken[int(start_s * SAMPLE_RATE_HZ) : int(end_s * SAMPLE_RATE_HZ)]
        found = speech_correlation(program, part)
        assert found >= MIN_CORRELATION, (
            f"Alice's words {start_s}-{end_s} s: correlation {found:.2f} < {MIN_CORRELATION}"
        )


def test_three_percent_packet_loss_is_concealed(tmp_path: Path) -> None:
    lossy = start_server(
        tmp_path / "data",
        extra_env={"ROSTRA_INGEST_DROP_RATE": "0.03", "ROSTRA_INGEST_DROP_SEED": "7"},
    )
    try:
        space = lossy.create_space("Lossy")
        listener = capture(space["stream_url"], 14.0, tmp_path / "aac.wav")
        time.sleep(0.5)
        bot = speak_tone(space["speaker_invite_url"], 600, 10)
        finish(bot)
        metrics = lossy.api("GET", "/metrics").text
        listener.communicate(timeout=30)
    finally:
        stop_server(lossy)
    fates = {
        line.split('fate="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("rostra_ingest_packets_total{")
    }
    assert 0.015 <= fates["test_dropped"] / (fates["received"] + fates["test_dropped"]) <= 0.05
    heard = decode(tmp_path / "aac.wav")
    frame = SAMPLE_RATE_HZ // 50
    onset = int(np.argmax(np.abs(heard) > 0.1))
    tone_part = heard[onset : onset + 9 * SAMPLE_RATE_HZ]
    levels = np.array(
        [rms_db(tone_part[i : i + frame]) for i in range(0, tone_part.size - frame, frame)]
    )
    expected = float(np.median(levels))
    missing = levels < expected - 10
    longest = 0
    run = 0
    for is_missing in missing:
        run = run + 1 if is_missing else 0
        longest = max(longest, run)
    assert missing.mean() <= 0.035, f"{missing.mean():.1%} of the audio is missing"
    assert longest * 20 <= 60, f"a gap of {longest * 20} ms"
    assert fates["lost"] >= fates["test_dropped"] * 0.8, fates


def test_player_arriving_at_go_live_waits_for_the_first_segment(server: Server) -> None:
    space = server.create_space("Early player")
    playlist = httpx.get(space["hls_url"].replace("index.m3u8", "audio.m3u8"), timeout=10)
    assert playlist.status_code == 200, playlist.text
    assert "#EXTINF:1.024," in playlist.text
