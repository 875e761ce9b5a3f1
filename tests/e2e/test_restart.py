"""Restarts keep a space live: SIGTERM and a new start continue it, kill -9 of the origin is
repaired by the supervisor while listener workers keep serving, kill -9 of everything loses at
most the segment in flight; only `space end` ends a space, and then the live playlist closes."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import time
from datetime import datetime
from pathlib import Path

import av
import httpx

from tests.conftest import Server, start_server, stop_server

ORIGIN_RESTART_S = 2.0


def wait_for_segments(url: str, count: int, *, timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(url)
        if response.status_code == 200 and response.text.count("#EXTINF") >= count:
            return response.text
        time.sleep(0.2)
    raise AssertionError(f"{url} never listed {count} segments")


def media_sequence(playlist: str) -> int:
    match = re.search(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)$", playlist, re.MULTILINE)
    assert match, playlist
    return int(match.group(1))


def program_date_times(playlist: str) -> list[datetime]:
    stamps = re.findall(r"^#EXT-X-PROGRAM-DATE-TIME:(.+)$", playlist, re.MULTILINE)
    return [datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in stamps]


def wait_for_discontinuity(url: str, *, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(url)
        text = response.text
        if response.status_code == 200 and "#EXT-X-DISCONTINUITY\n" in text:
            after = text.split("#EXT-X-DISCONTINUITY\n", 1)[1]
            if after.count("#EXTINF") >= 2:
                return text
        time.sleep(0.2)
    raise AssertionError(f"{url} never continued after a discontinuity")


def children(pid: int) -> dict[int, str]:
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if int(fields.get("PPid", "0").strip()) == pid:
            found[int(status.parent.name)] = cmdline
    return found


def origin_pid(server: Server) -> int | None:
    for pid, cmdline in children(server.process.pid).items():
        if "rostra.web.processes origin" in cmdline:
            return pid
    return None


def port_closes(port: int, timeout_s: float = 10) -> bool:
    """Children follow a killed supervisor (they are told when their parent dies)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return True
        time.sleep(0.2)
    return False


def assert_whole_segments(media: Path) -> list[int]:
    init = (media / "init.mp4").read_bytes()
    numbers = sorted(int(p.stem[4:]) for p in media.glob("seg_*.m4s"))
    for number in numbers:
        segment = (media / f"seg_{number:06d}.m4s").read_bytes()
        with av.open(io.BytesIO(init + segment)) as container:
            samples = sum(frame.samples for frame in container.decode(audio=0))
        # a stop cuts the segment in flight: it may be short, never torn
        assert samples >= 1024, f"segment {number} decodes to {samples} samples"
    assert numbers == list(range(numbers[-1] + 1)), f"the recording has a hole: {numbers}"
    return numbers


