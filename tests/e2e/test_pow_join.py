"""Proof-of-work on join through a real `rostra serve` (two listener workers sharing the spent
solutions in SQLite) and two `rostra gate` nodes on Redis: the challenge in the 401, a solution
that counts once, the space's defence, and the listener page solving it in a Web Worker in Debian's
Chromium."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import altcha
import httpx
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.web.conftest import CHROMIUM

PROBLEM_TYPE = "application/problem+json"
PAGE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def pow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("pow-server") / "data", extra_env={"ROSTRA_POW": "on"}
    )
    yield running
    stop_server(running)


def post_join(server: Server, space_id: str, body: dict[str, str] | None = None) -> httpx.Response:
    # a new connection each time: the two workers each take some of them
    return httpx.post(f"{server.url}/api/v1/spaces/{space_id}/join", json=body, timeout=10)


def slug(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith(PROBLEM_TYPE), response.text
    return str(response.json()["type"]).rsplit("/", 1)[-1]


def solve(challenge: dict[str, Any]) -> str:
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed, timeout=30.0)
    assert solution is not None
    return altcha.Payload(parsed, solution).to_base64()


def test_join_needs_a_proof_that_counts_once_and_only_for_its_space(pow_server: Server) -> None:
    space = pow_server.create_space("Under attack")
    other = pow_server.create_space("Elsewhere")

    asked = post_join(pow_server, space["id"])
    assert asked.status_code == 401
    assert slug(asked) == "challenge-required"
    challenge = asked.json()["challenge"]
    assert challenge["parameters"]["algorithm"] == "SHA-256"
    assert challenge["parameters"]["data"]["space"] == space["id"]
    payload = solve(challenge)

    elsewhere = post_join(pow_server, other["id"], {"altcha": payload})
    assert elsewhere.status_code == 401
    assert slug(elsewhere) == "challenge-failed"

    admitted = post_join(pow_server, space["id"], {"altcha": payload})
    assert admitted.status_code == 201, admitted.text
    assert admitted.json()["ticket"]

    for _ in range(4):  # whichever worker takes it, the solution is spent
        again = post_join(pow_server, space["id"], {"altcha": payload})
        assert again.status_code == 401
        assert slug(again) == "challenge-spent"

    forged = json.loads(base64.b64decode(payload))
    forged["solution"]["derivedKey"] = "00" * 32
    bad = post_join(
        pow_server, space["id"], {"altcha": base64.b64encode(json.dumps(forged).encode()).decode()}
    )
    assert bad.status_code == 401
    assert slug(bad) == "challenge-failed"

    # a made-up space is refused before any work is asked (its defence is never read)
    ghost = post_join(pow_server, "zzzzzzzzzzzz")
    assert ghost.status_code == 404
    assert slug(ghost) == "space-not-found"
    ended = pow_server.create_space("Over")
    pow_server.api("POST", f"/api/v1/spaces/{ended['id']}/end").raise_for_status()
    assert slug(post_join(pow_server, ended["id"])) == "space-ended"


def test_space_defence_turns_proof_of_work_off_and_on_for_that_space_alone(
    pow_server: Server,
) -> None:
    quiet, attacked = pow_server.create_space("Quiet"), pow_server.create_space("Attacked")
    answer = pow_server.api("PUT", f"/api/v1/spaces/{quiet['id']}/defense", json={"pow": "off"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["pow"] == "off"
    deadline = time.monotonic() + 5  # every worker caches a defence for about a second
    while post_join(pow_server, quiet["id"]).status_code != 201:
        assert time.monotonic() < deadline, "the space still asks for proof-of-work"
        time.sleep(0.3)
    assert slug(post_join(pow_server, attacked["id"])) == "challenge-required"

    pow_server.api("PUT", f"/api/v1/spaces/{quiet['id']}/defense", json={"pow": "on"})
    deadline = time.monotonic() + 5
    while post_join(pow_server, quiet["id"]).status_code != 401:
        assert time.monotonic() < deadline, "the space still admits without proof-of-work"
        time.sleep(0.3)


# Records every text the player status line shows (injected by Playwright, outside the CSP).
RECORD_STATUS_JS = """
window.rostraStatuses = [];
document.addEventListener('DOMContentLoaded', () => {
  const status = document.getElementById('player-status');
  new MutationObserver(() => window.rostraStatuses.push(status.textContent)).observe(
    status, { childList: true, characterData: true, subtree: true });
});
"""
CSP_WORDS = ("Content Security Policy", "Content-Security-Policy")


@pytest.mark.browser
def test_listener_page_solves_the_challenge_in_a_worker_and_gets_a_ticket(
    pow_server: Server,
) -> None:
    if not CHROMIUM.is_file():
        pytest.fail("Chromium is needed: `make system-test-deps` installs it")
    from playwright.sync_api import sync_playwright

    space = pow_server.create_space("Listen under attack")
    joins: list[Any] = []
    workers: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"],
            timeout=30_000,
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.on(
                "response",
                lambda response: joins.append(response) if response.url.endswith("/join") else None,
            )
            page.on("worker", lambda worker: workers.append(worker.url))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda message: (
                    problems.append(message.text)
                    if any(word in message.text for word in CSP_WORDS)
                    else None
                ),
            )
            page.add_init_script(RECORD_STATUS_JS)
            page.goto(space["listen_url"])
            page.locator("#status[data-status='live']").wait_for()
            # no in-page polling: the page's CSP forbids the eval that wait_for_function uses
            with page.expect_response(
                lambda response: response.url.endswith("/join") and response.status == 201
            ):
                page.click("#play")
            read_ticket = f"JSON.parse(localStorage.getItem('rostra.ticket.{space['id']}'))"
            stored = page.evaluate(read_ticket)
            for _ in range(50):  # the page keeps the ticket just after reading the answer
                if stored:
                    break
                page.wait_for_timeout(100)
                stored = page.evaluate(read_ticket)
            statuses = page.evaluate("window.rostraStatuses")
        finally:
            browser.close()

    assert [response.status for response in joins] == [401, 201], [r.url for r in joins]
    first, second = (response.request for response in joins)
    assert set(json.loads(first.post_data or "{}")) == {"device"}  # the browser's id (device.js)
    sent = json.loads(second.post_data or "{}")
    assert set(sent) == {"altcha", "device"}
    assert json.loads(base64.b64decode(sent["altcha"]))["solution"]["derivedKey"]
    assert stored["ticket"]
    assert any(url.endswith("/static/vendor/altcha-sha-worker.js") for url in workers), workers
    assert problems == []
    assert any(text.startswith("Checking your browser") for text in statuses), statuses


def test_vendor_worker_is_served_from_the_altcha_package(pow_server: Server) -> None:
    response = httpx.get(f"{pow_server.url}/static/vendor/altcha-sha-worker.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    package = Path(__file__).resolve().parents[2] / "node_modules/altcha/dist/workers/sha.js"
    assert response.content == package.read_bytes()


def test_solution_spent_at_one_gate_node_is_refused_at_another(
    tmp_path: Path, redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `rostra gate` nodes on one Redis: the spent solution is a Redis key both see."""
    from tests.e2e.test_gate_scale_out import start_gate, stop

    monkeypatch.setenv("ROSTRA_POW", "on")
    origin = start_server(tmp_path / "data", extra_env={"ROSTRA_REDIS": redis_server.url})
    secret = (origin.data / "signing_secret").read_text().strip()
    gates = [start_gate(redis_server.url, secret), start_gate(redis_server.url, secret)]
    try:
        space = origin.create_space("Scaled out under attack")
        (first, _), (second, _) = gates
        join_path = f"/api/v1/spaces/{space['id']}/join"
        asked = httpx.post(first + join_path, timeout=10)
        assert asked.status_code == 401
        payload = solve(asked.json()["challenge"])
        assert (
            httpx.post(first + join_path, json={"altcha": payload}, timeout=10).status_code == 201
        )
        again = httpx.post(second + join_path, json={"altcha": payload}, timeout=10)
        assert again.status_code == 401
        assert slug(again) == "challenge-spent"
    finally:
        for _, process in gates:
            stop(process)
        stop_server(origin)
