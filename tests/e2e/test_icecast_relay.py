"""Plain players on Icecast: `rostra serve --icecast` feeds a live space's program to a real
Icecast 2.4 as `/ID.aac` and `/ID.opus`; ffmpeg hears the speaker's tone on both mounts, the space
JSON names them, a player on a mount joins `stream_listeners`, after Icecast restarts the feed
comes back by itself, and when the space ends the mounts go."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rostra.audience.icecast_count import IcecastCount, combine, parse_status
from rostra.config import load_settings, parse_icecast_url
from tests.audio_check import SAMPLE_RATE_HZ, Audio, decode
from tests.conftest import ROOT, Server, start_server, stop_server
from tests.icecast_server import IcecastServer, running_icecast
from tests.whip_client import publish

TONE_HZ = 440.0
MOUNTS_TIMEOUT_S = 20.0
# the feeder's backoff starts at 1 s and doubles: 1 + 2 + 4 s of retries, with some slack
RETURN_TIMEOUT_S = 12.0
COUNT_TIMEOUT_S = 12.0
END_TIMEOUT_S = 10.0


def _dominant_hz(audio: Audio) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE_HZ)[int(np.argmax(spectrum))])


async def _hears_tone(url: str) -> None:
    audio = await asyncio.to_thread(decode, url, seconds=3.0, timeout_s=20)
    assert len(audio) > SAMPLE_RATE_HZ, f"{url}: {len(audio)} samples"
    assert abs(_dominant_hz(audio[SAMPLE_RATE_HZ // 2 :]) - TONE_HZ) < 10, url


async def _wait_mounts(icecast: IcecastServer, mounts: set[str], timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        found = await asyncio.to_thread(icecast.status)
        if mounts <= set(found):
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"mounts {mounts} not on {icecast.url}: {icecast.log()}")


async def _wait_no_mounts(icecast: IcecastServer, mounts: set[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while mounts & set(await asyncio.to_thread(icecast.status)):
        assert time.monotonic() < deadline, f"mounts {mounts} still fed after the end"
        await asyncio.sleep(0.2)


async def _stream_listeners(client: httpx.AsyncClient, state_url: str, want: int) -> int:
    deadline = time.monotonic() + COUNT_TIMEOUT_S
    seen = -1
    while time.monotonic() < deadline:
        seen = (await client.get(state_url)).json()["stream_listeners"]
        if seen == want:
            return seen
        await asyncio.sleep(0.5)
    return seen


def _token(url: str) -> str:
    return url.split("invite=")[1]


async def test_icecast_mounts_carry_the_program_count_their_players_and_return_after_a_restart(
    tmp_path: Path, record_property: Any
) -> None:
    with running_icecast() as icecast:
        server: Server = start_server(
            tmp_path / "data", extra_env={"ROSTRA_ICECAST": icecast.source_url}
        )
        try:
            space: dict[str, Any] = server.create_space("On the relay")
            sid = space["id"]
            assert space["relay_stream_url"] == f"{icecast.url}/{sid}.aac"
            assert space["relay_opus_stream_url"] == f"{icecast.url}/{sid}.opus"
            listed = server.api("GET", f"/api/v1/spaces/{sid}").json()
            assert listed["relay_opus_stream_url"] == space["relay_opus_stream_url"]

            pc, answer = await publish(
                f"{server.whip_base}/whip/{sid}", _token(space["speaker_invite_url"])
            )
            assert answer.status_code == 201, answer.text
            mounts = {f"/{sid}.aac", f"/{sid}.opus"}
            try:
                await _wait_mounts(icecast, mounts, MOUNTS_TIMEOUT_S)
                await _hears_tone(space["relay_stream_url"])
                await _hears_tone(space["relay_opus_stream_url"])

                # the feeder is no player: with nobody on the mounts, nobody is counted
                state_url = f"{server.url}/live/{sid}/state.json"
                async with httpx.AsyncClient(timeout=10) as client:
                    assert await _stream_listeners(client, state_url, 0) == 0
                    async with client.stream("GET", space["relay_stream_url"]) as player:
                        assert player.status_code == 200
                        assert await _stream_listeners(client, state_url, 1) == 1
                    assert await _stream_listeners(client, state_url, 0) == 0

                icecast.stop()
                icecast.start()
                returned_s = await _wait_mounts(icecast, mounts, RETURN_TIMEOUT_S)
                await _hears_tone(space["relay_stream_url"])
                record_property("feed_back_after_restart_s", round(returned_s, 1))

                # the space ends: its feeds stop and Icecast drops the mounts
                assert server.api("POST", f"/api/v1/spaces/{sid}/end").status_code == 200
                await _wait_no_mounts(icecast, mounts, END_TIMEOUT_S)
                deadline = time.monotonic() + END_TIMEOUT_S
                while f'"icecast feed ended", "space": "{sid}"' not in server.log():
                    assert time.monotonic() < deadline, "the feeder still feeds an ended space"
                    await asyncio.sleep(0.2)
            finally:
                await pc.close()
        finally:
            stop_server(server)


def test_serve_refuses_an_icecast_url_that_names_a_mount(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rostra", "serve", "--data", str(tmp_path), "--icecast",
         "icecast://source:secret@127.0.0.1:8000/live.aac"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "names a server, not a mount" in result.stderr, result.stderr


def test_relay_players_are_counted_once_and_a_bad_status_counts_nothing() -> None:
    master = parse_status(
        b'{"icestats":{"source":[{"listenurl":"http://m:8000/abc.aac","listeners":3},'
        b'{"listenurl":"http://m:8000/abc.opus","listeners":1}]}}'
    )
    # Icecast 2.4 writes one source as an object, not a list
    relay = parse_status(
        b'{"icestats":{"source":{"listenurl":"http://r:8000/abc.aac","listeners":40}}}'
    )
    assert combine(master, [relay]) == {"/abc.aac": 42, "/abc.opus": 1}
    count = IcecastCount("http://m:8000")
    count._counts = combine(master, [relay])
    assert count.listeners("abc") == 43
    assert count.listeners("other") == 0
    # the status Icecast 2.4.4 writes for a moment after it starts
    with pytest.raises(json.JSONDecodeError):
        parse_status(b'{"icestats":"server_start":"Sun, 29 Nov 2026","dummy":null}}')
    assert parse_status(b'{"icestats":{"server_id":"Icecast 2.4.4"}}') == {}


def test_relay_urls_use_the_public_base_when_one_is_set() -> None:
    source = "icecast://source:p%40ss@10.0.0.5:8000"
    assert load_settings({"icecast": source}, environ={}).icecast_base_url == "http://10.0.0.5:8000"
    public = load_settings(
        {"icecast": source}, environ={"ROSTRA_ICECAST_PUBLIC_URL": "https://radio.example.org/"}
    )
    assert public.icecast_base_url == "https://radio.example.org"
    assert parse_icecast_url(source).password == "p@ss"
    assert load_settings({}, environ={}).icecast_base_url == ""