def test_sigterm_keeps_spaces_live_and_the_next_start_continues_the_playlist(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    space = server.create_space("Restarted")
    playlist_path = f"/live/{space['id']}/audio.m3u8"
    before = wait_for_segments(server.url + playlist_path, 3)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    media = data / "spaces" / space["id"]
    assert "#EXT-X-ENDLIST" not in (media / "audio.m3u8").read_text()
    assert not (media / "replay.m3u8").exists()

    again = start_server(data, port=int(server.url.rsplit(":", 1)[1]), whip_port=server.whip_port)
    try:
        assert httpx.get(again.url + f"/live/{space['id']}/state.json").json()["status"] == "live"
        continued = wait_for_discontinuity(again.url + playlist_path)
        assert media_sequence(continued) >= media_sequence(before)
        stamps = program_date_times(continued)
        assert len(stamps) >= 2, continued
        assert stamps == sorted(stamps), f"PROGRAM-DATE-TIME went back:\n{continued}"
        last_live = wait_for_segments(again.url + playlist_path, 4)
        assert again.api("POST", f"/api/v1/spaces/{space['id']}/end").status_code == 200
        final = httpx.get(again.url + playlist_path).text
        assert final.rstrip().endswith("#EXT-X-ENDLIST"), final
        assert "#EXT-X-PLAYLIST-TYPE" not in final, "RFC 8216 6.2.1: a live playlist stays live"
        assert media_sequence(final) >= media_sequence(last_live)
        replay = httpx.get(again.url + f"/replay/{space['id']}/index.m3u8").text
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in replay
        numbers = assert_whole_segments(media)
        assert replay.count("#EXTINF") == len(numbers)
    finally:
        stop_server(again)


def test_kill_9_of_the_origin_is_repaired_while_listeners_are_served(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        space = server.create_space("Origin crash")
        playlist_url = f"{server.url}/live/{space['id']}/audio.m3u8"
        before = wait_for_segments(playlist_url, 3)
        killed = origin_pid(server)
        assert killed is not None, children(server.process.pid)
        killed_at = time.monotonic()
        os.kill(killed, signal.SIGKILL)
        served_meanwhile = []
        restarted_after_s = None
        while time.monotonic() - killed_at < 10:
            served_meanwhile.append(httpx.get(space["state_url"]).status_code)
            served_meanwhile.append(httpx.get(playlist_url).status_code)
            pid = origin_pid(server)
            if pid is not None and pid != killed and restarted_after_s is None:
                restarted_after_s = time.monotonic() - killed_at
                break
            time.sleep(0.05)
        assert restarted_after_s is not None, "the origin did not come back within 10 s"
        assert restarted_after_s <= ORIGIN_RESTART_S, f"the origin took {restarted_after_s} s"
        assert set(served_meanwhile) == {200}, served_meanwhile
        continued = wait_for_discontinuity(playlist_url)
        assert media_sequence(continued) >= media_sequence(before)
        stamps = program_date_times(continued)
        assert stamps == sorted(stamps), f"PROGRAM-DATE-TIME went back:\n{continued}"
        health = httpx.get(f"{server.url}/healthz")
        assert health.status_code == 200, health.text
        assert '"process died; restarting"' in server.log()
        assert_whole_segments(tmp_path / "data" / "spaces" / space["id"])
    finally:
        stop_server(server)


def worker_pids(server: Server) -> list[int]:
    return [
        pid
        for pid, cmdline in children(server.process.pid).items()
        if "rostra.web.processes worker" in cmdline
    ]


def test_kill_9_of_a_listener_worker_is_repaired_and_its_files_forgotten(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    run_dir = tmp_path / "data" / "run"
    try:
        workers = worker_pids(server)
        assert len(workers) == 2, children(server.process.pid)
        killed = workers[0]
        deadline = time.monotonic() + 10
        while not (run_dir / f"metrics-{killed}.prom").exists():
            assert time.monotonic() < deadline, sorted(p.name for p in run_dir.iterdir())
            time.sleep(0.1)
        os.kill(killed, signal.SIGKILL)
        statuses = []
        while time.monotonic() < deadline:
            statuses.append(httpx.get(f"{server.url}/healthz").status_code)
            now = worker_pids(server)
            if len(now) == 2 and killed not in now:
                break
            time.sleep(0.05)
        assert killed not in worker_pids(server), "the killed worker was not replaced in 10 s"
        assert set(statuses) == {200}, "the other worker did not serve meanwhile"
        left = sorted(p.name for p in run_dir.glob(f"*-{killed}.*"))
        assert left == [], f"the dead worker's files stay: {left}"
    finally:
        stop_server(server)


def test_kill_9_of_the_server_keeps_whole_segments_and_a_start_resumes_the_program(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    space = server.create_space("Crash")
    wait_for_segments(f"{server.url}/live/{space['id']}/audio.m3u8", 4)
    media = data / "spaces" / space["id"]
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    for port in (int(server.url.rsplit(":", 1)[1]), server.whip_port):
        assert port_closes(port), f"a child of the killed server still listens on {port}"
    after_kill = assert_whole_segments(media)

    again = start_server(data)
    try:
        wait_for_discontinuity(f"{again.url}/live/{space['id']}/audio.m3u8")
        assert again.api("POST", f"/api/v1/spaces/{space['id']}/end").status_code == 200
        numbers = assert_whole_segments(media)
        assert numbers[-1] >= after_kill[-1] + 2, "the program did not resume after restart"
        replay = httpx.get(f"{again.url}/replay/{space['id']}/index.m3u8").text
        assert replay.count("#EXTINF") == len(numbers)
    finally:
        stop_server(again)
