"""An outsider, a speaker and a co-host against the stage's moderation calls of a real `rostra
serve` (mute, mute all, blocks, the hand queue's invite, a listener's hand, the moderation log):
every bad request gets a precise 4xx problem+json that never echoes a control character, never a
5xx or a stack trace; every credential opens only its own door; concurrent clicks on one hand
make one invite, and concurrent blocks of one listener all answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.stage_api import bearer, listener_ticket, mint_token, new_device, token_of

JSON = {"Content-Type": "application/json"}
DEEP = "[" * 5_000 + "]" * 5_000
BIG = b'{"muted":true,"x":"' + b"a" * 20_000 + b'"}'
CONCURRENT = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("moderation-attacks") / "data", extra_env={"ROSTRA_WORKERS": "2"}
    )
    yield running
    stop_server(running)


def raise_hand(server: Server, space_id: str, ticket: str) -> None:
    raised = httpx.post(
        f"{server.url}/api/v1/spaces/{space_id}/hand",
        headers=bearer(ticket) | {"Rostra-Device": new_device()},
        timeout=10,
    )
    assert raised.status_code == 204, raised.text


def test_bad_moderation_calls_get_a_precise_4xx_and_never_echo_control_characters(
    server: Server,
) -> None:
    space, other = server.create_space("Attacked"), server.create_space("Elsewhere")
    sid = space["id"]
    api = f"{server.url}/api/v1/spaces/{sid}"
    host, other_host = token_of(space["host_url"]), token_of(other["host_url"])
    cohost = mint_token(server, sid, role="cohost")
    speaker = mint_token(server, sid, name="Sam")
    ticket, other_ticket = listener_ticket(server, sid), listener_ticket(server, other["id"])
    session = "abcdefghijklmnop"  # well formed, on no stage
    mute = f"{api}/stage/{session}/mute"
    cases: list[tuple[str, str, str, dict[str, Any], int, str]] = [
        ("mute too big", "POST", mute,
         {"content": BIG, "headers": bearer(host) | JSON},
         413, "payload-too-large"),
        ("mute too deep", "POST", mute, {"content": DEEP, "headers": bearer(host) | JSON},
         400, "bad-request"),
        ("mute not strict", "POST", mute, {"json": {"muted": "yes"}, "headers": bearer(host)},
         422, "invalid-fields"),
        ("mute wrong type", "POST", mute,
         {"content": b'{"muted":true}', "headers": bearer(host) | {"Content-Type": "text/plain"}},
         415, "unsupported-media-type"),
        ("mute control session", "POST", f"{api}/stage/%01%02%7f/mute",
         {"json": {"muted": True}, "headers": bearer(host)}, 422, "session-invalid"),
        ("mute no credential", "POST", mute, {"json": {"muted": True}}, 401, "credential-missing"),
        ("mute other space's host", "POST", mute,
         {"json": {"muted": True}, "headers": bearer(other_host)}, 403, "credential-wrong-space"),
        ("mute with a ticket", "POST", mute, {"json": {"muted": True}, "headers": bearer(ticket)},
         401, "credential-invalid"),
        ("mute nobody", "POST", mute, {"json": {"muted": True}, "headers": bearer(host)},
         404, "speaker-not-found"),
        ("mute all as speaker", "POST", f"{api}/stage/mute",
         {"json": {"muted": True}, "headers": bearer(speaker)}, 403, "role-not-allowed"),
        ("block nothing", "POST", f"{api}/blocks", {"json": {}, "headers": bearer(host)},
         422, "block-target-invalid"),
        ("block other space's ticket", "POST", f"{api}/blocks",
         {"json": {"ticket": other_ticket}, "headers": bearer(host)}, 403, "ticket-wrong-space"),
        ("block huge ticket", "POST", f"{api}/blocks",
         {"json": {"ticket": "x" * 9_000}, "headers": bearer(host)}, 422, "invalid-fields"),
        ("block control session", "POST", f"{api}/blocks",
         {"json": {"session": "\x01\x02"}, "headers": bearer(host)}, 422, "session-invalid"),
        ("block control hand", "POST", f"{api}/blocks",
         {"json": {"hand": "\x01" * 16}, "headers": bearer(cohost)}, 422, "hand-invalid"),
        ("block as speaker", "POST", f"{api}/blocks",
         {"json": {"ticket": ticket}, "headers": bearer(speaker)}, 403, "role-not-allowed"),
        ("invite control hand", "POST", f"{api}/hands/%01%7f/invite",
         {"headers": bearer(host)}, 422, "hand-invalid"),
        ("invite control name", "POST", f"{api}/hands/0123456789abcdef/invite",
         {"json": {"name": "a\x00b"}, "headers": bearer(host)}, 422, "invalid-fields"),
        ("invite as speaker", "POST", f"{api}/hands/0123456789abcdef/invite",
         {"headers": bearer(speaker)}, 403, "role-not-allowed"),
        ("my hand, other space's ticket", "GET", f"{api}/hand",
         {"headers": bearer(other_ticket)}, 403, "ticket-wrong-space"),
        ("raise with a long device", "POST", f"{api}/hand",
         {"headers": bearer(ticket) | {"Rostra-Device": "a" * 5_000}}, 422, "device-invalid"),
        ("join with a control device", "POST", f"{api}/join",
         {"json": {"device": "a\x01" * 10}}, 422, "invalid-fields"),
        ("log as speaker", "GET", f"{api}/moderation", {"headers": bearer(speaker)},
         403, "role-not-allowed"),
        ("log as other space's host", "GET", f"{api}/moderation",
         {"headers": bearer(other_host)}, 403, "credential-wrong-space"),
        ("remove control session", "DELETE", f"{api}/stage/%00", {"headers": bearer(cohost)},
         422, "session-invalid"),
    ]  # fmt: skip
    for case, method, url, fields, status, slug in cases:
        response = httpx.request(method, url, timeout=10, **fields)
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == "application/problem+json", case
        body = response.json()
        assert body["type"].endswith(slug), (case, body)
        assert not any(ord(c) < 0x20 or c == "\x7f" for c in body["detail"]), (case, body)
    # nothing was changed by any of them
    log = httpx.get(f"{api}/moderation", headers=bearer(host), timeout=10).json()
    assert log == {"entries": []}
    assert "Traceback" not in server.log()


async def test_concurrent_clicks_on_one_hand_make_one_invite_and_concurrent_blocks_all_answer(
    server: Server,
) -> None:
    space = server.create_space("Crowded clicks")
    sid = space["id"]
    api = f"{server.url}/api/v1/spaces/{sid}"
    host = token_of(space["host_url"])
    cohost = mint_token(server, sid, role="cohost")
    ticket = listener_ticket(server, sid)
    raise_hand(server, sid, ticket)
    async with httpx.AsyncClient(timeout=30) as client:
        (hand,) = (await client.get(f"{api}/hands", headers=bearer(host))).json()["hands"]
        clicks = await asyncio.gather(
            *(
                client.post(f"{api}/hands/{hand['hand']}/invite", headers=bearer(token))
                for token in [host, cohost] * (CONCURRENT // 2)
            )
        )
        statuses = sorted(response.status_code for response in clicks)
        assert statuses == [200] * (CONCURRENT - 1) + [201], [r.text for r in clicks]
        assert len({response.json()["invite"] for response in clicks}) == 1
        blocks = await asyncio.gather(
            *(
                client.post(f"{api}/blocks", json={"ticket": ticket}, headers=bearer(token))
                for token in [host, cohost] * (CONCURRENT // 2)
            )
        )
        assert {response.status_code for response in blocks} == {200}, [r.text for r in blocks]
        log = (await client.get(f"{api}/moderation", headers=bearer(host))).json()["entries"]
    assert [entry["action"] for entry in log].count("invite") == 1
    assert [entry["action"] for entry in log].count("block") == CONCURRENT
    assert "Traceback" not in server.log()
