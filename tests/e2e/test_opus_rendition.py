"""The Opus rendition of the live HLS end to end: a real `rostra serve`, a real aiortc speaker
(`rostra speak`) saying known words, and a client that reads opus.m3u8, its init segment, its
segments and parts, decodes them with PyAV and hears the words; both renditions share media
sequence numbers and start within one 20 ms frame; a blocking reload waits for the next part;
a restart continues the Opus playlist as it does the AAC one."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import httpx
import numpy as np

from tests.audio_check import SAMPLE_RATE_HZ, Audio, decode, speech_correlation
from tests.conftest import Server, make_speech, padded, start_server, stop_server

SPEECH = "Seven silver swans swim silently across the frozen lake at midnight."
CONTROL = "Nobody ever said these words into the space, so nobody should hear them."
MIN_CORRELATION = 0.5
CONTROL_RATIO = 5.0
OPUS_FRAME_SAMPLES = 960
SEGMENT_SAMPLES = 49_152
COLLECT_LIMIT_S = 40.0
POLL_S = 0.4


def _tfdt(data: bytes) -> int:
    index = data.index(b"tfdt")
    return int.from_bytes(data[index + 8 : index + 16], "big")


def _segments(playlist: str) -> dict[int, tuple[str, float]]:
    """Sequence number → (URI, EXTINF) of each whole segment a media playlist lists."""
    match = re.search(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)$", playlist, re.M)
    assert match, playlist
    sequence = int(match.group(1))
    found = {}
    for duration, uri in re.findall(r"^#EXTINF:([\d.]+),\n(.+)$", playlist, re.M):
        found[sequence] = (uri, float(duration))
        sequence += 1
    return found


def _decode(data: bytes) -> Audio:
    with av.open(io.BytesIO(data), format="mp4") as container:
        assert container.streams.audio[0].codec_context.name == "opus"
        chunks = [frame.to_ndarray()[0] for frame in container.decode(audio=0)]
    return np.concatenate(chunks).astype(np.float32)


def _speak(invite_url: str, wav: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rostra", "speak", invite_url, "--file", str(wav), "--name", "Eve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_opus_rendition_carries_the_speech_aligned_with_aac_and_blocks_for_the_next_part(
    server: Server, tmp_path: Path
) -> None:
    speech = make_speech(tmp_path, "speech", SPEECH)
    control = make_speech(tmp_path, "control", CONTROL, voice="en-gb")
    space = server.create_space("Opus rendition")
    live = f"{server.url}/live/{space['id']}"
    client = httpx.Client(timeout=10)

    # the multivariant playlist offers both renditions
    master = client.get(f"{live}/index.m3u8").text
    assert 'CODECS="mp4a.40.2"\naudio.m3u8\n' in master
    assert 'CODECS="opus"\nopus.m3u8\n' in master

    bot = _speak(space["speaker_invite_url"], padded(speech, before_s=1.0, after_s=2.0))
    opus: dict[int, bytes] = {}
    aac: dict[int, bytes] = {}
    durations: dict[int, float] = {}
    parts_seen: set[str] = set()
    deadline = time.monotonic() + COLLECT_LIMIT_S
    done_at: float | None = None
    while time.monotonic() < deadline:
        if done_at is None and bot.poll() is not None:
            done_at = time.monotonic()
        if done_at is not None and time.monotonic() > done_at + 2.5:
            break
        opus_playlist = client.get(f"{live}/opus.m3u8")
        aac_playlist = client.get(f"{live}/audio.m3u8")
        if opus_playlist.status_code != 200 or aac_playlist.status_code != 200:
            time.sleep(POLL_S)
            continue
        assert opus_playlist.headers["cache-control"] == aac_playlist.headers["cache-control"]
        for sequence, (uri, duration) in _segments(opus_playlist.text).items():
            if sequence not in opus:
                opus[sequence] = client.get(f"{live}/{uri}").content
                durations[sequence] = duration
        for sequence, (uri, _) in _segments(aac_playlist.text).items():
            if sequence not in aac:
                aac[sequence] = client.get(f"{live}/{uri}").content
        parts_seen |= set(re.findall(r'URI="(opus_part_\d{6}\.\d\.m4s)"', opus_playlist.text))
        time.sleep(POLL_S)
    _, err = bot.communicate(timeout=30)
    assert bot.returncode == 0, err.decode()[-1000:]

    # the same media sequence numbers, each Opus segment starting within a frame after the AAC
    common = sorted(set(opus) & set(aac))
    assert len(common) >= 8, (sorted(opus), sorted(aac))
    for sequence in common:
        lead = _tfdt(opus[sequence]) - _tfdt(aac[sequence])
        assert 0 <= lead < OPUS_FRAME_SAMPLES, (sequence, lead)
        assert _tfdt(aac[sequence]) == sequence * SEGMENT_SAMPLES
    assert set(durations.values()) <= {1.02, 1.04}, durations

    # RFC 8216 §4.3.4.2: BANDWIDTH is at least every segment's bit rate (the speech and the
    # silence around it; the segment in flight at the start left out)
    declared = {
        codecs: int(bandwidth)
        for bandwidth, codecs in re.findall(r"BANDWIDTH=(\d+),.*CODECS=\"([^\"]+)\"", master)
    }
    for codecs, segments, seconds in (
        ("opus", opus, durations),
        ("mp4a.40.2", aac, dict.fromkeys(aac, SEGMENT_SAMPLES / SAMPLE_RATE_HZ)),
    ):
        rates = [len(segments[s]) * 8 / seconds[s] for s in common[1:]]
        assert max(rates) <= declared[codecs], (codecs, rates)

    # the words are in the Opus segments, and other words are not
    init = client.get(f"{live}/opus_init.mp4")
    assert init.status_code == 200
    assert init.headers["content-type"] == "audio/mp4"
    assert "immutable" in init.headers["cache-control"]
    run = [s for s in sorted(opus) if all(n in opus for n in range(common[0], s + 1))]
    heard = _decode(init.content + b"".join(opus[s] for s in run))
    assert heard.size >= (len(run) - 1) * SEGMENT_SAMPLES
    wanted = speech_correlation(heard, decode(speech))
    unsent = speech_correlation(heard, decode(control))
    assert wanted >= MIN_CORRELATION, f"correlation {wanted:.2f} < {MIN_CORRELATION}"
    assert wanted >= CONTROL_RATIO * unsent, f"{wanted:.2f} is not 5x the control's {unsent:.2f}"

    # parts: a listed segment's four parts decode, after the init segment, to the segment
    last = _segments(client.get(f"{live}/opus.m3u8").text)
    with_parts = [s for s in sorted(last) if f"opus_part_{s:06d}.3.m4s" in parts_seen]
    assert with_parts, parts_seen
    sequence = with_parts[-1]
    parts = [client.get(f"{live}/opus_part_{sequence:06d}.{k}.m4s") for k in range(4)]
    assert all(part.status_code == 200 for part in parts), [p.status_code for p in parts]
    assert _tfdt(parts[0].content) == _tfdt(client.get(f"{live}/{last[sequence][0]}").content)
    samples = sum(_decode(init.content + part.content).size for part in parts)
    # each decode starts afresh, skipping the 312 samples of pre-skip
    assert samples == round(last[sequence][1] * SAMPLE_RATE_HZ) - 4 * 312

    # a blocking reload for the part after the last listed one answers once it exists
    text = client.get(f"{live}/opus.m3u8").text
    hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="opus_part_(\d{6})\.(\d)\.m4s"', text)
    assert hint, text
    msn, part = int(hint.group(1)), int(hint.group(2))
    started = time.monotonic()
    blocked = client.get(f"{live}/opus.m3u8", params={"_HLS_msn": msn, "_HLS_part": part})
    waited_s = time.monotonic() - started
    assert blocked.status_code == 200, blocked.text
    assert f'URI="opus_part_{msn:06d}.{part}.m4s"' in blocked.text
    assert waited_s < 1.0, f"waited {waited_s:.2f} s for a 0.26 s part"
    assert blocked.headers["cache-control"] == "public, max-age=6"
    # the part a preload hint names is answered once it is made (RFC 8216bis §6.2.6)
    hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="(opus_part_\d{6}\.\d\.m4s)"', blocked.text)
    assert hint, blocked.text
    hinted = client.get(f"{live}/{hint.group(1)}")
    assert hinted.status_code == 200, hinted.text
    assert _decode(init.content + hinted.content).size > 0
    too_far = client.get(f"{live}/opus.m3u8", params={"_HLS_msn": msn + 5})
    assert too_far.status_code == 400, too_far.text
    client.close()


def test_opus_playlist_continues_after_a_restart_in_step_with_the_aac_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    space = server.create_space("Opus across a restart")
    live = f"/live/{space['id']}"
    before = _wait_for(server.url + live + "/opus.m3u8", lambda text: text.count("#EXTINF") >= 3)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    media = data / "spaces" / space["id"]
    assert "#EXT-X-ENDLIST" not in (media / "opus.m3u8").read_text()

    again = start_server(data, port=int(server.url.rsplit(":", 1)[1]), whip_port=server.whip_port)
    try:
        continued = _wait_for(
            again.url + live + "/opus.m3u8",
            lambda text: (
                "#EXT-X-DISCONTINUITY\n" in text
                and text.split("#EXT-X-DISCONTINUITY\n", 1)[1].count("#EXTINF") >= 2
            ),
        )
        # the window of the first run is still listed, before the discontinuity
        first_run = set(_segments(before))
        assert first_run & set(_segments(continued)), (before, continued)
        aac = httpx.get(again.url + live + "/audio.m3u8").text
        opus_now, aac_now = _segments(continued), _segments(aac)
        shared = sorted(set(opus_now) & set(aac_now))
        assert len(shared) >= 3, (continued, aac)
        # after the restart both renditions still name each segment with the same number
        for sequence in shared[-2:]:
            opus_start = _tfdt(httpx.get(f"{again.url}{live}/{opus_now[sequence][0]}").content)
            aac_start = _tfdt(httpx.get(f"{again.url}{live}/{aac_now[sequence][0]}").content)
            assert 0 <= opus_start - aac_start < OPUS_FRAME_SAMPLES, sequence
    finally:
        stop_server(again)


def _wait_for(url: str, condition: Callable[[str], bool], timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(url)
        if response.status_code == 200 and condition(response.text):
            return response.text
        time.sleep(0.2)
    raise AssertionError(f"{url} never reached the state waited for")
