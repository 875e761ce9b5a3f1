"""Moderation in Chromium: the host's moderation panel mutes, locks and blocks a speaker, and the
speaker's page shows "Muted by the host or a co-host" (with Unmute unless locked) within about 2 s;
a listener blocked by their raised hand is told at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Server
from tests.stage_api import mint, stage
from tests.web.conftest import ConsoleWatch

STAGE_TIMEOUT_MS = 20_000
# the speak page polls state.json every 1.5 s (jittered 15 %), which is cacheable for 1 s
SHOWN_WITHIN_S = 3.0
MOBILE = {"width": 390, "height": 844}


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        time.sleep(0.2)


def test_speaker_page_shows_the_hosts_mute_and_lock_and_a_block_keeps_the_device_out(
    web_server: Server, context: Any, console: ConsoleWatch, screenshots: Path
) -> None:
    space = web_server.create_space("Moderated")
    # a personal invite: its speaker may lift a mute that is not locked (a shared link's may not)
    invite = mint(web_server, space["id"], name="Ada")
    host = console.watch(context.new_page())
    host.goto(space["host_url"])
    speaker = console.watch(context.new_page())
    speaker.goto(invite["speaker_invite_url"])
    speaker.fill("#name", "Ada")
    speaker.click("#join")
    speaker.locator("#panel-live").wait_for(state="visible", timeout=STAGE_TIMEOUT_MS)
    row = host.locator("#moderation-list .moderation-item", has_text="Ada")
    row.wait_for(timeout=10_000)

    row.get_by_role("button", name="Mute Ada", exact=True).click()
    started = time.monotonic()
    notice = speaker.locator("#host-mute", has_text="Muted by the host")
    notice.wait_for(timeout=10_000)
    shown_s = time.monotonic() - started
    print(f"\nspeak page showed the host's mute {shown_s:.2f} s after the click")  # noqa: T201
    assert shown_s < SHOWN_WITHIN_S
    assert stage(web_server, space["id"])[0]["muted"] is True
    speaker.screenshot(path=str(screenshots / "speak-muted-1280.png"), full_page=True)

    speaker.locator("#host-mute").get_by_role("button", name="Unmute").click()
    notice.wait_for(state="hidden", timeout=10_000)
    # state.json trails the origin by a second or two; the notice stays hidden meanwhile
    wait_until(lambda: stage(web_server, space["id"])[0]["muted"] is False)
    assert notice.is_hidden()

    host.locator("#moderation-list .moderation-item", has_text="Ada").get_by_role(
        "button", name="Lock Ada muted: they cannot unmute themselves"
    ).click()
    locked = speaker.locator("#host-mute", has_text="only the host or a co-host can unmute you")
    locked.wait_for(timeout=10_000)
    assert speaker.locator("#host-mute button").is_hidden()
    speaker.set_viewport_size(MOBILE)
    speaker.screenshot(path=str(screenshots / "speak-locked-390.png"), full_page=True)
    host.screenshot(path=str(screenshots / "host-moderation-1280.png"), full_page=True)
    host.set_viewport_size(MOBILE)
    host.screenshot(path=str(screenshots / "host-moderation-390.png"), full_page=True)

    host.once("dialog", lambda dialog: dialog.accept())
    host.locator("#moderation-list .moderation-item", has_text="Ada").get_by_role(
        "button", name="Block Ada for the rest of the space"
    ).click()
    speaker.locator("#join-message", has_text="no longer on the stage").wait_for(timeout=15_000)
    speaker.click("#join")  # the same browser (device), its invite revoked: refused
    speaker.locator("#join-message").filter(has_text="host").wait_for(timeout=10_000)

    host.locator(".moderation-log summary").click()
    entries = host.locator(".moderation-entries li")
    entries.filter(has_text="blocked Ada").wait_for(timeout=10_000)
    assert entries.filter(has_text="muted and locked Ada").count() == 1
    unexpected = [e for e in console.errors if "403" not in e]
    assert unexpected == [], console.failed  # only the blocked speaker's refused join (403)


def test_a_listener_blocked_by_their_hand_is_told_at_once_and_their_hand_goes_down(
    web_server: Server, context: Any, console: ConsoleWatch, screenshots: Path
) -> None:
    space = web_server.create_space("Blocked hand")
    api = f"/api/v1/spaces/{space['id']}"
    listener = console.watch(context.new_page())
    listener.goto(space["listen_url"])
    listener.locator("#status[data-status='live']").wait_for()
    listener.click("#play")
    listener.wait_for_function("() => document.getElementById('player').currentTime > 1")
    listener.click("#hand")
    listener.locator("#hand[aria-pressed='true']").wait_for()
    (hand,) = web_server.api("GET", f"{api}/hands").json()["hands"]

    blocked = web_server.api("POST", f"{api}/blocks", json={"hand": hand["hand"]})
    assert blocked.status_code == 200, blocked.text
    started = time.monotonic()
    # the page asks about its hand every second: the refused ticket leads to a refused join
    listener.locator("#message", has_text="blocked this browser").wait_for(timeout=10_000)
    shown_s = time.monotonic() - started
    print(f"\nlisten page showed the block {shown_s:.2f} s after it")  # noqa: T201
    assert shown_s < SHOWN_WITHIN_S
    assert listener.get_attribute("#hand", "aria-pressed") == "false"
    assert listener.locator("#hand").is_disabled()
    assert listener.locator(".reaction").first.is_disabled()
    assert listener.get_by_text("Your hand is up").count() == 0  # no longer true
    listener.set_viewport_size(MOBILE)
    listener.screenshot(path=str(screenshots / "listen-blocked-390.png"), full_page=True)
    # the keeper asks the gate no more: no join or hand poll after the refusal
    refused = len(console.failed)
    time.sleep(2.5)
    assert len(console.failed) == refused, console.failed[refused:]
    assert [e for e in console.errors if "403" not in e] == [], console.failed
