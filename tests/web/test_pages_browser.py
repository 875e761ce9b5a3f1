"""The three pages in a real browser (Debian's Chromium through Playwright) against a real server:
a speaker's microphone reaches listeners, the listener page plays the program, the host page runs
the space, and every page fits desktop and mobile screens."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from scipy import signal

from tests.audio_check import SAMPLE_RATE_HZ, Audio, decode, rms_db
from tests.conftest import Server
from tests.web.conftest import ConsoleWatch, Speech

pytestmark = pytest.mark.browser

STAGE_TIMEOUT_MS = 20_000
CAPTURE_S = 8.0
# the part of the capture compared with the looping source (the capture's edges are left out)
COMPARE_FROM_S = 1.0
COMPARE_S = 4.0
MIN_CORRELATION = 0.5
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

    listener.goto(space["listen_url"])
    listener.locator("#status[data-status='live']").wait_for()
    listener.locator("#stage .member-name", has_text="Ada").wait_for()
    listener.click("#play")
    listener.wait_for_function(
        "document.getElementById('player').currentTime > 1", timeout=STAGE_TIMEOUT_MS
    )
    measured = listener.evaluate(MEASURE_PROGRAM_JS, 3)

    assert measured["advanced"] > 2.0, f"media time advanced only {measured['advanced']:.2f} s"
    assert measured["peak"] > 0.005, f"no audio energy while Ada talks: {measured}"
    assert listener.get_attribute("#play", "aria-label") == "Pause"
    assert listener.inner_text("#listeners") == "0"
    assert listener.inner_text("#stream-listeners").isdigit()
    assert listener.get_attribute("#aac-link", "href") == space["stream_url"]
    assert listener.get_attribute("#opus-link", "href") == space["opus_stream_url"]
    listener.screenshot(path=screenshots / "listen-playing-desktop.png", full_page=True)
    assert console.errors == [], console.failed


def test_listener_page_waits_for_scheduled_space_and_plays_once_live(
    web_server: Server, context: Any, console: ConsoleWatch
) -> None:
    response = web_server.api(
        "POST", "/api/v1/spaces", json={"title": "Later", "scheduled_at": "2030-01-01T18:00:00Z"}
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
        "document.getElementById('player').currentTime > 0.5", timeout=STAGE_TIMEOUT_MS
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
    listener.wait_for_function("document.getElementById('player').currentTime > 1")
    duration = float(listener.get_attribute("#seek-bar", "max") or 0)
    assert duration >= 3, f"the replay lasts {duration} s"
    listener.evaluate(
        """(t) => { const bar = document.getElementById('seek-bar');
        bar.value = String(t); bar.dispatchEvent(new Event('change')); }""",
        duration - 1,
    )
    listener.wait_for_function(f"document.getElementById('player').currentTime >= {duration - 1.5}")
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
