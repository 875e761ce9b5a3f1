"""The stage as tests reach it over HTTP: credentials out of links, invites, a listener's ticket,
the stage of `state.json` and waiting for it to settle, and problem+json answers checked."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Server

STAGE_WAIT_S = 15.0


def token_of(url: str) -> str:
    """The token of a speaker invite link (`invite=`) or a host link (`token=`)."""
    return url.split("invite=")[1] if "invite=" in url else url.split("token=")[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mint(server: Server, space_id: str, **fields: Any) -> dict[str, Any]:
    """A new invite of the space (as the admin), its whole answer."""
    response = server.api("POST", f"/api/v1/spaces/{space_id}/invites", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def mint_token(server: Server, space_id: str, **fields: Any) -> str:
    """A new invite of the space, its token only."""
    return token_of(mint(server, space_id, **fields)["speaker_invite_url"])


def new_device() -> str:
    """A device id as a page keeps it (32 characters of base64url)."""
    return secrets.token_urlsafe(24)


def listener_ticket(server: Server, space_id: str) -> str:
    """A listener's ticket for the space, as a page's first join gets it."""
    joined = httpx.post(f"{server.url}/api/v1/spaces/{space_id}/join", timeout=10)
    assert joined.status_code == 201, joined.text
    ticket: str = joined.json()["ticket"]
    return ticket


def stage(server: Server, space_id: str) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = httpx.get(
        f"{server.url}/live/{space_id}/state.json", timeout=5
    ).json()["stage"]
    return members


def wait_for_stage(
    server: Server, space_id: str, check: int | Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The stage once `check` holds for it (an int: once it holds that many voices), polled
    every 0.2 s for STAGE_WAIT_S at most."""
    holds = (lambda members: len(members) == check) if isinstance(check, int) else check
    deadline = time.monotonic() + STAGE_WAIT_S
    while time.monotonic() < deadline:
        members = stage(server, space_id)
        if holds(members):
            return members
        time.sleep(0.2)
    pytest.fail(f"the stage never settled: {stage(server, space_id)}")


def problem(response: httpx.Response, status: int, slug: str, *details: str) -> str:
    """The detail of a problem+json answer of this status and type, holding each of `details`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith(slug), body
    for text in details:
        assert text in body["detail"], body
    return str(body["detail"])
