"""Clips through a real `rostra serve` with a real speaker: a listener clips the last seconds of
a live space into an m4a of the recording's own AAC frames, its page plays it in Chromium and
shares its link; bad input, other credentials and a fast clipper are refused precisely; the clip
outlives the space."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from rostra.media.record import INIT_NAME, recorded_segments, segment_name
from tests.conftest import Server, start_server, stop_server
from tests.media.test_clips import ffprobe_fields
from tests.whip_client import publish

CHROMIUM = Path("/usr/bin/chromium")
FRAME_S = 1024 / 48_000
TONE_HZ = 440
# the speaker's tone must fill a 5 s clip ending now: 5 s and a segment in flight
SPEAKING_S = 6.5
PROBLEM_BASE = "https://rostra.dev/problems/"
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("clips") / "data")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def space(server: Server) -> dict[str, Any]:
    body = server.create_space("Clips <& co>")
    assert httpx.post(clips_url(server, body["id"]), json={"duration_s": 5}).status_code == 401
    return body


def clips_url(server: Server, space_id: str) -> str:
    return f"{server.url}/api/v1/spaces/{space_id}/clips"


def join(server: Server, space_id: str) -> str:
    response = httpx.post(f"{server.url}/api/v1/spaces/{space_id}/join")
    assert response.status_code == 201, response.text
    return str(response.json()["ticket"])


def clip(server: Server, space_id: str, token: str, body: Any) -> httpx.Response:
    return httpx.post(
        clips_url(server, space_id),
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def token_of(url: str) -> str:
    return url.split("invite=")[1] if "invite=" in url else url.split("token=")[1]


def recorded_packets(directory: Path) -> list[bytes]:
    """Every AAC frame of the recording, as the segments on disk hold them."""
    joined = (directory / INIT_NAME).read_bytes() + b"".join(
        (directory / segment_name(n)).read_bytes() for n in recorded_segments(directory)
    )
    with av.open(io.BytesIO(joined)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def clip_packets(data: bytes) -> tuple[list[bytes], np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        packets = [bytes(p) for p in container.demux(audio=0) if p.size]
    with av.open(io.BytesIO(data)) as container:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return packets, pcm


def probe(data: bytes, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "probe.m4a"
    path.write_bytes(data)
    return ffprobe_fields(path)


def dominant_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    return float(np.argmax(spectrum) * 48_000 / pcm.size)


def is_run_of(part: list[bytes], whole: list[bytes]) -> bool:
    return any(whole[i : i + len(part)] == part for i in range(len(whole) - len(part) + 1))


@pytest.fixture(scope="module")
def made(server: Server, space: dict[str, Any]) -> dict[str, Any]:
    """A listener's 5 s clip, ending now, of a space where a speaker holds a tone."""

    async def speak_and_clip() -> tuple[str, httpx.Response]:
        pc, answer = await publish(
            f"{server.whip_base}/whip/{space['id']}", token_of(space["speaker_invite_url"])
        )
        assert answer.status_code == 201, answer.text
        try:
            await asyncio.sleep(SPEAKING_S)
            ticket = join(server, space["id"])
            return ticket, clip(server, space["id"], ticket, {"end_s_ago": 0, "duration_s": 5})
        finally:
            await pc.close()

    ticket, response = asyncio.run(speak_and_clip())
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return {"ticket": ticket, **response.json()}


