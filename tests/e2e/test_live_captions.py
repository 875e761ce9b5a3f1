"""Live captions end to end: a speaker bot speaks known espeak-ng text over WHIP; the words come
back in /live/{id}/captions.vtt and in the WebVTT subtitles rendition that the multivariant
playlist lists, within a bounded delay, on the audio's timeline; the recognizer process, killed,
is restarted and captions go on; the replay keeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import time
import wave
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from rostra.media.codecs import SEGMENT_DURATION_S
from rostra.media.hls.playlist import read_media_playlist
from rostra.media.ice import restrict_ice_host_addresses
from rostra.rehearse.speaker import PcmTrack
from tests.conftest import Server, make_speech, start_server, stop_server

FIRST_TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well."
)
SECOND_TEXT = "The juice of lemons makes fine punch. The box was thrown beside the parked truck."
RECOGNIZER = "rostra.media.captions.recognizer"
# measured offline on this text: 0.15 (bench/captions.py); live about 0.2, but the recognizer
# runs at a low priority and drops audio when a loaded machine leaves it behind
MAX_WORD_ERROR_RATE = 0.5
# the last words are captioned this long after they were spoken, at most
MAX_WALL_DELAY_S = 10.0
# a cue starts this close to the program time of its words (the speaker's connection setup,
# the jitter buffer and the segmenter's lead-in lie between)
MAX_CUE_OFFSET_S = 2.5
POLL_S = 0.25
WAIT_AFTER_SPEECH_S = 15.0
TIMESTAMP_MAP_RE = re.compile(r"^X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:(\d\d):(\d\d):(\d\d)\.(\d{3})$")
CUE_RE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """Levenshtein distance over words, divided by the reference's length."""
    row = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hypothesis, 1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word)),
            )
    return row[-1] / len(reference)


def seconds(parts: tuple[str, ...]) -> float:
    hours, minutes, secs, ms = (int(part) for part in parts)
    return hours * 3600 + minutes * 60 + secs + ms / 1000


def cues(document: str) -> list[tuple[float, float, str]]:
    found = []
    lines = document.splitlines()
    for index, line in enumerate(lines):
        match = CUE_RE.match(line)
        if match:
            groups = match.groups()
            found.append((seconds(groups[:4]), seconds(groups[4:]), lines[index + 1]))
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("captions") / "data", extra_env={"ROSTRA_CAPTIONS": "1"}
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def space(server: Server) -> dict[str, Any]:
    return server.create_space("Captioned")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    directory = tmp_path_factory.mktemp("speech")
    found = {}
    for name, text in (("first", FIRST_TEXT), ("second", SECOND_TEXT)):
        with wave.open(str(make_speech(directory, name, text, voice="en-us"))) as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32)
        found[name] = (pcm * (0.5 / np.max(np.abs(pcm)))).astype(np.float32)
    return found


@contextlib.contextmanager
def ahead_of_other_work() -> Iterator[None]:
    """This thread (the speaker bot's event loop) at niceness -5 where allowed, as the benches
    run their clients: a loaded machine then starves the server, not the source it is fed."""
    thread = threading.get_native_id()
    niceness = os.getpriority(os.PRIO_PROCESS, thread)
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, thread, niceness - 5)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, thread, niceness)


