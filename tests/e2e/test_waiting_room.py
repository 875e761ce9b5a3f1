"""The waiting room through a real `rostra serve` (two listener workers, one shared bucket): a
join surge past a space's admission rate waits in line, is admitted first come first served and
never faster than the bucket; queue.json and state.json tell the same line; and the listener
page plays the program while it waits to be counted."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, ROOT, Server, free_port, start_server, stop_server
from tests.e2e.conftest import NGINX, start_edge, stop_edge
from tests.web import conftest as web
from tests.web.conftest import ConsoleWatch

# the browser tests' fixtures (Debian's Chromium through Playwright), used here too
browser, speech, context, console = web.browser, web.speech, web.context, web.console
screenshots = web.screenshots

RATE = 4.0
BURST = 2
SURGE = 20
DRAIN_TIMEOUT_S = 40.0
# the defence is cached about a second per worker
DEFENSE_CACHE_S = 1.1


@pytest.fixture(scope="module")
def line_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("waiting-room") / "data")
    yield running
    stop_server(running)


def defend_with_cli(server: Server, space_id: str, *args: str) -> dict[str, Any]:
    env = dict(os.environ, ROSTRA_ADMIN_TOKEN=ADMIN_TOKEN)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rostra",
            "space",
            "defend",
            space_id,
            *args,
            "--server",
            server.url,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    defense: dict[str, Any] = json.loads(done.stdout)
    return defense


def slug(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


def retry_until_admitted(url: str, first: httpx.Response, t0: float) -> tuple[float, int, str]:
    """As the page does: wait Retry-After x U(1, 1.5), join again with the arrival token."""
    rng = random.Random(first.json()["number"])
    answer = first
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    with httpx.Client(timeout=10) as client:
        while answer.status_code == 503:
            assert time.monotonic() < deadline, "still in line"
            problem = answer.json()
            time.sleep(float(answer.headers["Retry-After"]) * rng.uniform(1.0, 1.5))
            answer = client.post(url, json={"arrival": problem["arrival"]})
            number, arrival = problem["number"], problem["arrival"]
        assert answer.status_code == 201, answer.text
        return time.monotonic() - t0, number, arrival


def line_now(server: Server, space_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    queue = httpx.get(f"{server.url}/live/{space_id}/queue.json")
    assert queue.status_code == 200, queue.text
    assert queue.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=1"
    state = httpx.get(f"{server.url}/live/{space_id}/state.json")
    return queue.json(), state.json()


def test_surge_waits_in_line_and_is_admitted_in_arrival_order_never_above_the_bucket(
    line_server: Server,
) -> None:
    space_id = line_server.create_space("A surge")["id"]
    defense = defend_with_cli(
        line_server, space_id, "--admission-rate", str(RATE), "--admission-burst", str(BURST)
    )
    assert defense == {"pow": "off", "admission_rate": RATE, "admission_burst": BURST}
    time.sleep(DEFENSE_CACHE_S)
    url = f"{line_server.url}/api/v1/spaces/{space_id}/join"

    t0 = time.monotonic()
    with httpx.Client(timeout=10) as client:
        answers = [client.post(url) for _ in range(SURGE)]
    surge_s = time.monotonic() - t0
    first_admitted = sum(1 for answer in answers if answer.status_code == 201)
    in_line = [answer for answer in answers if answer.status_code != 201]
    assert BURST <= first_admitted <= BURST + RATE * surge_s
    assert {answer.status_code for answer in in_line} == {503}
    assert {slug(answer) for answer in in_line} == {"waiting-room"}
    assert all(int(answer.headers["Retry-After"]) >= 1 for answer in in_line)
    problems = [answer.json() for answer in in_line]
    numbers = [problem["number"] for problem in problems]
    assert numbers == list(range(first_admitted + 1, SURGE + 1))
    positions = [problem["position"] for problem in problems]
    assert positions == sorted(positions)
    assert positions[-1] >= SURGE - first_admitted - RATE * surge_s

    queue, state = line_now(line_server, space_id)
    assert queue["arrivals"] == SURGE
    assert (queue["rate"], queue["burst"]) == (RATE, BURST)
    assert queue["waiting"] == SURGE - queue["admitted_watermark"]
    # read a moment apart: the line moved at most by the rate meanwhile
    assert abs(state["waiting"] - queue["waiting"]) <= 1 + RATE
    assert state["waiting"] > 0

    forged = problems[0]["arrival"][:-2] + (
        "AA" if not problems[0]["arrival"].endswith("AA") else "BB"
    )
    refused = httpx.post(url, json={"arrival": forged})
    assert (refused.status_code, slug(refused)) == (401, "arrival-invalid")

    with ThreadPoolExecutor(len(in_line)) as pool:
        admitted = list(pool.map(lambda answer: retry_until_admitted(url, answer, t0), in_line))
    admitted.sort()
    times = [at for at, _, _ in admitted]
    assert sorted(number for _, number, _ in admitted) == numbers
    for at, number, _ in admitted:
        # the line moves at the rate: a later arrival is never let in ahead of its turn
        assert number <= first_admitted + RATE * at + 1, (at, number)
    for i, start in enumerate(times):
        for window_s in (1.0, 2.0, 4.0):
            inside = sum(1 for at in times[i:] if at < start + window_s)
            assert inside <= BURST + RATE * window_s, (window_s, times)

    spent = httpx.post(url, json={"arrival": admitted[0][2]})
    assert (spent.status_code, slug(spent)) == (401, "arrival-spent")
    queue, state = line_now(line_server, space_id)
    assert (queue["waiting"], state["waiting"]) == (0, 0)
    assert queue["admitted_watermark"] == queue["arrivals"]


def test_queue_json_is_cached_at_the_edge_like_state_json_and_joins_never_are(
    line_server: Server, tmp_path: Path
) -> None:
    if not NGINX.is_file():
        pytest.fail("Debian's nginx is needed: `make system-test-deps` installs it")
    space_id = line_server.create_space("Queue at the edge")["id"]
    put = line_server.api(
        "PUT",
        f"/api/v1/spaces/{space_id}/defense",
        json={"admission_rate": 0.5, "admission_burst": 1},
    )
    assert put.json() == {"pow": "off", "admission_rate": 0.5, "admission_burst": 1}
    time.sleep(DEFENSE_CACHE_S)
    whip = f"http://127.0.0.1:{line_server.whip_port}"
    edge = start_edge(line_server.url, whip, free_port(), tmp_path / "edge")
    try:
        queue_url = f"{edge.url}/live/{space_id}/queue.json"
        first, again = httpx.get(queue_url), httpx.get(queue_url)
        assert first.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=1"
        assert again.headers["x-cache-status"] == "HIT"
        assert again.json() == first.json()
        join_url = f"{edge.url}/api/v1/spaces/{space_id}/join"
        answers = [httpx.post(join_url, timeout=10) for _ in range(2)]
        assert [answer.status_code for answer in answers] == [201, 503]
        assert answers[1].headers["cache-control"] == "no-store"
        assert answers[1].headers.get("x-cache-status", "") == ""
        deadline = time.monotonic() + 5.0
        while httpx.get(queue_url).json()["arrivals"] != 2:
            assert time.monotonic() < deadline, "the edge kept an old queue.json"
            time.sleep(0.3)
    finally:
        stop_edge(edge)


@pytest.mark.browser
def test_listener_page_plays_while_in_line_and_reacts_once_counted(
    line_server: Server, context: Any, console: ConsoleWatch, screenshots: Path
) -> None:
    space = line_server.create_space("Line at the door")
    put = line_server.api(
        "PUT",
        f"/api/v1/spaces/{space['id']}/defense",
        json={"admission_rate": 0.25, "admission_burst": 1},
    )
    assert put.status_code == 200, put.text
    time.sleep(DEFENSE_CACHE_S)
    page = console.watch(context.new_page())
    joins: list[Any] = []
    page.on("request", lambda request: joins.append(request) if "/join" in request.url else None)
    page.goto(space["listen_url"])
    page.locator("#status[data-status='live']").wait_for()
    # someone else takes the bucket's only token
    assert httpx.post(f"{line_server.url}/api/v1/spaces/{space['id']}/join").status_code == 201

    page.click("#play")
    line = page.locator("#waiting-line")
    line.wait_for(state="visible", timeout=10_000)
    assert line.inner_text().startswith("In line to be counted: about ")
    page.wait_for_function(
        "() => document.getElementById('player').currentTime > 0.5", timeout=20_000
    )
    assert line.is_visible(), "admitted before the program played: the test proves nothing"
    assert page.locator("#reaction-buttons .reaction").first.is_disabled()
    assert page.locator("#hand").is_disabled()
    assert page.locator("#react-wait").is_visible()
    page.screenshot(path=screenshots / "listen-waiting-room.png", full_page=True)

    line.wait_for(state="hidden", timeout=20_000)
    assert page.locator("#react-wait").is_hidden()
    button = page.locator("#reaction-buttons .reaction").first
    assert button.is_enabled()
    with page.expect_response(lambda r: r.url.endswith("/reactions")) as reaction:
        button.click()
    assert reaction.value.status == 204
    bodies = [request.post_data_json for request in joins if request.method == "POST"]
    assert set(bodies[0]) == {"device"}  # the browser's id (device.js)
    assert len(bodies) >= 2, bodies
    assert all("arrival" in body for body in bodies[1:]), bodies
    unexpected = [line for line in console.failed if " 503 " not in f" {line.split()[0]} "]
    assert unexpected == [], console.failed
    waiting_errors = [error for error in console.errors if "503" not in error]
    assert waiting_errors == [], console.errors
