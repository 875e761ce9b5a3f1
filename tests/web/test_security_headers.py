"""The pages are safe to open: a Content-Security-Policy that admits only this deployment, no
framing, no MIME sniffing, no Referer carrying a token; the pages still work under that policy in
Chromium with no violation; and /metrics answers the admin token only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, Server
from tests.web.conftest import ConsoleWatch
from tests.web.test_bad_input import assert_problem
from tests.web.test_pages_browser import STAGE_TIMEOUT_MS, join_stage, wait_for_segments

# every violation the page reports, kept on the window for the test to read
COLLECT_VIOLATIONS_JS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def policy_of(response: httpx.Response) -> dict[str, str]:
    directives = [d.strip() for d in response.headers["content-security-policy"].split(";")]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else "" for d in directives if d}


def test_pages_and_static_files_send_policy_nosniff_and_no_referrer(web_server: Server) -> None:
    space = web_server.create_space("Headers")
    paths = [
        "/",
        f"/listen/{space['id']}",
        f"/speak/{space['id']}",
        f"/host/{space['id']}",
        "/static/listen.js",
        "/static/rostra.css",
        "/static/vendor/hls.min.js",
        f"/live/{space['id']}/state.json",
        "/no/such/page",
        "/docs",
    ]
    for path in paths:
        response = httpx.get(web_server.url + path, timeout=10)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        policy = policy_of(response)
        assert policy["frame-ancestors"] == "'none'", path
        assert policy["default-src"] == "'self'", path
        assert "unsafe-inline" not in policy["script-src"], path
    page = policy_of(httpx.get(f"{web_server.url}/listen/{space['id']}", timeout=10))
    assert page["script-src"].split()[0] == "'self'"
    assert f"127.0.0.1:{web_server.whip_port}" in page["connect-src"]  # speakers publish there
    assert "blob:" in page["media-src"]
    assert "blob:" in page["worker-src"]
    join = httpx.post(f"{web_server.url}/api/v1/spaces/{space['id']}/join", timeout=10)
    assert join.headers["x-content-type-options"] == "nosniff"
    whip = httpx.post(f"{web_server.whip_base}/whip/{space['id']}", timeout=10)  # the origin's
    assert whip.status_code == 401
    assert whip.headers["x-content-type-options"] == "nosniff"


def test_metrics_answer_the_admin_token_only(web_server: Server) -> None:
    space = web_server.create_space("Metrics")
    url = web_server.url + "/metrics"
    assert_problem(httpx.get(url, timeout=10), 401, "admin token")
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert_problem(wrong, 401, "admin token")
    host_token = space["host_url"].split("token=")[1]
    as_host = httpx.get(url, headers={"Authorization": f"Bearer {host_token}"}, timeout=10)
    assert_problem(as_host, 401, "admin token")
    scraped = httpx.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert scraped.status_code == 200
    assert "rostra_gate_requests_total" in scraped.text


def violations(page: Any) -> list[str]:
    found: list[str] = page.evaluate("window.__violations")
    return found


def test_pages_work_under_the_policy_with_no_violation(
    web_server: Server, context: Any, console: ConsoleWatch
) -> None:
    context.add_init_script(COLLECT_VIOLATIONS_JS)
    space = web_server.create_space("Under the policy")
    speaker = console.watch(context.new_page())
    join_stage(speaker, space["speaker_invite_url"], "Ada")  # WHIP on its own port
    wait_for_segments(web_server, space["id"])

    listener = console.watch(context.new_page())
    listener.goto(space["listen_url"])
    listener.click("#play")  # hls.js: its worker from a blob, media through MSE
    listener.wait_for_function(
        "() => document.getElementById('player').currentTime > 1", timeout=STAGE_TIMEOUT_MS
    )
    host = console.watch(context.new_page())
    host.goto(space["host_url"])
    host.locator("#stage .member", has_text="Ada").wait_for(timeout=10_000)
    docs = console.watch(context.new_page())
    docs.goto(web_server.url + "/docs")
    docs.locator(".swagger-ui .opblock").first.wait_for(timeout=15_000)

    for page in (speaker, listener, host, docs):
        assert violations(page) == [], page.url
    assert [e for e in console.errors if "Content Security Policy" in e] == []
    assert console.errors == [], console.failed


def test_gate_metrics_answer_its_admin_token_only(
    redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.e2e.test_gate_scale_out import start_gate, stop

    monkeypatch.setenv("ROSTRA_ADMIN_TOKEN", ADMIN_TOKEN)
    url, process = start_gate(redis_server.url, "s" * 40)
    try:
        refused = httpx.get(url + "/metrics", timeout=10)
        assert_problem(refused, 401, "admin token")
        assert refused.headers["x-content-type-options"] == "nosniff"
        scraped = httpx.get(
            url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
        )
        assert scraped.status_code == 200
        assert "rostra_gate_requests_total" in scraped.text
    finally:
        stop(process)
    monkeypatch.delenv("ROSTRA_ADMIN_TOKEN")
    url, process = start_gate(redis_server.url, "s" * 40)
    try:  # a gate without an admin token serves its metrics to no one
        unconfigured = httpx.get(
            url + "/metrics", headers={"Authorization": "Bearer anything"}, timeout=10
        )
        assert_problem(unconfigured, 401, "admin token")
    finally:
        stop(process)