async def speak(server: Server, space: dict[str, Any], pcm: np.ndarray) -> float:
    """Publish `pcm` as a speaker, hold the seat until it has been said; when it was posted."""
    restrict_ice_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = PcmTrack(pcm, then_silence_s=1.0)
    pc.addTransceiver(track, direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    token = space["speaker_invite_url"].split("invite=")[1]
    async with httpx.AsyncClient(timeout=30) as client:
        posted_at = time.time()
        answer = await client.post(
            f"{server.whip_base}/whip/{space['id']}",
            content=pc.localDescription.sdp.encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 201, answer.text
    try:
        await pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
        await asyncio.sleep(track.duration_s + 0.5)
    finally:
        await pc.close()
    return posted_at


def captioned_words(
    server: Server, space: dict[str, Any], expected: list[str], *, since_s: float
) -> tuple[list[tuple[float, float, str]], float]:
    """Poll the live document until the last expected word is there (or time is up): the cues
    after `since_s` of media time, and the wall time the document last gained words."""
    deadline = time.monotonic() + WAIT_AFTER_SPEECH_S
    found: list[tuple[float, float, str]] = []
    gained_at = time.time()
    while time.monotonic() < deadline:
        response = httpx.get(f"{server.url}/live/{space['id']}/captions.vtt", timeout=5)
        assert response.status_code == 200, response.text
        now = [cue for cue in cues(response.text) if cue[0] >= since_s]
        if len(now) > len(found):
            found, gained_at = now, time.time()
        if found and words(found[-1][2])[-1:] == expected[-1:]:
            break
        time.sleep(POLL_S)
    return found, gained_at


def recognizer_pid(server: Server) -> int | None:
    """The recognizer process under this server's origin (a child of a child of `rostra serve`)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if RECOGNIZER not in cmdline:
                continue
            parent = int(status.read_text().split("PPid:\t")[1].split("\n")[0])
            grandparent = Path(f"/proc/{parent}/status").read_text()
        except OSError:
            continue  # gone meanwhile
        if f"PPid:\t{server.process.pid}\n" in grandparent:
            return int(status.parent.name)
    return None


def program_date_time(server: Server, space: dict[str, Any], media_s: float) -> datetime:
    """The wall clock of `media_s` on the program's timeline, from the subtitles playlist's
    date-times (those of the audio segments)."""
    text = httpx.get(f"{server.url}/live/{space['id']}/captions.m3u8", timeout=5).text
    segment = read_media_playlist(text).segments[0]
    assert segment.program_date_time is not None
    offset_s = media_s - segment.sequence_number * SEGMENT_DURATION_S
    return segment.program_date_time + timedelta(seconds=offset_s)


def test_spoken_words_are_captioned_on_the_audio_timeline_within_a_bounded_delay(
    server: Server, space: dict[str, Any], speech: dict[str, np.ndarray], record_property: Any
) -> None:
    master = httpx.get(f"{server.url}/live/{space['id']}/index.m3u8", timeout=5).text
    assert (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",'
        'AUTOSELECT=YES,DEFAULT=NO,URI="captions.m3u8"'
    ) in master
    assert master.count('SUBTITLES="subs"') == master.count("#EXT-X-STREAM-INF")

    expected = words(FIRST_TEXT)
    with ahead_of_other_work():
        posted_at = asyncio.run(speak(server, space, speech["first"]))
    spoken_until = time.time() - 1.5  # the track's trailing silence and the hold
    found, gained_at = captioned_words(server, space, expected, since_s=0.0)
    assert found, "no captions"
    first_cue_at = program_date_time(server, space, found[0][0]).timestamp()
    record_property("first_cue_after_post_s", round(first_cue_at - posted_at, 2))
    assert -0.5 <= first_cue_at - posted_at <= MAX_CUE_OFFSET_S

    error_rate = word_error_rate(expected, words(" ".join(cue[2] for cue in found)))
    record_property("word_error_rate", round(error_rate, 3))
    record_property("wall_delay_s", round(gained_at - spoken_until, 2))
    assert error_rate <= MAX_WORD_ERROR_RATE, found
    assert gained_at - spoken_until <= MAX_WALL_DELAY_S

    # the same words in the subtitles rendition, each segment mapped to the audio's timeline
    playlist = read_media_playlist(
        httpx.get(f"{server.url}/live/{space['id']}/captions.m3u8", timeout=5).text
    )
    segment_lines: set[tuple[float, float, str]] = set()
    for segment in playlist.segments:
        response = httpx.get(f"{server.url}/live/{space['id']}/{segment.uri}", timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/vtt")
        header = response.text.splitlines()[1]
        match = TIMESTAMP_MAP_RE.match(header)
        assert match, header
        local_s = seconds(match.groups()[1:])
        assert local_s == pytest.approx(segment.sequence_number * SEGMENT_DURATION_S, abs=1e-3)
        assert int(match.group(1)) == round(local_s * 90_000)
        segment_lines |= set(cues(response.text))
    # each segment holds the document's cues that overlap it (the window has slid on: its span)
    span_start_s = playlist.segments[0].sequence_number * SEGMENT_DURATION_S
    span_end_s = (playlist.segments[-1].sequence_number + 1) * SEGMENT_DURATION_S
    document = cues(httpx.get(f"{server.url}/live/{space['id']}/captions.vtt", timeout=5).text)
    overlapping = {cue for cue in document if cue[0] < span_end_s and cue[1] > span_start_s}
    assert overlapping, "the subtitles playlist's window holds none of the words"
    assert segment_lines == overlapping


def test_killed_recognizer_is_restarted_and_the_replay_keeps_the_captions(
    server: Server, space: dict[str, Any], speech: dict[str, np.ndarray]
) -> None:
    pid = recognizer_pid(server)
    assert pid is not None, "no recognizer process under the origin"
    os.kill(pid, signal.SIGKILL)
    before = cues(httpx.get(f"{server.url}/live/{space['id']}/captions.vtt", timeout=5).text)
    since_s = before[-1][1] if before else 0.0

    time.sleep(3.0)  # the restart's backoff
    expected = words(SECOND_TEXT)
    with ahead_of_other_work():
        asyncio.run(speak(server, space, speech["second"]))
    found, _ = captioned_words(server, space, expected, since_s=since_s)
    assert word_error_rate(expected, words(" ".join(cue[2] for cue in found))) <= 0.5, found
    restarted = recognizer_pid(server)
    assert restarted is not None
    assert restarted != pid

    live = cues(httpx.get(f"{server.url}/live/{space['id']}/captions.vtt", timeout=5).text)
    ended = server.api("POST", f"/api/v1/spaces/{space['id']}/end")
    assert ended.status_code == 200, ended.text
    replay = httpx.get(f"{server.url}/replay/{space['id']}/captions.vtt", timeout=10)
    assert replay.status_code == 200, replay.text
    assert replay.headers["content-type"].startswith("text/vtt")
    # every cue of both speeches, timed from the replay's start: the recording's first segment
    # is the program's first, so the times are the live ones
    replayed = cues(replay.text)
    assert replayed[: len(live)] == live
    assert {cue[2] for cue in found} <= {cue[2] for cue in replayed}
