"""The edge in front of a real `rostra serve`, each test run against both engines (nginx and
Varnish): a burst of listeners costs the origin one request per playlist version and per
segment, identical LL-HLS blocking reloads cost it one request, a browser listener plays
through it, writes are never cached, and the progressive stream passes unbuffered. A tone
speaker publishes through the edge's /whip/ route.

Real processes: Debian's nginx or varnishd run by `rostra edge`, `rostra serve`, `rostra speak`,
Chromium.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rostra.media.hls.ll_playlist import LiveEdge, live_edge
from rostra.media.record import part_name
from tests.conftest import ROOT, Server
from tests.e2e.conftest import Edge, EdgeDeployment

CHROMIUM = Path("/usr/bin/chromium")
BURST_LISTENERS = 50
BURST_S = 1.0
# nginx writes its buffered access log at least once a second
LOG_FLUSH_S = 1.5
SPEAKER_ARGS = ("--tone", "440", "--seconds", "240", "--name", "Tone")
PARTS_PER_SEGMENT = 4
HELD_RELOADS = 20
# Varnish wakes coalesced requests as the answer arrives: the origin's own 20 ms look for the
# part, then loopback
MAX_HELD_ANSWER_AFTER_PART_S = 0.1


@pytest.fixture(scope="module", params=["nginx", "varnish"])
def edge_engine(request: pytest.FixtureRequest) -> str:
    engine: str = request.param
    return engine


@dataclass
class Deployment:
    server: Server
    edge: Edge
    space: dict[str, Any]


@pytest.fixture(scope="module")
def deployment(edge_deployment: EdgeDeployment) -> Iterator[Deployment]:
    server, edge = edge_deployment.server, edge_deployment.edge
    space = server.create_space("Through the edge")
    # the invite link is on the edge: the speaker publishes through its /whip/ route
    speaker = subprocess.Popen(
        [sys.executable, "-m", "rostra", "speak", space["speaker_invite_url"], *SPEAKER_ARGS],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_speaker(edge, space, speaker)
        yield Deployment(server=server, edge=edge, space=space)
    finally:
        speaker.terminate()
        speaker.wait(timeout=15)


def wait_for_speaker(edge: Edge, space: dict[str, Any], speaker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if speaker.poll() is not None:
            assert speaker.stderr is not None
            pytest.fail(f"the speaker exited: {speaker.stderr.read().decode()[-2000:]}")
        state = httpx.get(space["state_url"], timeout=5)
        playlist = httpx.get(playlist_url(space), timeout=5)
        if (
            state.status_code == 200
            and state.json()["stage"]
            and playlist.status_code == 200
            and playlist.text.count("#EXTINF") >= 3
        ):
            return
        time.sleep(0.5)
    pytest.fail(
        f"no speaker on stage and 3 segments through the edge: {edge.stderr_path.read_text()}"
    )


def playlist_url(space: dict[str, Any]) -> str:
    return str(space["hls_url"]).replace("index.m3u8", "audio.m3u8")


async def one_listener(client: httpx.AsyncClient, url: str, delay_s: float) -> tuple[str, str]:
    """Like a player joining: the live playlist, then its newest segment."""
    await asyncio.sleep(delay_s)
    playlist = await client.get(url)
    assert playlist.status_code == 200, playlist.text
    segment = [line for line in playlist.text.splitlines() if line.endswith(".m4s")][-1]
    response = await client.get(url.rsplit("/", 1)[0] + "/" + segment)
    assert response.status_code == 200, response.text
    return playlist.text, segment


async def burst(url: str) -> list[tuple[str, str]]:
    limits = httpx.Limits(max_connections=BURST_LISTENERS)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        # half of them at the same instant (their misses overlap), the rest over the second
        delays = [0.0 if i % 2 else random.uniform(0, BURST_S) for i in range(BURST_LISTENERS)]
        return await asyncio.gather(*(one_listener(client, url, d) for d in delays))


def test_listener_burst_costs_origin_one_request_per_playlist_version_and_segment(
    deployment: Deployment,
) -> None:
    url = playlist_url(deployment.space)
    path = url.removeprefix(deployment.edge.url)
    started = time.time()
    fetched = asyncio.run(burst(url))
    finished = time.time()
    time.sleep(LOG_FLUSH_S)

    asked = Counter(deployment.edge.origin_requests(started, finished))
    versions = {text for text, _ in fetched}
    segments = {segment for _, segment in fetched}
    # each refresh of the cached playlist is one origin request, made at most once a second of
    # nginx's clock; a refresh may come back 304 or not be served to anyone before the end
    assert asked[path] <= len(versions) + 1, (asked, len(versions))
    for segment in segments:
        segment_path = path.rsplit("/", 1)[0] + "/" + segment
        assert asked[segment_path] <= 1, (segment, asked)
    assert sum(asked.values()) <= len(versions) + 1 + len(segments), asked


def test_playlist_and_segment_carry_cache_headers_through_the_edge(
    deployment: Deployment,
) -> None:
    url = playlist_url(deployment.space)
    playlist = httpx.get(url)
    segment = [line for line in playlist.text.splitlines() if line.endswith(".m4s")][-1]
    first = httpx.get(url.rsplit("/", 1)[0] + "/" + segment)
    again = httpx.get(url.rsplit("/", 1)[0] + "/" + segment)

    assert playlist.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=1"
    assert playlist.headers.get("etag"), playlist.headers
    assert "immutable" in first.headers["cache-control"]
    assert again.headers["x-cache-status"] == "HIT"
    revalidated = httpx.get(url, headers={"If-None-Match": playlist.headers["etag"]})
    assert revalidated.status_code in (200, 304)


def media_sequence(playlist: str) -> int:
    line = next(x for x in playlist.splitlines() if x.startswith("#EXT-X-MEDIA-SEQUENCE:"))
    return int(line.partition(":")[2])


def test_first_listener_after_a_quiet_spell_gets_a_fresh_playlist_not_an_old_copy(
    deployment: Deployment,
) -> None:
    """The edge may serve an expired playlist while it refreshes it only within the origin's
    `stale-while-revalidate`: after a few quiet seconds the copy it holds is segments old."""
    url = playlist_url(deployment.space)
    state_url = deployment.space["state_url"]
    httpx.get(url, timeout=10).raise_for_status()  # the edge now holds a copy
    httpx.get(state_url, timeout=10).raise_for_status()
    time.sleep(4.5)  # four segments go by with nobody asking

    through_edge = httpx.get(url, timeout=10)
    at_origin = httpx.get(url.replace(deployment.edge.url, deployment.server.url, 1), timeout=10)
    state = httpx.get(state_url, timeout=10)

    assert through_edge.headers["x-cache-status"] != "STALE", through_edge.headers
    assert media_sequence(through_edge.text) >= media_sequence(at_origin.text) - 1
    assert "stale-while-revalidate=1" in through_edge.headers["cache-control"]
    assert state.headers["x-cache-status"] != "STALE", state.headers
    assert "stale-while-revalidate=1" in state.headers["cache-control"]


def test_joins_through_the_edge_are_never_cached(deployment: Deployment) -> None:
    join_url = f"{deployment.edge.url}/api/v1/spaces/{deployment.space['id']}/join"
    answers = [httpx.post(join_url, json={}, timeout=10) for _ in range(2)]

    for answer in answers:
        assert answer.status_code == 201, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers.get("x-cache-status", "") == ""
    tickets = [answer.json()["ticket"] for answer in answers]
    assert tickets[0] != tickets[1]


def test_reads_with_credentials_pass_the_edge_and_are_never_stored(deployment: Deployment) -> None:
    edge = deployment.edge
    url = deployment.space["state_url"]
    started = time.time()
    answers = [
        httpx.get(url, headers={"Authorization": f"Bearer not-a-ticket-{i}"}, timeout=10)
        for i in range(3)
    ]
    finished = time.time()
    time.sleep(LOG_FLUSH_S)

    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-cache-status"] == "BYPASS"
    assert Counter(edge.origin_requests(started, finished))[url.removeprefix(edge.url)] == 3


def test_edge_refuses_request_bodies_over_a_megabyte(deployment: Deployment) -> None:
    """413 before the origin sees it. Varnish reads at most 1 MB of a chunked body and then
    closes the connection on the rest, which a client may see as a reset instead."""
    edge = deployment.edge
    join_path = f"/api/v1/spaces/{deployment.space['id']}/join"
    body = b"{" + b" " * 1_100_000 + b"}"

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    started = time.time()
    sized = httpx.post(edge.url + join_path, content=body, timeout=10)
    try:
        chunked_status = httpx.post(edge.url + join_path, content=chunks(), timeout=10).status_code
    except httpx.TransportError:
        chunked_status = 413 if edge.engine == "varnish" else 0
    finished = time.time()
    time.sleep(LOG_FLUSH_S)

    assert sized.status_code == 413, sized.text[:200]
    assert chunked_status == 413
    assert join_path not in edge.origin_requests(started, finished)


def test_progressive_stream_passes_the_edge_unbuffered(deployment: Deployment) -> None:
    arrivals: list[tuple[float, int]] = []
    started = time.monotonic()
    with httpx.stream("GET", deployment.space["stream_url"], timeout=10) as response:
        assert response.status_code == 200
        assert response.headers.get("x-cache-status", "") == ""
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic() - started, len(chunk)))
            if arrivals[-1][0] > 4.0:
                break

    assert arrivals[0][0] < 1.0, f"first bytes after {arrivals[0][0]:.2f} s"
    # as made: bytes in every half second, never held back to fill a buffer
    halves = {int(at / 0.5) for at, size in arrivals if size}
    assert halves >= set(range(8)), sorted(halves)


def part_after_next(edge: LiveEdge) -> tuple[int, int]:
    """A part that does not exist yet and will within about two part durations."""
    assert edge.last_part is not None, "the playlist lists no part"
    msn, part = edge.last_part
    index = msn * PARTS_PER_SEGMENT + part + 2
    return divmod(index, PARTS_PER_SEGMENT)


async def held_listener(
    client: httpx.AsyncClient, url: str, part_url: str, part: str
) -> tuple[float, float]:
    """A player's blocking reload for the coming part, then that part: when each came back."""
    playlist = await client.get(url)
    playlist_at = time.time()
    assert playlist.status_code == 200, playlist.text
    assert f'URI="{part}"' in playlist.text
    fragment = await client.get(part_url)
    assert fragment.status_code == 200, fragment.text
    return playlist_at, time.time()