def test_listener_clip_is_the_recordings_own_aac_frames_in_an_m4a(
    server: Server, space: dict[str, Any], made: dict[str, Any], tmp_path: Path
) -> None:
    assert set(made) == {"ticket", "clip_url", "page_url"}
    assert made["clip_url"] == made["page_url"] + ".m4a"
    assert made["page_url"].startswith(f"{server.url}/clips/{space['id']}-")
    response = httpx.get(made["clip_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mp4"
    assert response.headers["cache-control"] == IMMUTABLE
    head = httpx.head(made["clip_url"])
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(response.content)
    assert head.headers["accept-ranges"] == "bytes"
    ranged = httpx.get(made["clip_url"], headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert ranged.content == response.content[:100]

    found = probe(response.content, tmp_path)
    assert found["codec_name"] == "aac"
    assert found["profile"] == "LC"
    assert int(found["sample_rate"]) == 48_000
    assert abs(float(found["duration"]) - 5) <= FRAME_S
    packets, pcm = clip_packets(response.content)
    # not re-encoded: the clip's frames are a run of the recording's, byte for byte
    assert is_run_of(packets, recorded_packets(server.data / "spaces" / space["id"]))
    assert abs(dominant_hz(pcm) - TONE_HZ) < 5
    assert np.sqrt(np.mean(pcm**2)) > 0.01


def test_clip_page_plays_the_clip_and_copies_its_share_link(
    server: Server, made: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    page_html = httpx.get(made["page_url"])
    assert page_html.status_code == 200
    assert "text/html" in page_html.headers["content-type"]
    # the space's title is escaped into the page, never markup
    assert "Clips &lt;&amp; co&gt;" in page_html.text
    assert "<& co>" not in page_html.text
    failed: list[str] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            for width in (1280, 390):
                page = chromium.new_page(viewport={"width": width, "height": 800})
                page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
                page.goto(made["page_url"])
                duration_s = page.evaluate(
                    """() => new Promise((done) => {
                      const a = document.getElementById('clip-player');
                      if (a.readyState >= 1) done(a.duration);
                      a.addEventListener('loadedmetadata', () => done(a.duration));
                    })"""
                )
                assert abs(duration_s - 5) <= FRAME_S
                assert page.input_value("#share-link") == made["page_url"]
                page.click("#copy-share")
                page.locator("#copy-share[data-copied='true']").wait_for(timeout=5_000)
                page.screenshot(path=tmp_path / f"clip-{width}.png", full_page=True)
                # nothing spills sideways on a phone
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.close()
        finally:
            chromium.close()
    assert failed == []


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"duration_s": 4}, "duration_s"),
        ({"duration_s": 61}, "duration_s"),
        ({"duration_s": "5"}, "duration_s"),
        ({"duration_s": True}, "duration_s"),
        ({}, "duration_s"),
        ({"duration_s": 5, "end_s_ago": -1}, "end_s_ago"),
        ({"duration_s": 5, "end_s_ago": 86_401}, "end_s_ago"),
        ({"duration_s": 5, "start": 1}, "start"),
        ([5], "JSON object"),
    ],
)
def test_bad_clip_fields_get_a_precise_422(
    server: Server, space: dict[str, Any], made: dict[str, Any], body: Any, names: str
) -> None:
    response = clip(server, space["id"], join(server, space["id"]), body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert names in response.json()["detail"]


def test_clip_reaching_before_the_recording_says_what_it_holds(
    server: Server, space: dict[str, Any], made: dict[str, Any]
) -> None:
    response = clip(
        server, space["id"], join(server, space["id"]), {"duration_s": 60, "end_s_ago": 3600}
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "clip-outside-recording"
    assert "the recording holds" in problem["detail"]


def test_clip_credentials_other_than_a_ticket_or_the_host_are_refused(
    server: Server, space: dict[str, Any], made: dict[str, Any]
) -> None:
    other = server.create_space("Other", live=False)
    body = {"duration_s": 5}
    cases = [
        (join(server, other["id"]), 403),  # a ticket of another space
        (made["ticket"][:-4] + "AAAA", 401),  # forged
        (token_of(space["speaker_invite_url"]), 403),  # a speaker is not the host
        ("not-a-token", 401),
    ]
    for token, status in cases:
        response = clip(server, space["id"], token, body)
        assert response.status_code == status, (token[:12], response.text)
    assert clip(server, "nosuchspace0", made["ticket"], body).status_code == 404
    # a space that has not gone live has nothing to clip
    host = token_of(other["host_url"])
    response = clip(server, other["id"], host, body)
    assert response.status_code == 409
    assert response.json()["type"] == PROBLEM_BASE + "clip-no-recording"


def test_a_ticket_past_three_clips_a_minute_gets_429_with_retry_after(
    server: Server, space: dict[str, Any], made: dict[str, Any]
) -> None:
    body = {"duration_s": 5, "end_s_ago": 1}
    for _ in range(2):  # the first clip was `made`'s
        assert clip(server, space["id"], made["ticket"], body).status_code == 201
    refused = clip(server, space["id"], made["ticket"], body)
    assert refused.status_code == 429, refused.text
    assert refused.json()["type"] == PROBLEM_BASE + "clip-rate-limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # another listener is not held back by this one
    assert clip(server, space["id"], join(server, space["id"]), body).status_code == 201


def test_clip_attacks_get_a_precise_4xx_and_keep_nothing(
    server: Server, space: dict[str, Any], made: dict[str, Any]
) -> None:
    clips_folder = server.data / "spaces" / space["id"] / "clips"
    kept_before = sorted(p.name for p in clips_folder.iterdir())
    ticket = join(server, space["id"])
    headers = {"Authorization": f"Bearer {ticket}", "Content-Type": "application/json"}
    url = clips_url(server, space["id"])
    for body, status in (
        (b"{" + b'"a":' * 1 + b"[" * 5_000 + b"]" * 5_000 + b"}", 400),  # nested too deep
        (b'{"duration_s": 5, "pad": "' + b"x" * 2_000_000 + b'"}', 413),  # too big
        (b'{"duration_s": 5\x00}', 400),  # a control character: not JSON
        (b'{"duration_s": 1e999}', 422),  # infinity
        (b'{"duration_s": NaN}', 400),
    ):
        response = httpx.post(url, content=body, headers=headers, timeout=30)
        assert response.status_code == status, (body[:30], response.text[:300])
        assert response.headers["content-type"] == "application/problem+json"
    # far past the recording: refused at once, whatever the recording's length
    far = clip(server, space["id"], ticket, {"duration_s": 60, "end_s_ago": 86_400})
    assert far.status_code == 422, far.text
    assert "the recording holds at most" in far.json()["detail"]
    # ids that are not clips, or that climb out of the data folder
    for path in (
        "/clips/..%2F..%2Fsigning_secret.m4a",
        f"/clips/{space['id']}-..%2F..%2F..%2F.m4a",
        f"/clips/{space['id']}-ABCDEFGHIJKL.m4a",
        f"/clips/{space['id']}-zzzzzzzzzzzz.m4a",
        f"/clips/{space['id']}-zzzzzzzzzzzz",
        "/clips/" + "a" * 10_000,
    ):
        response = httpx.get(server.url + path, timeout=10)
        assert response.status_code == 404, (path[:60], response.text[:300])
        assert response.headers["content-type"] == "application/problem+json"
        assert len(response.text) < 1_000
    # byte ranges: many, huge, reversed, unsatisfiable
    size = len(httpx.get(made["clip_url"]).content)
    many = "bytes=" + ",".join(f"{n * 10}-{n * 10 + 1}" for n in range(101))
    for ranged, status in (
        (many, 200),  # past 100 ranges: the whole file, once
        ("bytes=" + ",".join(f"{n * 10}-{n * 10 + 1}" for n in range(50)), 206),
        ("bytes=0-99999999999", 206),
        ("bytes=5-1", 400),
        ("bytes=99999999-", 416),
        ("pages=0-1", 400),
    ):
        response = httpx.get(made["clip_url"], headers={"Range": ranged}, timeout=10)
        assert response.status_code == status, (ranged[:30], response.status_code)
        assert len(response.content) <= 2 * size
    # a flood of one listener's concurrent calls makes no more than its minute allows
    body = {"duration_s": 5, "end_s_ago": 1}

    async def flood() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            calls = [
                client.post(url, json=body, headers={"Authorization": f"Bearer {ticket}"})
                for _ in range(8)
            ]
            return sorted(r.status_code for r in await asyncio.gather(*calls))

    assert asyncio.run(flood()) == [201] * 3 + [429] * 5
    # a listener the host blocked clips no more, whichever worker answers
    blocked = join(server, space["id"])
    host = token_of(space["host_url"])
    response = httpx.post(
        f"{url.removesuffix('/clips')}/blocks",
        json={"ticket": blocked},
        headers={"Authorization": f"Bearer {host}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    # (the other workers learn of it within their revocations' refresh)
    deadline, made_while_spreading = time.monotonic() + 5, 0
    while (refused := clip(server, space["id"], blocked, body)).status_code != 403:
        assert refused.status_code == 201, refused.text
        assert time.monotonic() < deadline, "a blocked listener still clips"
        made_while_spreading += 1
        time.sleep(0.2)
    assert refused.json()["type"] == PROBLEM_BASE + "ticket-revoked"
    kept = sorted(p.name for p in clips_folder.iterdir())
    assert len(kept) == len(kept_before) + 3 + made_while_spreading
    assert not [name for name in kept if name.endswith(".tmp")]


def test_clip_outlives_the_space(
    server: Server, space: dict[str, Any], made: dict[str, Any]
) -> None:
    before = httpx.get(made["clip_url"]).content
    host = token_of(space["host_url"])
    assert server.api("POST", f"/api/v1/spaces/{space['id']}/end").status_code == 200
    deadline = time.monotonic() + 10
    while not (server.data / "spaces" / space["id"] / "replay.m3u8").exists():
        assert time.monotonic() < deadline, "the replay never appeared"
        time.sleep(0.1)
    after = httpx.get(made["clip_url"])
    assert after.status_code == 200
    assert after.content == before
    assert httpx.get(made["page_url"]).status_code == 200
    # and the host clips the end of the recording after the end
    late = clip(server, space["id"], host, {"duration_s": 5})
    assert late.status_code == 201, late.text
    assert httpx.get(late.json()["clip_url"]).status_code == 200
