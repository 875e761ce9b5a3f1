"""A small join surge under attack, through a real nginx edge: a scheduled space with a voice in
its green room starts while listeners queue and junk arrives. The space goes live at the edge,
every listener is let in in turn and never above the bucket, no request gets a server error, and
the incident log counts exactly what the clients received.

The same run, scaled up and with proof-of-work, is `bench/surge.py`.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import ROOT, Server
from tests.e2e.conftest import Edge, EdgeDeployment

RATE, BURST = 4, 2
# joins sent this close together may reach the server in either order
SAME_MOMENT_S = 0.25
LISTENERS = 24
ARRIVALS_S = 1.5
FORGED_HEARTBEATS = 20
OVERSIZED_LEAVES = 6
RANDOM_PATHS = 10
# from one address, past the per-address join limit (30 a minute, counted by each of the two
# listener workers of an embedded server: at most 60 get through)
FLOOD_JOINS = 70
JOINS_PER_ADDRESS_LET_THROUGH = 2 * 30
FLOOD_ADDRESS = "127.66.0.9"
SLOW_CONNECTIONS = 5
FIRST_SEGMENT_S = 10.0
ADMIT_ALL_S = 60.0
LOGGED_S = 20.0


@dataclass
class Surge:
    statuses: Counter[str] = field(default_factory=Counter)
    admitted_at: list[float] = field(default_factory=list)
    # (when the first join was sent, the number in line it was given)
    numbers: list[tuple[float, int]] = field(default_factory=list)


@pytest.fixture(scope="module")
def edge_server_env() -> dict[str, str]:
    """The simulated sources are all on loopback: exempt no IPv4 address from the limits."""
    return {"ROSTRA_LIMITS_EXEMPT": "::1/128"}


def client_for(address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, timeout=15)


async def listener(index: int, join_url: str, surge: Surge, give_up: float) -> None:
    await asyncio.sleep(index * ARRIVALS_S / LISTENERS)
    body: dict[str, str] = {}
    async with client_for(f"127.30.{index}.1") as client:  # its own /24
        while time.monotonic() < give_up:
            sent_at = time.monotonic()
            response = await client.post(join_url, json=body or None)
            surge.statuses[f"listener:{response.status_code}"] += 1
            if response.status_code == 201:
                surge.admitted_at.append(time.monotonic())
                return
            assert response.status_code == 503, response.text
            problem = response.json()
            if not body:
                assert int(problem["position"]) >= 1, problem
                surge.numbers.append((sent_at, int(problem["number"])))
            body = {"arrival": problem["arrival"]}
            wait_s = float(response.headers["retry-after"]) * random.uniform(1.0, 1.5)
            await asyncio.sleep(wait_s)
        raise AssertionError(f"listener {index} was not admitted in {ADMIT_ALL_S} s")


async def junk(edge: str, port: int, space_id: str, surge: Surge) -> None:
    api = f"{edge}/api/v1/spaces/{space_id}"
    slow = [
        await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.67.0.{n + 1}", 0))
        for n in range(SLOW_CONNECTIONS)
    ]
    for _, writer in slow:
        writer.write(b"GET / HTTP/1.1\r\nHost: edge\r\n")
    async with client_for("127.67.1.1") as client:
        for n in range(FORGED_HEARTBEATS):
            beat = await client.post(
                f"{api}/heartbeat", headers={"Authorization": f"Bearer v1.forged{n}.AAAA"}
            )
            surge.statuses[f"forged:{beat.status_code}"] += 1
        for _ in range(OVERSIZED_LEAVES):
            big = await client.post(
                f"{api}/leave",
                # past the server's cap, inside the edge's 1 MB (the edge refuses more itself)
                content=b"{" + b" " * 500_000 + b"}",
                headers={"Content-Type": "application/json"},
            )
            surge.statuses[f"oversized:{big.status_code}"] += 1
        for n in range(RANDOM_PATHS):
            path = await client.get(f"{edge}/live/{n:x}zz{random.randrange(10**6)}/state.json")
            surge.statuses[f"random:{path.status_code}"] += 1
    async with client_for(FLOOD_ADDRESS) as client:
        for _ in range(FLOOD_JOINS):
            flood = await client.post(f"{api}/join")
            surge.statuses[f"flood:{flood.status_code}"] += 1
            if flood.status_code == 201:
                surge.admitted_at.append(time.monotonic())
    for _, writer in slow:
        writer.close()


async def first_segment(edge: str, space_id: str) -> float:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() - started < FIRST_SEGMENT_S:
            playlist = await client.get(f"{edge}/live/{space_id}/audio.m3u8")
            names = [line for line in playlist.text.splitlines() if line.endswith(".m4s")]
            if playlist.status_code == 200 and names:
                segment = await client.get(f"{edge}/live/{space_id}/{names[0]}")
                assert segment.status_code == 200
                assert segment.content
                return time.monotonic() - started
            await asyncio.sleep(0.1)
    raise AssertionError(f"no segment at the edge {FIRST_SEGMENT_S} s after the start")


async def surge_then_start(server: Server, edge: Edge, space_id: str) -> Surge:
    surge = Surge()
    join_url = f"{edge.url}/api/v1/spaces/{space_id}/join"
    give_up = time.monotonic() + ADMIT_ALL_S
    tasks = [
        asyncio.create_task(listener(index, join_url, surge, give_up)) for index in range(LISTENERS)
    ]
    tasks.append(asyncio.create_task(junk(edge.url, edge.port, space_id, surge)))
    await asyncio.sleep(1.0)
    started = await asyncio.to_thread(server.api, "POST", f"/api/v1/spaces/{space_id}/start")
    assert started.status_code == 200, started.text
    await first_segment(edge.url, space_id)
    await asyncio.gather(*tasks)
    return surge


def wait_for_green_room(server: Server, space_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = httpx.get(f"{server.url}/live/{space_id}/state.json", timeout=5).json()
        if state["stage"]:
            return
        time.sleep(0.3)
    raise AssertionError("the voice did not reach the green room")


def logged_totals(server: Server, space_id: str, expected: dict[str, int]) -> dict[str, int]:
    """The incident log's totals once it has caught up with what the clients received (each
    worker writes about once a second)."""
    deadline = time.monotonic() + LOGGED_S
    while True:
        report = server.api("GET", f"/api/v1/spaces/{space_id}/incident")
        assert report.status_code == 200, report.text
        totals: dict[str, int] = report.json()["totals"]
        caught_up = all(totals.get(key, 0) >= value for key, value in expected.items())
        if caught_up or time.monotonic() > deadline:
            return totals
        time.sleep(0.5)


def test_surge_under_attack_goes_live_admits_everyone_in_turn_and_is_logged_exactly(
    edge_deployment: EdgeDeployment,
) -> None:
    server, edge = edge_deployment.server, edge_deployment.edge
    space = server.create_space("Surge", live=False)
    defense = server.api(
        "PUT",
        f"/api/v1/spaces/{space['id']}/defense",
        json={"admission_rate": RATE, "admission_burst": BURST, "pow": "off"},
    )
    assert defense.status_code == 200, defense.text
    voice = subprocess.Popen(
        [sys.executable, "-m", "rostra", "speak", space["speaker_invite_url"], "--tone", "440"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_green_room(server, space["id"])
        surge = asyncio.run(surge_then_start(server, edge, space["id"]))
    finally:
        voice.terminate()
        voice.wait(timeout=15)
    statuses = surge.statuses
    assert statuses["listener:201"] == LISTENERS, statuses
    server_errors = {k: n for k, n in statuses.items() if k.split(":")[1][0] == "5"}
    assert set(server_errors) <= {"listener:503", "flood:503"}, statuses
    # later arrivals were given later numbers in the line: two joins sent within a moment of
    # each other may reach the two workers in either order, so only those may swap
    arrivals = sorted(surge.numbers)
    swapped = [
        (early, late)
        for i, early in enumerate(arrivals)
        for late in arrivals[i + 1 :]
        if late[0] - early[0] > SAME_MOMENT_S and late[1] <= early[1]
    ]
    assert not swapped, swapped[:5]
    assert len({number for _, number in arrivals}) == len(arrivals), arrivals
    times = sorted(surge.admitted_at)
    for start in range(len(times)):
        for end in range(start, len(times)):
            allowed = BURST + RATE * (times[end] - times[start]) + 1
            assert end - start + 1 <= allowed, f"{end - start + 1} admitted in a window"
    assert statuses["forged:401"] == FORGED_HEARTBEATS, statuses
    assert statuses["oversized:413"] == OVERSIZED_LEAVES, statuses
    assert statuses["flood:429"] >= FLOOD_JOINS - JOINS_PER_ADDRESS_LET_THROUGH, statuses
    expected = {
        "admitted": statuses["listener:201"] + statuses["flood:201"],
        "queued": statuses["listener:503"] + statuses["flood:503"],
        "bad-ticket": FORGED_HEARTBEATS,
        "rate-limited": statuses["flood:429"],
        "4xx:payload-too-large": OVERSIZED_LEAVES,
    }
    totals = logged_totals(server, space["id"], expected)
    assert {key: totals.get(key, 0) for key in expected} == expected, totals
    report = server.api("GET", f"/api/v1/spaces/{space['id']}/incident").json()
    top = report["top_prefixes"][0]
    assert top["prefix"] in ("127.66.0.0/24", "127.67.1.0/24"), report["top_prefixes"]
    assert report["origin"]["sampled_seconds"] > 0, report["origin"]
    assert report["origin"]["totals"].get("dropped_program_frames", 0) == 0, report["origin"]
    assert report["findings"]["is_broadcast_affected"] is False, report["findings"]
