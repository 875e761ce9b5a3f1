"""A scheduled space in Chromium: the listen page counts down to the start in the listener's own
time zone and offers the calendar event; when the host starts the space, every waiting page turns
live without a reload and plays, and their first joins spread over the jitter window instead of
landing in the same second."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.web.conftest import ARTIFACTS, CHROMIUM

pytestmark = pytest.mark.browser

WAITING_PAGES = 8
# countdown.js's window: each waiting page joins a uniform random moment within it
JITTER_WINDOW_S = 5.0
# from a page seeing `live` in state.json to its join request, beyond the jitter (timers, fetch)
JOIN_SLACK_S = 0.7
# the least spread of the 8 delays: uniform over 5 s, a range under 1 s has odds below 1e-4
MIN_DELAY_SPREAD_S = 1.0
LISTENER_ZONE = "America/New_York"
PLAYING_TIMEOUT_MS = 30_000
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]

# Runs in each page before its scripts: the wall-clock moments (ms) it first read `live` in
# state.json and first asked to join, seen from inside the page.
RECORD_JS = """
(() => {
  window.rostraSeen = { liveAt: null, joinAt: null, joins: 0 };
  const original = window.fetch;
  window.fetch = async (input, options = {}) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.endsWith('/join') && (options.method || 'GET') === 'POST') {
      window.rostraSeen.joins += 1;
      if (window.rostraSeen.joinAt === null) window.rostraSeen.joinAt = Date.now();
    }
    const response = await original(input, options);
    if (url.includes('/state.json') && window.rostraSeen.liveAt === null) {
      response.clone().json().then((state) => {
        if (state.status === 'live' && window.rostraSeen.liveAt === null) {
          window.rostraSeen.liveAt = Date.now();
        }
      }, () => {});
    }
    return response;
  };
})();
"""


@pytest.fixture(scope="module")
def schedule_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("scheduled") / "data")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail("Chromium is needed: `make system-test-deps` installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        yield chromium
        chromium.close()


def schedule_space(server: Server, starts_at: datetime) -> dict[str, Any]:
    body = {"title": "Friday night, live", "scheduled_at": starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    response = server.api("POST", "/api/v1/spaces", json=body)
    assert response.status_code == 201, response.text
    space: dict[str, Any] = response.json()
    return space


def local_clock_text(moment: datetime, zone: str) -> str:
    """How en-US writes the minute of `moment` in `zone` ("7:05 PM")."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def open_listener(browser: Any, url: str, *, viewport: dict[str, int] = DESKTOP) -> Any:
    context = browser.new_context(viewport=viewport, timezone_id=LISTENER_ZONE, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.add_init_script(RECORD_JS)
    page.goto(url)
    page.evaluate("() => { window.rostraLoadedOnce = true; }")  # gone if the page reloads
    return page


def test_scheduled_page_counts_down_turns_live_by_itself_and_spreads_first_joins(
    schedule_server: Server, browser: Any
) -> None:
    # 61 min 20 s ahead: the line reads "61 minutes" for the first seconds of the test
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1, minutes=1, seconds=20)
    space = schedule_space(schedule_server, starts_at)
    listeners = [open_listener(browser, space["listen_url"]) for _ in range(WAITING_PAGES)]
    idle = open_listener(browser, space["listen_url"], viewport=MOBILE)  # never presses play
    first = listeners[0]

    first.locator("#countdown").wait_for(state="visible")
    assert first.get_attribute("#status", "data-status") == "scheduled"
    assert first.inner_text("#countdown-line") == "Starts in 61 minutes"
    assert first.inner_text("#countdown-hours") == "01"
    assert first.inner_text("#countdown-minutes") == "01"
    assert first.is_hidden("#countdown-days-cell")
    when = first.inner_text("#countdown-when")
    assert local_clock_text(starts_at, LISTENER_ZONE) in when, when
    assert when.endswith(("EST", "EDT")), when
    assert first.get_attribute("#countdown-when", "datetime") == starts_at.isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")
    seconds = first.inner_text("#countdown-seconds")
    first.wait_for_function(
        "(s) => document.getElementById('countdown-seconds').textContent !== s", arg=seconds
    )
    calendar = first.get_attribute("#calendar", "href")
    assert calendar == f"/live/{space['id']}/event.ics"
    event = httpx.get(schedule_server.url + calendar, timeout=10)
    assert event.status_code == 200, event.text
    assert f"DTSTART:{starts_at:%Y%m%dT%H%M%S}Z" in event.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    first.screenshot(path=ARTIFACTS / "listen-scheduled-desktop.png", full_page=True)
    idle.locator("#countdown").wait_for(state="visible")
    idle.screenshot(path=ARTIFACTS / "listen-scheduled-mobile.png", full_page=True)

    for page in listeners:
        page.click("#play")
        page.locator("#play-label", has_text="Waiting").wait_for()
    host = browser.new_context(viewport=DESKTOP).new_page()
    host.goto(space["host_url"])
    host.click("#start")
    host.locator("#status[data-status='live']").wait_for()

    for page in [*listeners, idle]:
        page.locator("#status[data-status='live']").wait_for(timeout=10_000)
        assert page.is_hidden("#countdown")
    for page in listeners:
        page.wait_for_function(
            "() => document.getElementById('player').currentTime > 0.5",
            timeout=PLAYING_TIMEOUT_MS,
        )
    seen = [page.evaluate("() => window.rostraSeen") for page in listeners]
    assert all(page.evaluate("() => window.rostraLoadedOnce === true") for page in listeners)
    assert idle.evaluate("() => window.rostraLoadedOnce && window.rostraSeen.joins") == 0
    assert all(s["joins"] == 1 and s["liveAt"] and s["joinAt"] for s in seen), seen
    delays_s = sorted((s["joinAt"] - s["liveAt"]) / 1000 for s in seen)
    joins_s = sorted(s["joinAt"] / 1000 for s in seen)
    spread_s = joins_s[-1] - joins_s[0]
    print(f"delays after seeing live (s): {[round(d, 2) for d in delays_s]}")  # noqa: T201
    print(f"first joins spread over {spread_s:.2f} s")  # noqa: T201
    assert delays_s[0] >= 0
    assert delays_s[-1] <= JITTER_WINDOW_S + JOIN_SLACK_S, delays_s
    assert delays_s[-1] - delays_s[0] >= MIN_DELAY_SPREAD_S, delays_s
    assert spread_s >= MIN_DELAY_SPREAD_S, joins_s
    for page in [*listeners, idle, host]:
        page.context.close()
