"""Plain players on Icecast: `rostra serve --icecast` feeds a live space's program to a real
Icecast 2.4 as `/ID.aac` and `/ID.opus`; ffmpeg hears the speaker's tone on both mounts, the space
JSON names them, a player on a mount joins `stream_listeners`, after Icecast restarts the feed
comes back by itself, and when the space ends the mounts go."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rostra.audience.icecast_count import POLL_TIMEOUT_S, IcecastCount, combine, parse_status
from rostra.config import load_settings, parse_icecast_url
from rostra.media.codecs import AAC_BITRATE_BPS
from tests.audio_check import SAMPLE_RATE_HZ, Audio, decode
from tests.conftest import ROOT, Server, start_server, stop_server
from tests.icecast_server import HostileIcecast, IcecastServer, running_icecast
from tests.whip_client import publish

TONE_HZ = 440.0
MOUNTS_TIMEOUT_S = 20.0
# the feeder's backoff starts at 1 s and doubles: 1 + 2 + 4 s of retries, with some slack
RETURN_TIMEOUT_S = 12.0
COUNT_TIMEOUT_S = 12.0
END_TIMEOUT_S = 10.0
# burst 0 (docs/relays.md): a new player's first second holds about a second of audio, where
# Icecast's default burst (64 KiB) would give it four
MAX_FIRST_SECOND_AUDIO_S = 2.0


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


async def _play(mount: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain player on a mount, past Icecast's answer head (a socket: it stays connected while
    the test reads at its own pace)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {mount} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")), head[:100]
    return reader, writer


async def _audio_in_first_second(reader: asyncio.StreamReader, bitrate_bps: int) -> float:
    received = 0
    deadline = time.monotonic() + 1.0
    with contextlib.suppress(TimeoutError):
        while (left_s := deadline - time.monotonic()) > 0:
            received += len(await asyncio.wait_for(reader.read(65536), left_s))
    return received * 8 / bitrate_bps


def _token(url: str) -> str:
    return url.split("invite=")[1]


async def test_icecast_mounts_carry_the_program_count_their_players_and_return_after_a_restart(
    tmp_path: Path, record_property: Any
) -> None:
    # two relays that never give a readable status: the master's players are counted all the same
    with running_icecast() as icecast, HostileIcecast() as hostile:
        relays = f"{hostile.url}/slow,{hostile.url}/deep"
        server: Server = start_server(
            tmp_path / "data",
            extra_env={"ROSTRA_ICECAST": icecast.source_url, "ROSTRA_ICECAST_RELAYS": relays},
        )
        try:
            # a title that is no ASCII header value: it reaches Icecast folded, not as raw text
            space: dict[str, Any] = server.create_space("Ça va \U0001f399")
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
                status = await asyncio.to_thread(httpx.get, f"{icecast.url}/status-json.xsl")
                sources = status.json()["icestats"]["source"]
                assert {source["server_name"] for source in sources} == {"Ca va ?"}, sources
                await _hears_tone(space["relay_stream_url"])
                await _hears_tone(space["relay_opus_stream_url"])

                # the feeder is no player: with nobody on the mounts, nobody is counted
                state_url = f"{server.url}/live/{sid}/state.json"
                async with httpx.AsyncClient(timeout=10) as client:
                    assert await _stream_listeners(client, state_url, 0) == 0
                    reader, player = await _play(f"/{sid}.aac", icecast.port)
                    try:
                        first_s = await _audio_in_first_second(reader, AAC_BITRATE_BPS)
                        record_property("relay_aac_first_second_audio_s", round(first_s, 2))
                        assert first_s < MAX_FIRST_SECOND_AUDIO_S, f"{first_s:.1f} s at once"
                        assert await _stream_listeners(client, state_url, 1) == 1
                    finally:
                        player.close()
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
    # figures that are no count are skipped, not summed: true, a float, a negative, a huge one
    odd = [True, 2.5, -1, 10**30, "7"]
    sources = [{"listenurl": f"http://m/{i}.aac", "listeners": n} for i, n in enumerate(odd)]
    body = json.dumps({"icestats": {"source": [*sources, {"listenurl": "http://m/ok.aac"}]}})
    assert parse_status(body.encode()) == {"/ok.aac": 0}


def test_relay_urls_use_the_public_base_when_one_is_set() -> None:
    source = "icecast://source:p%40ss@10.0.0.5:8000"
    assert load_settings({"icecast": source}, environ={}).icecast_base_url == "http://10.0.0.5:8000"
    public = load_settings(
        {"icecast": source}, environ={"ROSTRA_ICECAST_PUBLIC_URL": "https://radio.example.org/"}
    )
    assert public.icecast_base_url == "https://radio.example.org"
    assert parse_icecast_url(source).password == "p@ss"
    assert load_settings({}, environ={}).icecast_base_url == ""


async def test_a_hostile_status_counts_nothing_and_holds_no_poll_back() -> None:
    status = b'{"icestats":{"source":{"listenurl":"http://x:8000/abc.aac","listeners":3}}}'
    with HostileIcecast(good_status=status) as hostile:
        hostile_urls = [f"{hostile.url}/{name}" for name in ("deep", "huge", "slow")]
        count = IcecastCount(f"{hostile.url}/good", [*hostile_urls, f"{hostile.url}/good"])
        async with httpx.AsyncClient(timeout=POLL_TIMEOUT_S) as client:
            started = time.monotonic()
            await count.poll(client)
            took_s = time.monotonic() - started
    # the master's 3 and the good relay's 3 less its own connection; nothing from the others
    assert count.listeners("abc") == 5
    assert took_s < POLL_TIMEOUT_S + 1.0, f"one poll took {took_s:.1f} s"
    assert sorted(url for url, down in count._is_down.items() if down) == sorted(
        url + "/status-json.xsl" for url in hostile_urls
    )


async def test_an_icecast_answering_a_source_with_an_endless_head_is_retried(
    tmp_path: Path,
) -> None:
    with HostileIcecast() as hostile:
        source_url = f"icecast://source:secret@127.0.0.1:{hostile.port}"
        server = start_server(tmp_path / "data", extra_env={"ROSTRA_ICECAST": source_url})
        try:
            space: dict[str, Any] = server.create_space("Refused")
            pc, answer = await publish(
                f"{server.whip_base}/whip/{space['id']}", _token(space["speaker_invite_url"])
            )
            assert answer.status_code == 201, answer.text
            try:
                # each of the two mounts tried, refused, and tried again
                deadline = time.monotonic() + RETURN_TIMEOUT_S
                while hostile.sources < 4:
                    assert time.monotonic() < deadline, f"{hostile.sources} source attempts"
                    await asyncio.sleep(0.2)
            finally:
                await pc.close()
            assert "icecast feed interrupted" in server.log()
            assert "Traceback" not in server.log()
        finally:
            stop_server(server)
