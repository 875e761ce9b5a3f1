"""The co-host's page and the Clip button, in Chromium against a real `rostra serve`.

A co-host's invite link opens the speak page, which sees the co-host claim and also mounts the
raised-hands queue and the moderation panel: the co-host speaks (fake microphone), invites a raised
hand, mutes a speaker, and is offered no action on the host or on themselves. A listener with a
ticket and the host clip the recording from their pages and get the clip's link; a host clipping
too fast is told so."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server
from tests.stage_api import stage, wait_for_stage
from tests.web.conftest import ConsoleWatch

SHOTS = Path("/tmp/s11pages")
MOBILE = {"width": 390, "height": 844}
STAGE_TIMEOUT_MS = 20_000
CLIP_S = 5  # the shortest clip the API takes: the test does not wait 30 s of recording
# the button's own length, shortened for the test
SHORTEN_JS = f"() => {{ document.getElementById('clip').dataset.durationS = '{CLIP_S}'; }}"


def shoot(page: Any, name: str) -> None:
    """A full-page screenshot at 1280 and at 390 px wide, back to 1280 after."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    page.set_viewport_size(MOBILE)
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def play_until_counted(listener: Any) -> None:
    listener.locator("#status[data-status='live']").wait_for()
    listener.click("#play")
    listener.wait_for_function("() => document.getElementById('player').currentTime > 1")


def test_cohost_link_opens_a_page_that_speaks_invites_a_hand_and_mutes_a_speaker(
    web_server: Server, context: Any, console: ConsoleWatch
) -> None:
    space = web_server.create_space("Co-hosted")
    sid = space["id"]
    minted = web_server.api(
        "POST", f"/api/v1/spaces/{sid}/invites", json={"role": "cohost", "name": "Cat"}
    )
    assert minted.status_code == 201, minted.text
    host = console.watch(context.new_page())
    host.goto(space["host_url"])
    host.click("#join")
    host.locator("#panel-live").wait_for(state="visible", timeout=STAGE_TIMEOUT_MS)
    speaker = console.watch(context.new_page())
    speaker.goto(space["speaker_invite_url"])
    assert speaker.locator("#hand-queue").count() == 0  # a speaker's page runs nothing
    assert speaker.locator("#moderation-list").count() == 0
    speaker.fill("#name", "Sam")
    speaker.click("#join")
    speaker.locator("#panel-live").wait_for(state="visible", timeout=STAGE_TIMEOUT_MS)

    cohost = console.watch(context.new_page())
    cohost.goto(minted.json()["speaker_invite_url"])
    cohost.locator("#header-note", has_text="co-host").wait_for()
    cohost.fill("#name", "Cat")
    cohost.click("#join")
    cohost.locator("#panel-live").wait_for(state="visible", timeout=STAGE_TIMEOUT_MS)
    roles = {m["name"]: m["role"] for m in wait_for_stage(web_server, sid, 3)}
    assert roles == {"Host": "host", "Sam": "speaker", "Cat": "cohost"}

    rows = cohost.locator("#moderation-list .moderation-item")
    rows.filter(has_text="Sam").wait_for()

    listener = console.watch(context.new_page())
    listener.goto(space["listen_url"])
    play_until_counted(listener)
    listener.click("#hand")
    listener.locator("#hand[aria-pressed='true']").wait_for()
    invite = cohost.locator("#hand-queue button", has_text="Invite to speak")
    invite.wait_for(timeout=10_000)
    shoot(cohost, "cohost-hand-raised")
    invite.click()
    cohost.locator("#hand-queue button", has_text="Invited").wait_for()
    listener.locator("#stage-join").wait_for(state="visible", timeout=10_000)
    shoot(listener, "listen-invited-to-stage")

    rows.filter(has_text="Sam").get_by_role("button", name="Mute Sam", exact=True).click()
    speaker.locator("#host-mute", has_text="Muted by the host or a co-host").wait_for(
        timeout=10_000
    )
    assert next(m for m in stage(web_server, sid) if m["name"] == "Sam")["muted"] is True
    # Sam came in on the shared link: lifting the mute is refused, and the page says whom to ask
    speaker.locator("#host-mute button").click()
    speaker.locator("#host-mute", has_text="This link is shared: ask the host").wait_for()
    assert speaker.locator("#host-mute button").is_hidden()
    # the panel (fresh after the mute) offers actions on the speaker only: never on the host,
    # nor on a co-host (this one)
    assert rows.count() == 1, rows.all_inner_texts()
    assert cohost.locator("#moderation-list", has_text="Cat").count() == 0
    assert cohost.locator("#moderation-list", has_text="Host").count() == 0
    assert cohost.locator("#stage li", has_text="Host").locator("button").count() == 0
    cohost.locator(".moderation-log summary").click()
    cohost.locator(".moderation-entries li", has_text="muted Sam").wait_for(timeout=10_000)
    shoot(cohost, "cohost-muted-speaker")
    shoot(speaker, "speak-muted-by-cohost")
    shoot(host, "host-with-cohost")
    # only the shared link's refused unmute (403)
    assert [line for line in console.failed if "/mute" not in line] == []
    assert len(console.errors) == 1, console.errors
    # the end closes the co-host's connection before state.json says so: the page tells the end,
    # not a removal
    assert web_server.api("POST", f"/api/v1/spaces/{sid}/end").status_code == 200
    cohost.locator("#join-message", has_text="This space has ended").wait_for(timeout=10_000)
    assert cohost.locator("#join-message", has_text="removed you").count() == 0


def test_clip_button_gives_a_listener_and_the_host_the_clips_link(
    web_server: Server, context: Any, console: ConsoleWatch
) -> None:
    space = web_server.create_space("Clipped")
    started = time.monotonic()
    host = console.watch(context.new_page())
    host.goto(space["host_url"])
    listener = console.watch(context.new_page())
    listener.goto(space["listen_url"])
    play_until_counted(listener)
    # the recording must hold a whole clip (the program records from the start)
    time.sleep(max(0.0, CLIP_S + 2 - (time.monotonic() - started)))

    button = listener.locator("#clip")
    button.wait_for(state="visible")  # the page has its ticket now
    assert button.inner_text() == "Clip the last 30 s"
    listener.evaluate(SHORTEN_JS)
    button.click()
    link = listener.locator(".clip-result .clip-open")
    link.wait_for(timeout=15_000)
    page_url = link.get_attribute("href") or ""
    assert f"/clips/{space['id']}" in page_url
    assert listener.locator(".clip-result input").input_value() == page_url
    assert httpx.get(page_url, timeout=10).status_code == 200
    shoot(listener, "listen-clip")

    host_button = host.locator("#clip")
    host_button.wait_for(state="visible")
    host.evaluate(SHORTEN_JS)
    for made in range(1, 4):  # three a minute are allowed
        host_button.click()
        host.locator(".clip-result .clip-link").nth(made - 1).wait_for(timeout=15_000)
    host_button.click()
    host.locator(".clip-box .notice", has_text="Too many clips for now: ").wait_for()
    shoot(host, "host-clip-limited")
    assert [e for e in console.errors if "429" not in e] == [], console.failed
