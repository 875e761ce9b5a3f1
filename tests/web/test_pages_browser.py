"""The three pages in a real browser (Debian's Chromium through Playwright) against a real server:
a speaker's microphone reaches listeners, the listener page plays the program, the host page runs
the space, and every page fits desktop and mobile screens."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from scipy import signal

from rostra.audience.gate import REACTIONS
from tests.audio_check import SAMPLE_RATE_HZ, Audio, decode, rms_db
from tests.conftest import ADMIN_TOKEN, Server
from tests.web.conftest import HEARTBEAT_INTERVAL_S, ConsoleWatch, Speech

pytestmark = pytest.mark.browser

STAGE_TIMEOUT_MS = 20_000
CAPTURE_S = 8.0
# the part of the capture compared with the looping source (the capture's edges are left out)
COMPARE_FROM_S = 1.0
COMPARE_S = 4.0
# Chromium's echo canceller and noise suppressor (the page's defaults) reshape the waveform: the
# speech sent correlates 0.48-0.6 with what the listener decodes, a sentence never sent about 0.1
MIN_CORRELATION = 0.4
CONTROL_RATIO = 5.0
SILENCE_DB = -50.0
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}
NARROW = {"width": 360, "height": 740}

# Runs in the listener page: route its <audio> through an AnalyserNode and report the loudness.
MEASURE_PROGRAM_JS = """
async (seconds) => {
  const audio = document.getElementById('player');
  const context = new AudioContext();
  await context.resume();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaElementSource(audio).connect(analyser);
  analyser.connect(context.destination);
  const samples = new Float32Array(analyser.fftSize);
  const started = audio.currentTime;
  let peak = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    peak = Math.max(peak, Math.sqrt(sum / samples.length));
  }
  return { peak, advanced: audio.currentTime - started, state: context.state };
}
"""


def peak_correlation(haystack: Audio, needle: Audio) -> float:
    """Highest normalised cross-correlation of `needle` against every window of `haystack`, in
    the speech band (window energies by cumulative sum, so long inputs stay fast)."""
    sos = signal.butter(4, [100, 7000], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    x = signal.sosfilt(sos, haystack.astype(np.float64))
    y = signal.sosfilt(sos, needle.astype(np.float64))
    y -= y.mean()
    norm_y = float(np.sqrt(np.sum(y * y)))
    if x.size < y.size or norm_y == 0:
        return 0.0
    products = signal.fftconvolve(x, y[::-1], mode="valid")
    cumulative = np.concatenate([[0.0], np.cumsum(x * x)])
    energy = cumulative[y.size :] - cumulative[: -y.size]
    return float(np.max(products / (np.sqrt(np.maximum(energy, 1e-12)) * norm_y)))


def wait_until(condition: Any, timeout_s: float, what: str, interval_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def wait_for_segments(server: Server, space_id: str, count: int = 2) -> None:
    def has_segments() -> bool:
        response = server.api("GET", f"/live/{space_id}/audio.m3u8")
        return response.status_code == 200 and response.text.count("#EXTINF") >= count

    wait_until(has_segments, 15, f"{count} segments in the live playlist")


def errors_besides_not_live_yet(console: ConsoleWatch) -> list[str]:
    """Console errors, except the documented 409 of a live playlist that has no segment yet
    (hls.js retries it): a space that just started may answer so for a second."""
    not_live_yet = [line for line in console.failed if line.startswith("409 GET")]
    if all(line.endswith("/audio.m3u8") for line in not_live_yet):
        return [error for error in console.errors if "409" not in error]
    return console.errors


def stage_names(server: Server, space_id: str) -> list[str]:
    response = server.api("GET", f"/live/{space_id}/state.json")
    assert response.status_code == 200, response.text
    return [member["name"] for member in response.json()["stage"]]


def join_stage(page: Any, invite_url: str, name: str) -> None:
    """Open the speaker page, type a name, join with the (fake) microphone."""
    page.goto(invite_url)
    page.fill("#name", name)
    page.click("#join")
    try:
        page.locator("#panel-live").wait_for(state="visible", timeout=STAGE_TIMEOUT_MS)
    except PlaywrightTimeout as error:
        message = page.locator("#join-message").inner_text()
        pytest.fail(f"{name} did not get on stage: {message!r} ({error})")


def speaker_on_stage(context: Any, server: Server, space: dict[str, Any], name: str) -> Any:
    page = context.new_page()
    join_stage(page, space["speaker_invite_url"], name)
    wait_until(lambda: name in stage_names(server, space["id"]), 10, f"{name} in state.json")
    return page


def test_speech_fed_to_speaker_page_is_decoded_at_listener(
    web_server: Server, context: Any, speech: Speech, console: ConsoleWatch
) -> None:
    space = web_server.create_space("Speech through the speaker page")
    speaker = console.watch(context.new_page())
    join_stage(speaker, space["speaker_invite_url"], "Ada")
    time.sleep(1.0)  # the voice is in the mix: let the encoder emit a little of it

    heard = decode(space["stream_url"], seconds=CAPTURE_S, timeout_s=30)

    assert heard.size >= 0.9 * CAPTURE_S * SAMPLE_RATE_HZ, f"decoded only {heard.size} samples"
    assert rms_db(heard) > SILENCE_DB, f"the program is silent ({rms_db(heard):.1f} dBFS)"
    # the microphone loops the sentence: find the heard excerpt in the looping source
    excerpt = heard[int(COMPARE_FROM_S * SAMPLE_RATE_HZ) :][: int(COMPARE_S * SAMPLE_RATE_HZ)]
    wanted = peak_correlation(np.tile(decode(speech.spoken), 3), excerpt)
    unsent = peak_correlation(np.tile(decode(speech.never_spoken), 3), excerpt)
    print(f"speech {wanted:.2f}, control {unsent:.2f}")  # noqa: T201 - the figures
    assert wanted >= MIN_CORRELATION, (
        f"correlation with the speech {wanted:.2f} < {MIN_CORRELATION}"
    )
    assert wanted >= CONTROL_RATIO * unsent, (
        f"correlation {wanted:.2f} is not {CONTROL_RATIO}x the unsent control's {unsent:.2f}"
    )
    assert console.errors == [], console.failed


def test_listener_page_plays_live_program(
    web_server: Server, context: Any, console: ConsoleWatch, screenshots: Path
) -> None:
    space = web_server.create_space("The listener page plays")
    speaker_on_stage(context, web_server, space, "Ada")
    wait_for_segments(web_server, space["id"])
    listener = console.watch(context.new_page())
    # the media files the page asks for: which rendition hls.js plays
    fetched: list[str] = []
    listener.on("request", lambda request: fetched.append(request.url.split("?")[0]))

    listener.goto(space["listen_url"])
    listener.locator("#status[data-status='live']").wait_for()
    listener.locator("#stage .member-name", has_text="Ada").wait_for()
    listener.click("#play")
    listener.wait_for_function(
        "() => document.getElementById('player').currentTime > 1", timeout=STAGE_TIMEOUT_MS
    )
    measured = listener.evaluate(MEASURE_PROGRAM_JS, 3)

    assert measured["advanced"] > 2.0, f"media time advanced only {measured['advanced']:.2f} s"
    assert measured["peak"] > 0.005, f"no audio energy while Ada talks: {measured}"
    assert listener.get_attribute("#play", "aria-label") == "Pause"
    # Chromium plays Opus in MP4, so the page took the Opus level and never an AAC segment
    assert listener.evaluate("() => MediaSource.isTypeSupported('audio/mp4; codecs=\"opus\"')")
    names = [url.rsplit("/", 1)[-1] for url in fetched if "/live/" in url]
    assert "opus_init.mp4" in names, names
    assert any(re.fullmatch(r"opus_(seg|part)_\d{6}(\.\d)?\.m4s", name) for name in names), names
    aac_media = re.compile(r"init\.mp4|seg_\d{6}\.m4s|part_\d{6}\.\d\.m4s")
    assert not [name for name in names if aac_media.fullmatch(name)], names
    # a player that finds itself seconds behind live (as after a cache's stale first playlist)
    # jumps back near the live edge instead of staying behind for the whole session
    behind_s = 3.0
    back_at = listener.evaluate(
        "(s) => { const a = document.getElementById('player'); a.currentTime -= s;"
        " return a.currentTime; }",
        behind_s,
    )
    time.sleep(3.0)
    advanced = listener.evaluate("() => document.getElementById('player').currentTime") - back_at
    assert advanced > 3.0 + behind_s / 2, f"still behind: advanced {advanced:.2f} s in 3 s"
    assert listener.inner_text("#listeners").isdigit()
    assert listener.inner_text("#stream-listeners").isdigit()
    assert listener.get_attribute("#aac-link", "href") == space["stream_url"]
    assert listener.get_attribute("#opus-link", "href") == space["opus_stream_url"]
    listener.screenshot(path=screenshots / "listen-playing-desktop.png", full_page=True)
    assert console.errors == [], console.failed


def test_listener_page_waits_for_scheduled_space_and_plays_once_live(
    web_server: Server, context: Any, console: ConsoleWatch
) -> None:
    response = web_server.api(
        "POST", "/api/v1/spaces", json={"title": "Later", "scheduled_at": in_a_month()}
    )
    assert response.status_code == 201, response.text
    space = response.json()
    listener = console.watch(context.new_page())

    listener.goto(space["listen_url"])
    listener.locator("#status[data-status='scheduled']").wait_for()
    assert listener.inner_text("#when").startswith("Starts at")
    listener.click("#play")  # before the start: the page waits, then plays by itself
    listener.locator("#play-label", has_text="Waiting").wait_for()
    response = web_server.api("POST", f"/api/v1/spaces/{space['id']}/start")
    assert response.status_code == 200, response.text

    listener.wait_for_function(
        "() => document.getElementById('player').currentTime > 0.5", timeout=STAGE_TIMEOUT_MS
    )
    assert listener.get_attribute("#status", "data-status") == "live"
    assert errors_besides_not_live_yet(console) == [], console.failed


def test_host_starts_space_mints_invite_sees_speaker_and_removes_them(
    web_server: Server, context: Any, console: ConsoleWatch
) -> None:
    space = web_server.create_space("Hosted", live=False)
    host = console.watch(context.new_page())
    host.goto(space["host_url"])
    host.locator("#status[data-status='scheduled']").wait_for()
    assert host.input_value("#speaker-link") == space["speaker_invite_url"]

    host.click("#start")
    host.locator("#status[data-status='live']").wait_for()
    host.fill("#invite-name", "Grace")
    host.fill("#invite-uses", "1")
    host.click("#invite-create")
    invite_url = host.locator("#invites .invite input").first.input_value()
    assert f"/speak/{space['id']}?invite=" in invite_url

    speaker = console.watch(context.new_page())
    join_stage(speaker, invite_url, "Grace")
    member = host.locator("#stage .member", has_text="Grace")
    member.wait_for(timeout=10_000)
    member.get_by_role("button", name="Remove Grace from the stage").click()
    member.wait_for(state="detached", timeout=10_000)
    assert "Grace" not in stage_names(web_server, space["id"])
    speaker.locator("#join-message", has_text="no longer on the stage").wait_for(timeout=15_000)

    speaker.click("#join")  # the invite allowed one use
    speaker.locator("#join-message", has_text="already been used").wait_for()

    host.click("#end")
    host.click("#end-confirm")
    host.locator("#status[data-status='ended']").wait_for()
    unexpected = [error for error in console.errors if "403" not in error]
    assert unexpected == [], console.failed  # only the refused second join (403) may log


def test_listener_page_plays_replay_with_seek_and_download_after_end(
    web_server: Server, context: Any, console: ConsoleWatch, screenshots: Path
) -> None:
    space = web_server.create_space("Replayed")
    speaker = speaker_on_stage(context, web_server, space, "Ada")
    time.sleep(4)
    speaker.click("#leave")
    response = web_server.api("POST", f"/api/v1/spaces/{space['id']}/end")
    assert response.status_code == 200, response.text
    listener = console.watch(context.new_page())

    listener.goto(space["listen_url"])
    listener.locator("#status[data-status='ended']").wait_for()
    listener.locator("#seek").wait_for()
    assert listener.get_attribute("#download", "href") == space["download_url"]
    assert listener.locator("#players").is_hidden()
    listener.click("#play")
    listener.wait_for_function("() => document.getElementById('player').currentTime > 1")
    duration = float(listener.get_attribute("#seek-bar", "max") or 0)
    assert duration >= 3, f"the replay lasts {duration} s"
    listener.evaluate(
        """(t) => { const bar = document.getElementById('seek-bar');
        bar.value = String(t); bar.dispatchEvent(new Event('change')); }""",
        duration - 1,
    )
    listener.wait_for_function(
        f"() => document.getElementById('player').currentTime >= {duration - 1.5}"
    )
    listener.screenshot(path=screenshots / "listen-replay-desktop.png", full_page=True)
    assert console.errors == [], console.failed


@pytest.mark.parametrize(
    ("size", "viewport"),
    [("desktop", DESKTOP), ("mobile", MOBILE), ("narrow", NARROW)],
    ids=["desktop", "mobile", "narrow"],
)
def test_pages_fit_the_screen_at_desktop_and_mobile_widths(
    web_server: Server,
    browser: Any,
    console: ConsoleWatch,
    screenshots: Path,
    size: str,
    viewport: dict[str, int],
) -> None:
    space = web_server.create_space("Town hall: the future of the river bank")
    is_phone = size != "desktop"
    context = browser.new_context(viewport=viewport, is_mobile=is_phone, has_touch=is_phone)
    context.set_default_timeout(15_000)
    try:
        speaker = speaker_on_stage(context, web_server, space, "Ada Lovelace")
        speaker.screenshot(path=screenshots / f"speak-joined-{size}.png", full_page=True)
        pages = {
            "index": "/",
            "listen": space["listen_url"],
            "host": space["host_url"],
            "speak": space["speaker_invite_url"],
        }
        for name, url in pages.items():
            page = console.watch(context.new_page())
            page.goto(url if url.startswith("http") else web_server.url + url)
            if name != "index":
                page.locator("#stage .member-name", has_text="Ada Lovelace").wait_for()
            page.screenshot(path=screenshots / f"{name}-{size}.png", full_page=True)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} page scrolls sideways by {overflow} px at {size}"
            page.close()
    finally:
        context.close()
    assert console.errors == [], console.failed


# ---- the audience: tickets, heartbeats, the count, reactions and hands ----

SEEDED_LISTENERS = 7
COUNT_VISIBLE_S = 5.0
PLAYING_TIMEOUT_MS = 20_000
# enough seeded listeners that the count's error note shows (it is hidden below 100)
CROWD = 150
GATE_CALLS = ("join", "heartbeat", "leave", "reactions", "hand")
# Runs in every listener page: tell the test when the <audio> starts playing ('playing' does not
# bubble, so it is caught on its way down).
MARK_PLAYING_JS = """
document.addEventListener('playing', () => window.rostraMark('playing'), true);
"""


class GateLog:
    """The gate calls a page makes (from Playwright's request events) and the moments its audio
    started playing, in the order they happened."""

    def __init__(self, page: Any) -> None:
        self.entries: list[tuple[str, Any, float]] = []
        page.expose_function("rostraMark", lambda what: self.add(what, None))
        page.add_init_script(MARK_PLAYING_JS)
        page.on("request", self.on_request)

    def add(self, kind: str, request: Any) -> None:
        self.entries.append((kind, request, time.monotonic()))

    def on_request(self, request: Any) -> None:
        path = request.url.split("?")[0]
        if "/api/v1/spaces/" in path and request.method == "POST":
            kind = path.rsplit("/", 1)[-1]
            if kind in GATE_CALLS:
                self.add(kind, request)

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.entries]

    def requests(self, kind: str) -> list[Any]:
        return [request for entry, request, _ in self.entries if entry == kind]

    def times(self, kind: str) -> list[float]:
        return [at for entry, _, at in self.entries if entry == kind]

    def wait_for(self, page: Any, kind: str, count: int = 1, timeout_s: float = 10) -> None:
        """Until the page made `count` calls of `kind` (Playwright delivers events only while
        the test waits through it, so this waits in the page, not with time.sleep)."""
        deadline = time.monotonic() + timeout_s
        while len(self.requests(kind)) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {count} {kind}")
            page.wait_for_timeout(100)


def seed_listeners(server: Server, space_id: str, count: int) -> list[str]:
    """`count` listeners that joined and heartbeated once through the HTTP API."""
    tickets = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(count):
            joined = client.post(f"/api/v1/spaces/{space_id}/join")
            assert joined.status_code == 201, joined.text
            ticket = joined.json()["ticket"]
            beat = client.post(
                f"/api/v1/spaces/{space_id}/heartbeat",
                headers={"Authorization": f"Bearer {ticket}"},
            )
            assert beat.status_code in (200, 204), beat.text
            tickets.append(ticket)
    return tickets


def react_as(server: Server, space_id: str, tickets: list[str], emoji: str) -> None:
    for ticket in tickets:
        response = httpx.post(
            f"{server.url}/api/v1/spaces/{space_id}/reactions",
            json={"emoji": emoji},
            headers={"Authorization": f"Bearer {ticket}"},
            timeout=10,
        )
        assert response.status_code == 204, response.text


def fresh_state(server: Server, space_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/live/{space_id}/state.json", headers={"Cache-Control": "no-cache"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def in_a_month() -> str:
    """A start time the server accepts (from 2000 to a year ahead), ISO 8601 UTC."""
    return time.strftime("%Y-%m-%dT18:00:00Z", time.gmtime(time.time() + 30 * 86_400))


def gate_count(server: Server, kind: str) -> int:
    """Listener writes of `kind` the gate accepted so far, from /metrics."""
    text = httpx.get(
        f"{server.url}/metrics",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    ).text
    line = f'rostra_gate_requests_total{{kind="{kind}"}} '
    values = [row.removeprefix(line) for row in text.splitlines() if row.startswith(line)]
    assert values, f"no {line!r} in /metrics"
    return int(float(values[0]))


# each listener worker writes its figures for the others' /metrics about once a second
METRICS_SETTLE_S = 1.5


def wait_for_gate_count(server: Server, kind: str, count: int, timeout_s: float = 10) -> int:
    """The gate's count of `kind` once it reaches `count` (another worker's figures reach
    /metrics about a second later), or what it is at the deadline."""
    deadline = time.monotonic() + timeout_s
    while (seen := gate_count(server, kind)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return seen


def play_live(page: Any) -> None:
    page.locator("#status[data-status='live']").wait_for()
    page.click("#play")
    page.wait_for_function(
        "() => document.getElementById('player').currentTime > 0.5", timeout=PLAYING_TIMEOUT_MS
    )


def first_index(kinds: list[str], kind: str) -> int:
    assert kind in kinds, f"no {kind} in {kinds}"
    return kinds.index(kind)


def test_listener_page_joins_on_play_and_heartbeats_only_once_audio_plays(
    audience_server: Server, context: Any, console: ConsoleWatch
) -> None:
    space = audience_server.create_space("Heartbeats follow playback")
    page = console.watch(context.new_page())
    log = GateLog(page)
    page.goto(space["listen_url"])
    page.locator("#status[data-status='live']").wait_for()
    page.wait_for_timeout(500)
    assert log.kinds() == [], "the page called the gate before play was pressed"

    play_live(page)
    page.wait_for_timeout(HEARTBEAT_INTERVAL_S * 1000 * 1.6)  # room for a second heartbeat
    kinds = log.kinds()

    join, playing = first_index(kinds, "join"), first_index(kinds, "playing")
    heartbeat = first_index(kinds, "heartbeat")
    assert join < playing < heartbeat, kinds
    assert kinds.count("join") == 1, kinds
    ticket = log.requests("join")[0].response().json()["ticket"]
    beats = log.requests("heartbeat")
    assert len(beats) >= 2, f"one heartbeat in {HEARTBEAT_INTERVAL_S * 1.6:.1f} s: {kinds}"
    assert {beat.headers.get("authorization") for beat in beats} == {f"Bearer {ticket}"}
    gaps = np.diff(log.times("heartbeat"))
    assert gaps.min() > 0.5 * HEARTBEAT_INTERVAL_S, f"heartbeats too close: {gaps}"

    page.click("#play")  # pause: the heartbeats stop (one already on its way may still land)
    page.locator("#play[data-state='paused']").wait_for()
    sent_before_pause = len(log.requests("heartbeat"))
    page.wait_for_timeout(HEARTBEAT_INTERVAL_S * 1000 * 2)
    assert len(log.requests("heartbeat")) <= sent_before_pause + 1, log.kinds()
    assert console.errors == [], console.failed


def test_listener_page_shows_seeded_listeners_plus_itself(
    audience_server: Server, context: Any, console: ConsoleWatch
) -> None:
    space = audience_server.create_space("Seven and one")
    seed_listeners(audience_server, space["id"], SEEDED_LISTENERS)
    page = console.watch(context.new_page())
    log = GateLog(page)
    page.goto(space["listen_url"])
    listeners = page.locator("#listeners")
    listeners.filter(has_text=str(SEEDED_LISTENERS)).wait_for(timeout=COUNT_VISIBLE_S * 1000)
    host = console.watch(context.new_page())
    host.goto(space["host_url"])

    play_live(page)
    log.wait_for(page, "heartbeat")
    counted_s = time.monotonic()
    expected = str(SEEDED_LISTENERS + 1)
    page.wait_for_function(
        f"() => document.getElementById('listeners').textContent === '{expected}'",
        timeout=COUNT_VISIBLE_S * 1000,
    )
    host.wait_for_function(
        f"() => document.getElementById('listeners').textContent === '{expected}'",
        timeout=max(500, (COUNT_VISIBLE_S - (time.monotonic() - counted_s)) * 1000),
    )
    assert page.locator("#listeners-error").is_hidden()  # below 100 listeners: no ± note
    assert page.locator("#count-stale").is_hidden()
    assert page.inner_text("#stream-listeners") == "0"
    assert host.inner_text("#admitted") == expected
    assert int(host.inner_text("#peak")) >= SEEDED_LISTENERS + 1
    assert console.errors == [], console.failed


# joins sent past the space's bucket while the reloaded page is away, and the defence's cache
LINE_AHEAD = 4
DEFENSE_CACHE_S = 1.1


def listener_of(ticket: str) -> str:
    """The listener id a ticket names (the first 16 bytes of its payload, tickets.py)."""
    payload = ticket.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))[:16].hex()


def test_listener_page_reload_gives_its_ticket_back_and_returns_past_the_line(
    audience_server: Server, context: Any, console: ConsoleWatch
) -> None:
    space = audience_server.create_space("Reloaded")
    base = f"{audience_server.url}/api/v1/spaces/{space['id']}"
    defended = audience_server.api(
        "PUT",
        f"/api/v1/spaces/{space['id']}/defense",
        json={"admission_rate": 1.0, "admission_burst": 1},
    )
    assert defended.status_code == 200, defended.text
    time.sleep(DEFENSE_CACHE_S)
    page = console.watch(context.new_page())
    log = GateLog(page)
    page.goto(space["listen_url"])
    play_live(page)
    log.wait_for(page, "heartbeat")
    ticket = log.requests("join")[0].response().json()["ticket"]
    stored = page.evaluate(f"localStorage.getItem('rostra.ticket.{space['id']}')")
    assert ticket in stored
    # a surge: others now wait in line to be counted
    waiting = [httpx.post(f"{base}/join", timeout=10) for _ in range(LINE_AHEAD)]
    assert [r.status_code for r in waiting].count(503) >= LINE_AHEAD - 1, waiting[-1].text

    time.sleep(METRICS_SETTLE_S)  # every worker's earlier figures have reached /metrics
    leaves = gate_count(audience_server, "leaves")
    # the old page's calls end with the reload: count only those made after it
    calls_before = len(log.entries)
    page.reload()
    play_live(page)
    log.wait_for(page, "join", count=2)
    beats_before = len(log.requests("heartbeat"))
    log.wait_for(page, "heartbeat", count=beats_before + 1)

    # the page said goodbye as it went away (a beacon: Playwright does not see it, the gate does),
    # which gave its ticket back; the reloaded page exchanged it for a new ticket of the same
    # listener at once, ahead of the line: counted once, never told to wait
    assert wait_for_gate_count(audience_server, "leaves", leaves + 1) == leaves + 1
    joins = log.requests("join")
    assert len(joins) == 2, log.kinds()
    assert [join.response().status for join in joins] == [201, 201]
    sent = [json.loads(join.post_data or "{}") for join in joins]
    assert sent[1] == {"ticket": ticket, "device": sent[0]["device"]}  # the same browser's id
    returned = joins[1].response().json()["ticket"]
    assert returned != ticket
    assert listener_of(returned) == listener_of(ticket)
    # the page heartbeats with the returned ticket (or its renewal: the same listener)
    after = [request for kind, request, _ in log.entries[calls_before:] if kind == "heartbeat"]
    latest = after[-1].headers.get("authorization", "").removeprefix("Bearer ")
    assert latest != ticket
    assert listener_of(latest) == listener_of(ticket)
    assert page.evaluate(f"localStorage.getItem('rostra.returning.{space['id']}')") is None
    refused = httpx.post(
        f"{base}/heartbeat", headers={"Authorization": f"Bearer {ticket}"}, timeout=10
    )
    assert refused.status_code == 403, refused.text
    again = httpx.post(f"{base}/join", json={"ticket": ticket}, timeout=10)  # exchanged once
    assert again.status_code == 401, again.text
    assert again.json()["type"].endswith("/ticket-already-returned"), again.text
    assert console.errors == [], console.failed


def test_listener_page_replaces_a_ticket_the_gate_refuses(
    audience_server: Server, context: Any, console: ConsoleWatch
) -> None:
    space = audience_server.create_space("Refused ticket")
    elsewhere = audience_server.create_space("Another space")
    [foreign] = seed_listeners(audience_server, elsewhere["id"], 1)
    page = console.watch(context.new_page())
    log = GateLog(page)
    page.goto(space["listen_url"])
    page.evaluate(  # a ticket kept from another space: the gate answers 403
        """([key, ticket]) => localStorage.setItem(key, JSON.stringify(
             { ticket, expiresAt: '2099-01-01T00:00:00Z', intervalS: 2 }))""",
        [f"rostra.ticket.{space['id']}", foreign],
    )

    play_live(page)
    log.wait_for(page, "heartbeat", count=2)

    refused, accepted = log.requests("heartbeat")[:2]
    assert refused.headers.get("authorization") == f"Bearer {foreign}"
    assert refused.response().status == 403
    assert log.kinds().count("join") == 1, log.kinds()
    ticket = log.requests("join")[0].response().json()["ticket"]
    assert accepted.headers.get("authorization") == f"Bearer {ticket}"
    assert accepted.response().status in (200, 204)
    stored = page.evaluate(f"localStorage.getItem('rostra.ticket.{space['id']}')")
    assert ticket in stored
    assert [error for error in console.errors if "403" not in error] == [], console.failed


def test_listener_page_shows_error_players_and_paused_count_apart(
    audience_server: Server, context: Any, console: ConsoleWatch
) -> None:
    space = audience_server.create_space("A big audience")
    page = console.watch(context.new_page())
    figures = {
        "listeners": 1_300_000,
        "error": 0.0081,
        "stream_listeners": 42,
        "stale": True,
        "reactions": {"🔥": 12, "👏": 30, "not-an-emoji": 5},
    }

    def big_audience(route: Any) -> None:
        state = route.fetch().json()
        state.update(figures)
        route.fulfill(json=state)

    page.route(f"**/live/{space['id']}/state.json", big_audience)
    page.goto(space["listen_url"])
    page.locator("#listeners", has_text="1,300,000").wait_for()

    assert page.inner_text("#listeners-error") == "±0.8 %"
    assert page.inner_text("#stream-listeners") == "42"  # apart, never added in
    assert page.locator("#count-stale").is_visible()
    tally = page.locator("#tally .tally-item")
    assert [tally.nth(i).get_attribute("data-emoji") for i in range(tally.count())] == ["👏", "🔥"]
    assert console.errors == [], console.failed


def test_reaction_and_raised_hand_reach_state_json_and_the_host(
    audience_server: Server, context: Any, console: ConsoleWatch
) -> None:
    space = audience_server.create_space("Applause")
    page = console.watch(context.new_page())
    page.goto(space["listen_url"])
    page.locator("#react").wait_for()
    buttons = page.locator("#reaction-buttons .reaction")
    assert [buttons.nth(i).inner_text() for i in range(buttons.count())] == list(REACTIONS)

    page.get_by_role("button", name="React with applause").click()
    page.get_by_role("button", name="Raise hand").click()
    page.locator("#hand[aria-pressed='true']", has_text="Hand raised").wait_for()

    def counted() -> dict[str, Any] | None:
        state = fresh_state(audience_server, space["id"])
        has_both = state["reactions"].get("👏") == 1 and state["hands"] == 1
        return state if has_both and state["admitted"] == 1 else None

    state = wait_until(counted, 5, "the reaction, the hand and the join in state.json")
    assert state["listeners"] == 0  # reacting joined, but nothing played: admitted, not counted
    page.locator("#tally .tally-item[data-emoji='👏']", has_text="1").wait_for(timeout=5_000)
    host = console.watch(context.new_page())
    host.goto(space["host_url"])
    host.locator("#hands", has_text="1").wait_for(timeout=5_000)
    page.locator("#hand").click()  # the hand button toggles: lower it again
    page.locator("#hand[aria-pressed='false']", has_text="Raise hand").wait_for()
    wait_until(
        lambda: fresh_state(audience_server, space["id"])["hands"] == 0 or None,
        5,
        "the lowered hand leaving the queue",
    )
    assert console.errors == [], console.failed


def test_audience_screenshots_show_count_reactions_and_hands(
    audience_server: Server, browser: Any, console: ConsoleWatch, screenshots: Path
) -> None:
    space = audience_server.create_space("Town hall: the future of the river bank")
    tickets = seed_listeners(audience_server, space["id"], CROWD)
    for emoji, crowd in (("👏", 9), ("❤️", 5), ("🔥", 3), ("😂", 1)):
        react_as(audience_server, space["id"], tickets[:crowd], emoji)
    for ticket in tickets[:3]:
        response = httpx.post(
            f"{audience_server.url}/api/v1/spaces/{space['id']}/hand",
            headers={"Authorization": f"Bearer {ticket}"},
        )
        assert response.status_code == 204, response.text
    for size, viewport in (("desktop", DESKTOP), ("mobile", MOBILE)):
        is_phone = size == "mobile"
        context = browser.new_context(viewport=viewport, is_mobile=is_phone, has_touch=is_phone)
        context.set_default_timeout(15_000)
        try:
            page = console.watch(context.new_page())
            page.goto(space["listen_url"])
            play_live(page)
            page.get_by_role("button", name="React with applause").click()
            page.wait_for_function(  # the crowd, and this page once its heartbeat is counted
                f"() => Number(document.getElementById('listeners').textContent) > {CROWD}",
                timeout=COUNT_VISIBLE_S * 1000 * 2,
            )
            assert page.inner_text("#listeners-error").startswith("±")
            page.locator("#tally .tally-item[data-emoji='❤️']").wait_for()
            page.click("details.count-info summary")
            if is_phone:  # the phone shows the raised hand, the desktop the button to raise it
                page.get_by_role("button", name="Raise hand").click()
                page.locator("#hand[aria-pressed='true']").wait_for()
            page.screenshot(path=screenshots / f"listen-audience-{size}.png", full_page=True)
            host = console.watch(context.new_page())
            host.goto(space["host_url"])
            host.locator("#hands", has_text="4" if is_phone else "3").wait_for()
            host.locator("#listeners-error", has_text="±").wait_for()
            host.screenshot(path=screenshots / f"host-audience-{size}.png", full_page=True)
        finally:
            context.close()
    assert console.errors == [], console.failed
