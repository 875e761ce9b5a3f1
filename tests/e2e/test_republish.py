"""`rostra speak` survives an origin crash: the origin process killed with SIGKILL (and restarted
by `rostra serve`'s supervisor; a server without a separate origin is killed whole and started
again on the same port and data folder), the server gets its speakers back by themselves (WHIP
again, with backoff), and they hear each other again. A speaker the host removes, or whose space
is gone, does not loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import Server, start_server, stop_server

BACK_ON_STAGE_S = 10.0
LOW_HZ, HIGH_HZ = 330, 550


def speak_tone(
    invite_url: str, frequency_hz: int, seconds: float, *, name: str, record: Path | None = None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rostra", "speak", invite_url, "--tone", str(frequency_hz)]
    command += ["--seconds", str(seconds), "--name", name]
    if record is not None:
        command += ["--record-return", str(record)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stage(server: Server, space_id: str) -> list[dict[str, Any]]:
    try:
        response = httpx.get(f"{server.url}/live/{space_id}/state.json", timeout=2)
    except httpx.HTTPError:
        return []
    if response.status_code != 200:
        return []
    members: list[dict[str, Any]] = response.json()["stage"]
    return members


def wait_for_stage(
    server: Server,
    space_id: str,
    count: int,
    timeout_s: float,
    *,
    not_ids: frozenset[str] = frozenset(),
) -> float:
    """Seconds until `count` speakers are on stage (in sessions other than `not_ids`: state.json
    may still show the stage from before a crash); fails past `timeout_s`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if len({m["id"] for m in stage(server, space_id)} - not_ids) >= count:
            return time.monotonic() - start
        time.sleep(0.2)
    pytest.fail(f"{count} speakers were not on stage within {timeout_s} s: {server.log()[-3000:]}")


def children(pid: int) -> dict[int, str]:
    """Child processes of `pid` and their command lines, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found[int(entry.name)] = (entry / "cmdline").read_text().replace("\0", " ")
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return found


def crash(server: Server) -> None:
    """kill -9 of the whole server, its processes first (no graceful goodbye from any)."""
    for pid in children(server.process.pid):
        os.kill(pid, signal.SIGKILL)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)


def crash_origin(server: Server, tmp_path: Path) -> Server:
    """kill -9 of the origin: its process when `rostra serve` supervises one (and restarts it),
    else the whole server, started again on its port and data folder as a supervisor would."""
    origins = [pid for pid, line in children(server.process.pid).items() if " origin" in line]
    if origins:
        os.kill(origins[0], signal.SIGKILL)
        return server
    crash(server)
    time.sleep(1.0)  # a supervisor restarts the origin within 2 s
    return start_server(server.data, port=int(server.url.rsplit(":", 1)[1]))


def finish(process: subprocess.Popen[bytes], timeout_s: float = 60) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, f"exit {process.returncode}: {err.decode()[-2000:]}"
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def tone_level(samples: np.ndarray[Any, Any], frequency_hz: float) -> float:
    """Amplitude of one frequency (0..1 of full scale) in int16 audio: the median over 100 ms
    blocks, so a dropout on a busy machine does not decide it."""
    block = 4_800
    x = samples[: samples.size // block * block].astype(np.float64).reshape(-1, block) / 32_768
    t = np.arange(block) / 48_000
    levels = 2 * np.abs(np.mean(x * np.exp(-2j * np.pi * frequency_hz * t), axis=1))
    return float(np.median(levels))


def read_wav(path: Path) -> np.ndarray[Any, Any]:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def test_speakers_publish_again_after_the_origin_is_killed_and_hear_each_other(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "data")
    space = server.create_space("Crash")
    record = tmp_path / "low-return.wav"
    low = speak_tone(space["speaker_invite_url"], LOW_HZ, 30, name="Low", record=record)
    high = speak_tone(space["speaker_invite_url"], HIGH_HZ, 30, name="High")
    try:
        wait_for_stage(server, space["id"], 2, 15)
        time.sleep(3)  # Low hears High for a while
        before = read_wav(record)[-3 * 48_000 :]
        old_sessions = frozenset(m["id"] for m in stage(server, space["id"]))
        crashed_at = time.monotonic()
        server = crash_origin(server, tmp_path)
        back_s = wait_for_stage(server, space["id"], 2, BACK_ON_STAGE_S, not_ids=old_sessions)
        back_after_crash_s = time.monotonic() - crashed_at
        time.sleep(4)  # Low hears High again
        heard = read_wav(record)
        results = {"low": finish(low), "high": finish(high)}
    finally:
        for process in (low, high):
            if process.poll() is None:
                process.kill()
        stop_server(server)
    assert back_after_crash_s <= BACK_ON_STAGE_S + 5, (back_s, back_after_crash_s)
    for result in results.values():
        assert result["publishes"] == 2, results
        assert result["ended"] in ("finished", "deadline"), results
    # Low's return after the crash: High's tone again, at the level it had before
    after = heard[-3 * 48_000 :]
    level_before, level_after = tone_level(before, HIGH_HZ), tone_level(after, HIGH_HZ)
    assert level_before > 0.05, f"Low did not hear High before the crash: {level_before:.3f}"
    assert level_after > 0.7 * level_before, (level_before, level_after)
    assert tone_level(after, LOW_HZ) < 0.02, "Low hears itself"
    # the return WAV follows the wall clock: the gap was written as silence
    whole_s = read_wav(record).size / 48_000
    assert whole_s >= 30 - 3, f"the return WAV holds {whole_s:.1f} s of a 30 s run"


def test_speaker_removed_by_the_host_does_not_publish_again(server: Server) -> None:
    space = server.create_space("Removal")
    speaker = speak_tone(space["speaker_invite_url"], LOW_HZ, 30, name="Removed")
    try:
        wait_for_stage(server, space["id"], 1, 15)
        session = stage(server, space["id"])[0]["id"]
        removed = server.api("DELETE", f"/api/v1/spaces/{space['id']}/stage/{session}")
        assert removed.status_code == 204, removed.text
        result = finish(speaker, timeout_s=15)
    finally:
        if speaker.poll() is None:
            speaker.kill()
    assert result["ended"] == "closed-by-server", result
    assert result["publishes"] == 1, result
    time.sleep(2)
    assert stage(server, space["id"]) == []


def test_speaker_stops_when_the_restarted_server_no_longer_knows_its_space(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "data")
    port = int(server.url.rsplit(":", 1)[1])
    space = server.create_space("Forgotten")
    speaker = speak_tone(space["speaker_invite_url"], LOW_HZ, 60, name="Orphan")
    try:
        wait_for_stage(server, space["id"], 1, 15)
        crash(server)
        server = start_server(tmp_path / "other-data", port=port)  # the space is gone
        out, err = speaker.communicate(timeout=30)
    finally:
        if speaker.poll() is None:
            speaker.kill()
        stop_server(server)
    assert speaker.returncode == 1, out.decode()
    assert "404" in err.decode(), err.decode()[-1000:]
