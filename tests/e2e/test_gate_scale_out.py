"""The gate scaled out: `rostra gate` workers on one real Redis give one honest count; bad tickets
never reach Redis; Redis going away freezes the count (stale) but never the gate or the program."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Server, free_port, start_server, stop_server
from tests.redis_server import RedisServer

LISTENERS = 10_000
# longer than joining them all takes on a loaded machine, so none slides out before the count
WINDOW_S = "300"
SIGMA = 0.0081  # HyperLogLog with 2**14 registers
CONCURRENCY = 64


def start_gate(
    redis_url: str, secret: str, *, workers: int = 1
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = dict(os.environ, ROSTRA_SIGNING_SECRET=secret, ROSTRA_PRESENCE_WINDOW=WINDOW_S)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rostra",
            "gate",
            "--redis",
            redis_url,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return url, process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"gate did not start: {process.stdout.read() if process.stdout else ''}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


async def join_and_beat(gates: list[str], space_id: str, count: int) -> None:
    """`count` listeners, each joining at one gate and heartbeating at another."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(client: httpx.AsyncClient, number: int) -> None:
        async with limit:
            joined = await client.post(
                f"{gates[number % len(gates)]}/api/v1/spaces/{space_id}/join"
            )
            assert joined.status_code == 201, joined.text
            ticket = joined.json()["ticket"]
            beat = await client.post(
                f"{gates[(number + 1) % len(gates)]}/api/v1/spaces/{space_id}/heartbeat",
                headers={"Authorization": f"Bearer {ticket}"},
            )
            assert beat.status_code in (200, 204), beat.text

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(one(client, n) for n in range(count)))


def wait_for_count(server: Server, space_id: str, at_least: int, timeout_s: float = 30) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    state: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        state = httpx.get(f"{server.url}/live/{space_id}/state.json").json()
        if state["listeners"] >= at_least and not state["stale"]:
            return state
        time.sleep(0.5)
    return state


def commandstats(redis: RedisServer) -> dict[str, int]:
    import redis as redis_client

    client = redis_client.Redis.from_url(redis.url)
    stats = client.info("commandstats")
    client.close()
    return {name: int(entry["calls"]) for name, entry in stats.items()}


def within_3_sigma(counted: int, truth: int) -> bool:
    return abs(counted - truth) <= 3 * SIGMA * truth + 1


def test_embedded_gate_counts_ten_thousand_listeners(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", extra_env={"ROSTRA_PRESENCE_WINDOW": WINDOW_S})
    try:
        space = server.create_space("Ten thousand, in process")
        asyncio.run(join_and_beat([server.url], space["id"], LISTENERS))
        state = wait_for_count(server, space["id"], int(LISTENERS * 0.95))
        assert within_3_sigma(state["listeners"], LISTENERS), state
        assert within_3_sigma(state["admitted"], LISTENERS), state
        assert state["error"] == pytest.approx(1.04 / math.sqrt(2**15), rel=0.05)
    finally:
        stop_server(server)


def test_two_gates_on_one_redis_give_one_count_and_bad_tickets_never_reach_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    origin = start_server(
        tmp_path / "data",
        extra_env={"ROSTRA_REDIS": redis_server.url, "ROSTRA_PRESENCE_WINDOW": WINDOW_S},
    )
    secret = (origin.data / "signing_secret").read_text().strip()
    gates = [start_gate(redis_server.url, secret), start_gate(redis_server.url, secret)]
    try:
        space = origin.create_space("Ten thousand, on Redis")
        urls = [url for url, _ in gates]
        asyncio.run(join_and_beat(urls, space["id"], LISTENERS))
        state = wait_for_count(origin, space["id"], int(LISTENERS * 0.95))
        assert within_3_sigma(state["listeners"], LISTENERS), state
        assert within_3_sigma(state["admitted"], LISTENERS), state

        import redis as redis_client

        client = redis_client.Redis.from_url(redis_server.url)
        keys = list(client.scan_iter(f"rostra:presence:{{{space['id']}}}:*"))
        used = sum(int(client.memory_usage(key) or 0) for key in keys)
        client.close()
        assert used < 160 * 1024, f"{used} bytes for {len(keys)} keys"

        time.sleep(0.5)
        before = commandstats(redis_server)
        forged = "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"
        for url in urls:
            for token in (forged, "junk", forged[:-1] + "B"):
                response = httpx.post(
                    f"{url}/api/v1/spaces/{space['id']}/heartbeat",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 401
        time.sleep(0.5)
        after = commandstats(redis_server)
        touched = {
            name: after[name] - before.get(name, 0)
            for name in after
            if after[name] != before.get(name, 0) and "pfadd" in name
        }
        assert touched == {}, f"bad tickets reached Redis: {touched}"
        assert math.isfinite(state["error"])
    finally:
        for _, process in gates:
            stop(process)
        stop_server(origin)


def test_redis_going_away_freezes_the_count_not_the_gate_or_the_program(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    origin = start_server(
        tmp_path / "data",
        # one listener worker: the frozen count is the one that worker read last
        extra_env={
            "ROSTRA_REDIS": redis_server.url,
            "ROSTRA_PRESENCE_WINDOW": WINDOW_S,
            "ROSTRA_WORKERS": "1",
        },
    )
    secret = (origin.data / "signing_secret").read_text().strip()
    gate_url, gate = start_gate(redis_server.url, secret)
    try:
        space = origin.create_space("Redis away")
        asyncio.run(join_and_beat([gate_url], space["id"], 50))
        # a HyperLogLog estimate of 50 listeners (49 or 51 when two ids share a register)
        wait_for_count(origin, space["id"], 48)
        time.sleep(2.0)  # every beat is in Redis: the worker's next reads give one figure
        counted = httpx.get(space["state_url"]).json()
        assert counted["stale"] is False, counted
        assert within_3_sigma(counted["listeners"], 50), counted

        redis_server.stop(is_abrupt=True)
        joined = httpx.post(f"{gate_url}/api/v1/spaces/{space['id']}/join")
        assert joined.status_code == 201, joined.text
        ticket = joined.json()["ticket"]
        beat = httpx.post(
            f"{gate_url}/api/v1/spaces/{space['id']}/heartbeat",
            headers={"Authorization": f"Bearer {ticket}"},
        )
        assert beat.status_code in (200, 204), beat.text
        time.sleep(1.5)
        frozen = httpx.get(space["state_url"]).json()
        assert frozen["stale"] is True, frozen
        assert frozen["listeners"] == counted["listeners"]
        playlist = httpx.get(space["hls_url"].replace("index.m3u8", "audio.m3u8"))
        first = playlist.text
        time.sleep(2.5)
        assert httpx.get(space["hls_url"].replace("index.m3u8", "audio.m3u8")).text != first, (
            "the program stopped while Redis was away"
        )

        redis_server.start()
        recovered = wait_for_count(origin, space["id"], 1, timeout_s=15)
        assert recovered["stale"] is False, recovered
    finally:
        stop(gate)
        stop_server(origin)
