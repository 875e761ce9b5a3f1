"""kill -9 of the origin in the middle of a broadcast, seen from real pages: the speaker page
publishes again by itself, and the listener page (hls.js) keeps playing without a reload and
hears the speaker again."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_server, stop_server
from tests.e2e.test_restart import origin_pid, wait_for_discontinuity
from tests.web.test_pages_browser import (
    MEASURE_PROGRAM_JS,
    STAGE_TIMEOUT_MS,
    join_stage,
    wait_until,
)

pytestmark = pytest.mark.browser

RESUME_TIMEOUT_S = 60


def stage_ids(server: Any, space_id: str) -> list[str]:
    state = server.api("GET", f"/live/{space_id}/state.json").json()
    return [member["id"] for member in state["stage"]]


def test_pages_ride_through_a_killed_origin(context: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        space = server.create_space("Origin crash, seen from the pages")
        speaker = context.new_page()
        join_stage(speaker, space["speaker_invite_url"], "Ada")
        wait_until(lambda: len(stage_ids(server, space["id"])) == 1, 10, "Ada on stage")
        [first_session] = stage_ids(server, space["id"])
        listener = context.new_page()
        listener.goto(space["listen_url"])
        listener.locator("#status[data-status='live']").wait_for()
        listener.click("#play")
        listener.wait_for_function(
            "() => document.getElementById('player').currentTime > 2", timeout=STAGE_TIMEOUT_MS
        )

        killed = origin_pid(server)
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        wait_for_discontinuity(f"{server.url}/live/{space['id']}/audio.m3u8")

        def speaker_back() -> bool:
            ids = stage_ids(server, space["id"])
            return len(ids) == 1 and ids[0] != first_session

        wait_until(speaker_back, RESUME_TIMEOUT_S, "the speaker page publishing again")
        assert speaker.locator("#panel-live").is_visible(), "the speaker page left the stage"
        assert speaker.get_attribute("#panel-live", "data-reconnecting") is None
        assert listener.evaluate("document.getElementById('player').paused") is False
        position = listener.evaluate("document.getElementById('player').currentTime")
        time.sleep(4)  # hls.js crosses the discontinuity and plays the new segments
        measured = listener.evaluate(MEASURE_PROGRAM_JS, 3)
        assert listener.evaluate("document.getElementById('player').currentTime") > position + 3
        assert measured["advanced"] > 2.0, f"playback stalled after the restart: {measured}"
        assert measured["peak"] > 0.005, f"Ada is not heard after the restart: {measured}"
        assert listener.url == space["listen_url"], "the listener page reloaded"
    finally:
        stop_server(server)
