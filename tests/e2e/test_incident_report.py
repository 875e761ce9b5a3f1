"""The incident log on a real `rostra serve`: a known mix of good joins, forged-ticket heartbeats,
junk paths and a flood of joins from one /24 behind a trusted edge; the incident JSON's numbers
are what the test sent, its top prefix is the flood's, and `rostra incident report` writes the
JSON and one self-contained HTML page with inline SVG plots."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, ROOT, start_server, stop_server

PROXY = "127.0.0.2"  # the trusted edge
GOOD_JOINS = 12
FORGED_HEARTBEATS = 15
JUNK_PATHS = ("/wp-login.php", "/.env", "/admin", "/cgi-bin/x", "/xmlrpc.php", "/a/b/c", "/x.php")
FLOOD_JOINS = 60
FLOOD_PREFIX = "198.51.100.0/24"
FLUSHED_S = 2.5  # the recorder flushes each second
SETTLED_S = 15.0


def post_via_edge(url: str, client_address: str) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=PROXY)
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.post(url, headers={"X-Forwarded-For": client_address})


def send_the_mix(base: str, space_id: str) -> dict[str, Counter[int]]:
    join_url = f"{base}/api/v1/spaces/{space_id}/join"
    sent: dict[str, Counter[int]] = {"join": Counter(), "heartbeat": Counter(), "junk": Counter()}
    for n in range(GOOD_JOINS):  # one listener per network
        sent["join"][post_via_edge(join_url, f"10.0.{n}.1").status_code] += 1
    with httpx.Client(timeout=10) as client:
        for n in range(FORGED_HEARTBEATS):
            beat = client.post(
                f"{base}/api/v1/spaces/{space_id}/heartbeat",
                headers={"Authorization": f"Bearer v1.forged{n}.AAAA"},
            )
            sent["heartbeat"][beat.status_code] += 1
        for path in JUNK_PATHS:
            sent["junk"][client.get(base + path).status_code] += 1
    for n in range(FLOOD_JOINS):  # one network, many addresses: its prefix limit refuses
        sent["join"][post_via_edge(join_url, f"198.51.100.{n + 1}").status_code] += 1
    return sent


def read_incident(base: str, space_id: str, *, listener_requests: int) -> dict[str, Any]:
    """The report once the `listener_requests` (joins and heartbeats) sent to the space are all
    flushed (each worker flushes once a second; a loaded machine may take longer)."""
    deadline = time.monotonic() + SETTLED_S
    while True:
        response = httpx.get(
            f"{base}/api/v1/spaces/{space_id}/incident",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        counted = sum(
            sum(body["by_endpoint"].get(endpoint, {}).values())
            for endpoint in ("join", "heartbeat")
        )
        if counted >= listener_requests or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def assert_proof_of_work_verdicts_are_counted(base: str, space: dict[str, Any]) -> None:
    """Joins without a proof and with a forged one, while the space asks for proof-of-work."""
    defended = httpx.put(
        f"{base}/api/v1/spaces/{space['id']}/defense",
        json={"pow": "on"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert defended.status_code == 200, defended.text
    time.sleep(1.5)  # a worker caches a space's defence about a second
    join_url = f"{base}/api/v1/spaces/{space['id']}/join"
    sent = Counter(
        [httpx.post(join_url).json()["type"].rsplit("/", 1)[1] for _ in range(3)]
        + [
            httpx.post(join_url, json={"altcha": "bm90IGEgcHJvb2Y="})
            .json()["type"]
            .rsplit("/", 1)[1]
            for _ in range(2)
        ]
    )
    assert sent == Counter({"challenge-required": 3, "challenge-failed": 2})
    report = read_incident(base, space["id"], listener_requests=5)
    assert report["by_endpoint"]["join"] == {"challenged": 3, "proof-failed": 2}
    assert [mode for _, mode in report["defense"]["pow_mode"]][-1] == 1.0  # on
    assert report["defense"]["difficulty"]


def test_incident_report_counts_what_was_sent_and_names_the_flooding_prefix(
    tmp_path: Path,
) -> None:
    server = start_server(
        tmp_path / "data",
        extra_env={
            "ROSTRA_LIMITS_EXEMPT": "192.0.2.0/24",
            "ROSTRA_TRUSTED_PROXIES": PROXY,
            "ROSTRA_LIMIT_JOIN_PREFIX": "10/minute",
        },
    )
    try:
        space = server.create_space("Under fire")
        assert httpx.get(f"{server.url}/api/v1/spaces/{space['id']}/incident").status_code == 401
        sent = send_the_mix(server.url, space["id"])
        assert sent["join"][201] >= GOOD_JOINS
        # two workers, 10 a minute each; a sliding-window counter weighs the last minute's count,
        # so across a minute boundary each may let one more through
        assert sent["join"][429] >= FLOOD_JOINS - 2 * (10 + 1)
        assert sent["heartbeat"] == Counter({401: FORGED_HEARTBEATS})
        assert sent["junk"] == Counter({404: len(JUNK_PATHS)})
        time.sleep(FLUSHED_S)  # and nothing more comes: the numbers are exact
        sent_total = sum(sent["join"].values()) + FORGED_HEARTBEATS
        report = read_incident(server.url, space["id"], listener_requests=sent_total)

        join = report["by_endpoint"]["join"]
        assert join.get("admitted", 0) == sent["join"][201]
        assert join.get("rate-limited", 0) == sent["join"][429]
        assert join.get("queued", 0) == sent["join"][503]
        assert report["by_endpoint"]["heartbeat"] == {"bad-ticket": FORGED_HEARTBEATS}
        assert report["rejected"]["by_reason"]["rate-limited"] == sent["join"][429]
        assert report["rejected"]["by_reason"]["bad-ticket"] == FORGED_HEARTBEATS
        junk = report["unattributed"]["by_endpoint"]["other"]
        assert junk == {"4xx:not-found": len(JUNK_PATHS)}
        top = report["top_prefixes"][0]
        assert top["prefix"] == FLOOD_PREFIX
        assert top["rejected"] == sent["join"][429]
        timeline_total = sum(sum(v) for v in report["timeline"]["verdicts"].values())
        assert timeline_total == sum(report["totals"].values())
        assert report["origin"]["sampled_seconds"] > 0
        assert report["findings"]["lines"]

        assert_proof_of_work_verdicts_are_counted(server.url, server.create_space("Defended"))

        html, json_out = tmp_path / "incident.html", tmp_path / "incident.json"
        done = subprocess.run(
            [sys.executable, "-m", "rostra", "incident", "report", space["id"],
             "--html", str(html), "--json", str(json_out), "--server", server.url],
            cwd=ROOT,
            env=dict(os.environ, ROSTRA_ADMIN_TOKEN=ADMIN_TOKEN),
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert FLOOD_PREFIX in json_out.read_text()
        page = html.read_text()
        assert page.count("<svg") >= 3
        assert "<script" not in page
        assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert FLOOD_PREFIX in page
    finally:
        stop_server(server)