async def held_reloads(url: str, part_url: str, part: str) -> list[tuple[float, float]]:
    limits = httpx.Limits(max_connections=HELD_RELOADS)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        return await asyncio.gather(
            *(held_listener(client, url, part_url, part) for _ in range(HELD_RELOADS))
        )


def test_identical_blocking_reloads_cost_the_origin_one_request_and_wake_as_the_part_appears(
    deployment: Deployment, record_property: Any
) -> None:
    """Players asking for the same coming part are held as one origin request; Varnish answers
    them all as that answer arrives (nginx's cache lock re-checks every 500 ms: its delays are
    recorded here and measured by bench/latency.py, not held to the bound)."""
    edge, space = deployment.edge, deployment.space
    url = playlist_url(space)
    at_origin = httpx.get(url.replace(edge.url, deployment.server.url, 1), timeout=10)
    msn, index = part_after_next(live_edge(at_origin.text))
    part = part_name(msn, index)
    part_file = deployment.server.data / "spaces" / space["id"] / part
    held_url = f"{url}?_HLS_msn={msn}&_HLS_part={index}"
    part_url = url.rsplit("/", 1)[0] + "/" + part
    assert not part_file.exists(), "the part exists already: nothing would be held"

    started = time.time()
    answers = asyncio.run(held_reloads(held_url, part_url, part))
    finished = time.time()
    time.sleep(LOG_FLUSH_S)

    appeared_at = part_file.stat().st_mtime
    playlist_delays_s = sorted(at - appeared_at for at, _ in answers)
    part_delays_s = sorted(at - appeared_at for _, at in answers)
    record_property("held_playlist_after_part_ms", [round(d * 1000) for d in playlist_delays_s])
    record_property("part_after_part_ms", [round(d * 1000) for d in part_delays_s])
    asked = Counter(edge.origin_requests(started, finished))
    assert asked[held_url.removeprefix(edge.url)] == 1, asked
    assert asked[part_url.removeprefix(edge.url)] == 1, asked
    if edge.engine == "varnish":
        assert playlist_delays_s[-1] < MAX_HELD_ANSWER_AFTER_PART_S, playlist_delays_s
        assert part_delays_s[-1] < 2 * MAX_HELD_ANSWER_AFTER_PART_S, part_delays_s


@pytest.mark.browser
def test_browser_listener_plays_through_the_edge(deployment: Deployment) -> None:
    if not CHROMIUM.is_file() or shutil.which("chromium") is None:
        pytest.fail("Chromium is needed: `make system-test-deps` installs it")
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page()
            media: list[str] = []
            page.on("request", lambda request: media.append(request.url))
            page.goto(deployment.space["listen_url"])
            page.click("#play")
            page.wait_for_function(
                "() => document.getElementById('player').currentTime > 1", timeout=30_000
            )
            before = page.evaluate("document.getElementById('player').currentTime")
            time.sleep(4.0)
            after = page.evaluate("document.getElementById('player').currentTime")
        finally:
            browser.close()

    assert after - before > 3.0, f"played only {after - before:.2f} s in 4 s"
    segments = [url for url in media if url.endswith(".m4s")]
    assert segments, media
    assert all(url.startswith(deployment.edge.url) for url in segments), segments
