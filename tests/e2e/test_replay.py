"""After the end: the recording replays as seekable VOD HLS and downloads as one file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import numpy as np

from tests.audio_check import SAMPLE_RATE_HZ, decode, speech_correlation
from tests.conftest import Server, make_speech, padded

SEGMENT_S = 1.024
TEXT = "Replay me later, exactly as I said it, with every word in its place."


def seek_and_decode(url: str, seek_s: float, *, seconds: float) -> tuple[float, np.ndarray]:
    """Seek like a player (PyAV's HLS demuxer), then decode: where it landed, and the audio."""
    chunks = []
    landed_s = -1.0
    with av.open(url) as container:
        container.seek(int(seek_s * av.time_base))
        for frame in container.decode(audio=0):
            if landed_s < 0:
                landed_s = float(frame.pts * frame.time_base)
            chunks.append(frame.to_ndarray().reshape(-1))
            if sum(c.size for c in chunks) >= seconds * SAMPLE_RATE_HZ:
                break
    return landed_s, np.concatenate(chunks).astype(np.float32)


def extinf_total(playlist: str) -> float:
    return sum(
        float(line.split(":")[1].rstrip(","))
        for line in playlist.splitlines()
        if line.startswith("#EXTINF:")
    )


def test_replay_after_end_matches_the_broadcast_decodes_and_seeks(
    server: Server, tmp_path: Path
) -> None:
    speech = make_speech(tmp_path, "replay", TEXT)
    space = server.create_space("Replay")
    went_live = time.monotonic()
    assert httpx.get(space["replay_url"]).status_code == 409
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rostra",
            "speak",
            space["speaker_invite_url"],
            "--file",
            str(speech),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ended = server.api("POST", f"/api/v1/spaces/{space['id']}/end")
    on_air_s = time.monotonic() - went_live
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ended"

    playlist = httpx.get(space["replay_url"])
    assert playlist.status_code == 200, playlist.text
    assert "#EXT-X-ENDLIST" in playlist.text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist.text
    duration_s = extinf_total(playlist.text)
    assert abs(duration_s - on_air_s) <= SEGMENT_S + 0.5, (duration_s, on_air_s)

    whole = decode(space["replay_url"])
    assert abs(whole.size / SAMPLE_RATE_HZ - duration_s) <= SEGMENT_S
    assert speech_correlation(whole, decode(speech)) >= 0.5

    seek_s = 2.5
    landed_s, part = seek_and_decode(space["replay_url"], seek_s, seconds=0.5)
    assert abs(landed_s - seek_s) <= SEGMENT_S, landed_s
    start = int(landed_s * SAMPLE_RATE_HZ)
    # the first AAC frame after a seek lacks its predecessor's overlap: compare from the second
    settled = 2 * 1024
    # the same audio, sample for sample; a decoder entering mid-stream may still differ in a few
    # samples around a transient (0.16 % once), a wrong seek would differ nearly everywhere
    difference = np.abs(part[settled:] - whole[start + settled : start + part.size])
    assert np.mean(difference > 0.02) <= 0.01, np.mean(difference > 0.02)
    assert difference.max() <= 0.2, difference.max()

    download = httpx.get(space["download_url"])
    deadline = time.monotonic() + 20
    while download.status_code == 503 and time.monotonic() < deadline:
        time.sleep(float(download.headers.get("retry-after", "1")))
        download = httpx.get(space["download_url"])
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "audio/mp4"
    data = download.content
    assert 0 <= data.find(b"moov") < data.find(b"mdat"), "index must come first (seekable)"
    file = tmp_path / "audio.m4a"
    file.write_bytes(data)
    downloaded = decode(file)
    assert abs(downloaded.size - whole.size) <= SAMPLE_RATE_HZ * 0.1
    ranged = httpx.get(space["download_url"], headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert len(ranged.content) == 100

    listen = httpx.get(space["listen_url"])
    assert listen.status_code == 200
    live_playlist = httpx.get(space["hls_url"].replace("index.m3u8", "audio.m3u8"))
    assert "#EXT-X-ENDLIST" in live_playlist.text
    assert np.any(whole)


def test_green_room_speakers_hear_each_other_before_the_program_starts(
    server: Server, tmp_path: Path
) -> None:
    first = make_speech(tmp_path, "green-a", "Are we on air yet? I hope not, we are rehearsing.")
    second = make_speech(
        tmp_path, "green-b", "Not yet, this is the green room, nobody hears us.", voice="en-us+f3"
    )
    space = server.create_space("Green room", live=False)
    assert space["status"] == "scheduled"
    bots = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rostra",
                "speak",
                space["speaker_invite_url"],
                "--file",
                str(padded(wav)),
                "--record-return",
                str(tmp_path / f"ret-{i}.wav"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i, wav in enumerate((first, second))
    ]
    time.sleep(3)
    state = httpx.get(space["state_url"]).json()
    assert state["status"] == "scheduled"
    assert len(state["stage"]) == 2
    assert httpx.get(space["stream_url"]).status_code == 409
    assert httpx.get(space["hls_url"].replace("index.m3u8", "audio.m3u8")).status_code == 409
    for bot in bots:
        _, err = bot.communicate(timeout=60)
        assert bot.returncode == 0, err.decode()[-1000:]
    assert speech_correlation(decode(tmp_path / "ret-0.wav"), decode(second)) >= 0.5
    assert speech_correlation(decode(tmp_path / "ret-1.wav"), decode(first)) >= 0.5
    assert not list((server.data / "spaces" / space["id"]).glob("seg_*.m4s")), "recorded early"

    started = server.api("POST", f"/api/v1/spaces/{space['id']}/start")
    assert started.status_code == 200
    assert started.json()["status"] == "live"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        playlist = httpx.get(space["hls_url"].replace("index.m3u8", "audio.m3u8"))
        if playlist.status_code == 200:
            break
        time.sleep(0.25)
    assert playlist.status_code == 200, playlist.text
