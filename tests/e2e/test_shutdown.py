"""Ctrl-C ends live spaces cleanly with their recordings closed; kill -9 loses at most the
segment in flight, and a restart puts the space back on air."""

from __future__ import annotations

import io
import signal
import time
from pathlib import Path

import av
import httpx

from tests.conftest import start_server, stop_server


def wait_for_segments(url: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = httpx.get(url)
        if response.status_code == 200 and response.text.count("#EXTINF") >= count:
            return
        time.sleep(0.25)
    raise AssertionError(f"{url} never listed {count} segments")


def test_ctrl_c_ends_live_spaces_and_closes_recordings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    space = server.create_space("Interrupted")
    wait_for_segments(f"{server.url}/live/{space['id']}/audio.m3u8", 3)
    assert stop_server(server) == 0
    assert '"server stopped"' in server.log()
    media = data / "spaces" / space["id"]
    assert (media / "replay.m3u8").is_file()
    assert (media / "audio.m4a").is_file()
    assert "#EXT-X-ENDLIST" in (media / "audio.m3u8").read_text()

    again = start_server(data)
    try:
        state = httpx.get(space["state_url"].replace(server.url, again.url)).json()
        assert state["status"] == "ended"
        replay = httpx.get(f"{again.url}/replay/{space['id']}/index.m3u8")
        assert replay.status_code == 200
        assert "#EXT-X-ENDLIST" in replay.text
    finally:
        stop_server(again)


def test_kill_9_keeps_the_recording_and_restart_resumes_the_program(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    space = server.create_space("Crash")
    wait_for_segments(f"{server.url}/live/{space['id']}/audio.m3u8", 4)
    media = data / "spaces" / space["id"]
    before = sorted(media.glob("seg_*.m4s"))
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    after_kill = sorted(media.glob("seg_*.m4s"))
    assert len(after_kill) >= len(before)
    init = (media / "init.mp4").read_bytes()
    for segment in after_kill:  # a killed writer leaves whole segments only, never a torn one
        with av.open(io.BytesIO(init + segment.read_bytes())) as container:
            samples = sum(frame.samples for frame in container.decode(audio=0))
        assert samples >= 47 * 1024, f"{segment.name} decodes to {samples} samples"

    again = start_server(data)
    try:
        playlist_url = f"{again.url}/live/{space['id']}/audio.m3u8"
        wait_for_segments(playlist_url, 2)
        assert again.api("POST", f"/api/v1/spaces/{space['id']}/end").status_code == 200
        numbers = sorted(int(p.stem[4:]) for p in media.glob("seg_*.m4s"))
        assert numbers == list(range(numbers[-1] + 1)), numbers
        assert numbers[-1] >= len(after_kill) + 1, "the program did not resume after restart"
        replay = httpx.get(f"{again.url}/replay/{space['id']}/index.m3u8").text
        assert replay.count("#EXTINF") == len(numbers)
    finally:
        stop_server(again)
