"""The simulated audience against a real `rostra serve` with two `rostra speak` tone speakers:
real Locust users in a process of their own (gevent patches its interpreter). Every HLS listener
hears audio without a stall, the truth they keep matches the server's honest count, attacks get
the answers the contract names, no server error; each speaker hears the other and not itself.
The continuity check fails a speaker that hears its own tone, or silence."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rostra.rehearse.frames import SAMPLE_RATE_HZ, tone
from rostra.rehearse.observations import Observations
from rostra.rehearse.speakers import SpeakerPlan, Speakers, check_return
from tests.conftest import ROOT, Server, start_server, stop_server

HLS_LISTENERS = 20
INTERACTIVE = 2
PROGRESSIVE = 2
RUN_S = 12.0
SPEAKERS_S = 30.0
HEARTBEAT_S = 3
# the count settles this long after the last join: state.json is cached a second, counts refresh
VISIBILITY_S = 4.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, Speakers]]:
    root = tmp_path_factory.mktemp("rehearse-users")
    server = start_server(
        root / "data", extra_env={"ROSTRA_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S)}
    )
    space = server.create_space("Rehearsal")
    second = server.api("POST", f"/api/v1/spaces/{space['id']}/invites", json={"name": "B"})
    assert second.status_code == 201, second.text
    speakers = Speakers(
        [
            SpeakerPlan("A", space["speaker_invite_url"], tone_hz=440),
            SpeakerPlan("B", second.json()["speaker_invite_url"], tone_hz=660),
        ],
        seconds=SPEAKERS_S,
        directory=root / "speakers",
    )
    speakers.start()
    try:
        wait_for_segments(server, space["id"], count=3)
        yield server, space["id"], speakers
    finally:
        speakers.stop()
        stop_server(server)


def wait_for_segments(server: Server, space_id: str, *, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        playlist = httpx.get(f"{server.url}/live/{space_id}/audio.m3u8", timeout=5)
        if playlist.status_code == 200 and playlist.text.count("#EXTINF") >= count:
            return
        time.sleep(0.3)
    pytest.fail(f"no {count} segments in {timeout_s} s: {server.log()[-2000:]}")


def run_audience(server: Server, space_id: str, out: Path) -> subprocess.Popen[bytes]:
    settings = {"reactions_per_min": 30.0, "hands_per_hour": 720.0}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rostra.rehearse.local_run",
            server.url,
            space_id,
            "--users",
            f"HlsListener={HLS_LISTENERS}",
            f"InteractiveListener={INTERACTIVE}",
            f"ProgressiveListener={PROGRESSIVE}",
            "Attacker=1",
            "--seconds",
            str(RUN_S),
            "--settings",
            json.dumps(settings),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def watch_state(server: Server, space_id: str, audience: subprocess.Popen[bytes]) -> list[Any]:
    """state.json every half second while the audience runs: (time, listeners, error)."""
    seen = []
    while audience.poll() is None:
        state = httpx.get(f"{server.url}/live/{space_id}/state.json", timeout=5).json()
        seen.append((time.time(), state["listeners"], state["error"]))
        time.sleep(0.5)
    return seen


def test_simulated_audience_hears_the_space_and_matches_the_honest_count(
    live: tuple[Server, str, Speakers], tmp_path: Path
) -> None:
    server, space_id, _ = live
    out = tmp_path / "observations.json"
    audience = run_audience(server, space_id, out)
    seen = watch_state(server, space_id, audience)
    output = audience.communicate()[0].decode(errors="replace")
    assert audience.returncode == 0, output[-3000:]
    observations = Observations.from_json(json.loads(out.read_text()))
    total = observations.total()
    players = HLS_LISTENERS + INTERACTIVE

    assert total.generator_errors == {}, output[-3000:]
    assert total.server_errors == {}
    assert total.joins == {"admitted": players + 0}
    assert total.ttfa.count == players  # every player heard audio
    assert total.ttfa.max_s < 5.0
    assert 0 < total.pdt_lag.max_s < 10.0
    assert total.stalls == 0
    assert total.played_s > players * (RUN_S - 6)
    assert total.latency.count > 0
    assert total.latency.max_s < 10.0
    assert total.heartbeats[f"heartbeat:{204}"] >= players
    assert total.heartbeats["leave:204"] == players
    assert total.progressive_ttfb.count == PROGRESSIVE
    assert total.progressive_gaps == 0
    assert total.interactions["reaction:204"] > 0
    assert {"hand:204", "lower hand:204"} & set(total.interactions)
    assert total.behind == 0

    attacks = {kind.rsplit(":", 1)[0]: set() for kind in total.attacks}
    for kind in total.attacks:
        attacks[kind.rsplit(":", 1)[0]].add(kind.rsplit(":", 1)[1])
    assert attacks["forged-ticket"] == {"401"}
    assert attacks["unknown-space"] == {"404"}
    assert attacks["random-path"] == {"404"}
    assert attacks["oversized-body"] == {"413"}
    assert attacks["junk-join"] <= {"400", "422"}
    assert attacks["replayed-ticket"] <= {"401", "403"}
    assert attacks["give-back"] == {"204"}

    truth = dict(observations.live_series())
    assert max(truth.values()) == players
    # the attacker's one genuine ticket (given back, then replayed) is counted in its window
    settled = [
        (listeners, error)
        for at_s, listeners, error in seen
        if truth.get(int(at_s) - int(VISIBILITY_S)) == players and truth.get(int(at_s)) == players
    ]
    assert settled, (seen, truth)
    for listeners, error in settled:
        assert abs(listeners - players) <= max(1.0, 3 * error * players) + 1, (listeners, error)


def test_speakers_hear_each_other_and_not_themselves(live: tuple[Server, str, Speakers]) -> None:
    _, _, speakers = live
    codes = speakers.wait(timeout_s=SPEAKERS_S + 30)
    assert codes == [0, 0]
    checks = speakers.check(skip_s=3.0)
    for check in checks:
        assert check.is_ok, check.problems()
        assert check.heard_s > 20


def write_wav(path: Path, audio: np.ndarray[Any, Any]) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes((np.clip(audio, -1, 1) * 32_767).astype(np.int16).tobytes())
    return path


def test_continuity_fails_a_speaker_that_hears_itself_or_silence(tmp_path: Path) -> None:
    me = SpeakerPlan("A", "http://x/speak/s?invite=t", tone_hz=440)
    other = SpeakerPlan("B", "http://x/speak/s?invite=u", tone_hz=660)
    good = write_wav(tmp_path / "good.wav", tone(660, 6.0))
    assert check_return(good, me, [other]).is_ok

    echo = write_wav(tmp_path / "echo.wav", tone(660, 6.0) + 0.5 * tone(440, 6.0))
    heard = check_return(echo, me, [other])
    assert heard.hears_itself
    assert not heard.is_ok
    assert "A hears its own voice" in heard.problems()[0]

    broken = tone(660, 6.0)
    broken[4 * SAMPLE_RATE_HZ : int(4.5 * SAMPLE_RATE_HZ)] = 0
    gap = check_return(write_wav(tmp_path / "gap.wav", broken), me, [other])
    assert not gap.is_ok
    assert len(gap.gaps) == 1
    assert gap.gaps[0] == pytest.approx((4.0, 0.5), abs=0.03)

    alone = check_return(
        write_wav(tmp_path / "alone.wav", np.zeros(SAMPLE_RATE_HZ * 6)), me, [other]
    )
    assert alone.misses == ["B"]


def test_listeners_solve_the_proof_of_work_and_wait_their_turn(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "data",
        extra_env={
            "ROSTRA_POW": "on",
            "ROSTRA_ADMISSION_RATE": "1",
            "ROSTRA_ADMISSION_BURST": "1",
        },
    )
    try:
        space = server.create_space("Guarded")
        out = tmp_path / "observations.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "rostra.rehearse.local_run",
                server.url,
                space["id"],
                "--users",
                "HlsListener=4",
                "--seconds",
                "8",
                "--out",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:]
    finally:
        stop_server(server)
    total = Observations.from_json(json.loads(out.read_text())).total()
    assert total.generator_errors == {}
    assert total.server_errors == {}
    assert total.joins["admitted"] == 4
    assert total.joins["challenged"] >= 4  # each solved its own challenge
    assert total.joins["queued"] >= 1  # one a second: the others waited by Retry-After
    assert set(total.joins) <= {"admitted", "challenged", "queued"}
    assert total.heartbeats["leave:204"] == 4


LL_LISTENERS = 20
LL_RUN_S = 10.0
PART_S = 0.256


@pytest.fixture(scope="module")
def ll_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    root = tmp_path_factory.mktemp("rehearse-ll")
    server = start_server(root / "data")
    space = server.create_space("Low latency")
    speakers = Speakers(
        [SpeakerPlan("A", space["speaker_invite_url"], tone_hz=440)],
        seconds=LL_RUN_S + 20,
        directory=root / "speakers",
    )
    speakers.start()
    try:
        wait_for_segments(server, space["id"], count=2)
        yield server, space["id"]
    finally:
        speakers.stop()
        stop_server(server)


def test_low_latency_listeners_play_each_part_once_near_the_live_edge(
    ll_live: tuple[Server, str], tmp_path: Path
) -> None:
    server, space_id = ll_live
    out = tmp_path / "observations.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rostra.rehearse.local_run",
            server.url,
            space_id,
            "--users",
            f"LlHlsListener={LL_LISTENERS}",
            "--seconds",
            str(LL_RUN_S),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = done.stdout.decode(errors="replace")[-3000:]
    assert done.returncode == 0, output
    total = Observations.from_json(json.loads(out.read_text())).total()

    assert total.generator_errors == {}, output
    assert total.server_errors == {}
    assert total.joins == {"admitted": LL_LISTENERS}
    assert total.ttfa.count == LL_LISTENERS
    assert total.ttfa.max_s < 3.0
    assert total.stalls == 0
    assert total.latency.count > 0
    assert total.latency.max_s < 2.0  # PART-HOLD-BACK (0.768 s) and a part's making
    assert total.media == {}  # no failed fetch, no part skipped
    parts = total.transfer["part:count"]
    # each part once: what was fetched is what was played, and at most the hold-back and the
    # part just come still buffered
    buffered_s = LL_LISTENERS * 4 * PART_S + 0.1
    assert total.played_s <= parts * PART_S <= total.played_s + buffered_s
    assert total.played_s > LL_LISTENERS * (LL_RUN_S - 4)
    # one blocking reload per part, but the first, plain, read brings the hold-back's three
    # (a listener stopped between a reload and its part is one off)
    reloads = total.transfer["playlist:count"]
    assert abs(reloads - (parts - 2 * LL_LISTENERS)) <= LL_LISTENERS, (reloads, parts)
