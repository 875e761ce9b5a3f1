"""Co-hosts and the hand queue against a real `rostra serve` and real aiortc WHIP clients: a
co-host runs the stage (hands, removals of speakers) but cannot remove the host or another
co-host, nor do the host's space powers; a space has at most two co-hosts; a role other than
speaker or co-host is refused; a raised hand is invited once and only its listener reads it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.cli.test_space_commands import rostra
from tests.conftest import Server, start_server, stop_server
from tests.stage_api import bearer, listener_ticket, mint, problem, token_of, wait_for_stage
from tests.whip_client import publish


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("cohosts") / "data")
    yield running
    stop_server(running)


def test_a_cohost_runs_the_stage_but_never_acts_on_the_host_or_another_cohost(
    server: Server,
) -> None:
    space = server.create_space("Co-hosts")
    sid = space["id"]
    whip = f"{server.whip_base}/whip/{sid}"
    host = token_of(space["host_url"])
    ann = mint(server, sid, name="Ann", role="cohost")
    assert ann["role"] == "cohost"
    assert ann["seats"] is None  # personal: one seat
    bob = token_of(mint(server, sid, role="cohost")["speaker_invite_url"])
    ann_token = token_of(ann["speaker_invite_url"])
    speaker = token_of(mint(server, sid, name="Sam")["speaker_invite_url"])
    # a third co-host is refused while two are alive, with who they are
    problem(
        server.api("POST", f"/api/v1/spaces/{sid}/invites", json={"role": "cohost"}),
        409,
        "cohost-limit-reached",
        "allows 2 co-hosts",
        "(Ann)",
    )

    async def scenario() -> None:
        pcs = []
        for token, name in ((host, "Host"), (ann_token, ""), (bob, ""), (speaker, "")):
            pc, response = await publish(whip, token, name=name)
            assert response.status_code == 201, response.text
            pcs.append(pc)
        try:
            await asyncio.to_thread(moderate)
        finally:
            for pc in pcs:
                await pc.close()

    def moderate() -> None:
        members = wait_for_stage(server, sid, lambda m: len(m) == 4)
        roles = {m["name"]: m["role"] for m in members}
        assert roles == {"Host": "host", "Ann": "cohost", "Co-host": "cohost", "Sam": "speaker"}
        session = {m["name"]: m["id"] for m in members}
        remove = f"{server.url}/api/v1/spaces/{sid}/stage/"
        refused = httpx.delete(remove + session["Host"], headers=bearer(ann_token))
        problem(refused, 403, "role-not-allowed", "may not remove the host")
        refused = httpx.delete(remove + session["Co-host"], headers=bearer(ann_token))
        problem(refused, 403, "role-not-allowed", "cohost")
        # a speaker runs nothing
        refused = httpx.delete(remove + session["Ann"], headers=bearer(speaker))
        problem(refused, 403, "role-not-allowed", "only the host or a co-host")
        removed = httpx.delete(remove + session["Sam"], headers=bearer(ann_token))
        assert removed.status_code == 204, removed.text
        wait_for_stage(server, sid, lambda m: "Sam" not in {x["name"] for x in m})
        # the host removes a co-host
        removed = httpx.delete(remove + session["Co-host"], headers=bearer(host))
        assert removed.status_code == 204, removed.text
        wait_for_stage(server, sid, lambda m: len(m) == 2)

    asyncio.run(scenario())
    # the host's space powers stay the host's
    api = f"{server.url}/api/v1/spaces/{sid}"
    problem(httpx.post(api + "/end", headers=bearer(ann_token)), 403, "role-not-allowed")
    problem(
        httpx.post(api + "/invites", headers=bearer(ann_token), json={}), 403, "role-not-allowed"
    )
    problem(
        httpx.delete(api + f"/invites/{ann['id']}", headers=bearer(ann_token)),
        403,
        "role-not-allowed",
    )
    # revoking a co-host frees the place for another
    assert server.api("DELETE", f"/api/v1/spaces/{sid}/invites/{ann['id']}").status_code == 200
    assert mint(server, sid, role="cohost")["role"] == "cohost"


def test_an_invite_role_other_than_speaker_or_cohost_is_refused(server: Server) -> None:
    sid = server.create_space("Roles")["id"]
    url = f"/api/v1/spaces/{sid}/invites"
    for role in ("host", "listener", "COHOST", 1, None):
        problem(server.api("POST", url, json={"role": role}), 422, "invalid-fields", "role")
    problem(
        server.api("POST", url, json={"role": "cohost", "seats": 3}),
        422,
        "invalid-fields",
        "a co-host invite is personal and holds one seat",
    )
    assert mint(server, sid)["role"] == "speaker"


def test_a_raised_hand_is_invited_once_and_only_its_listener_reads_the_invite(
    server: Server,
) -> None:
    space = server.create_space("Hands")
    sid = space["id"]
    host = token_of(space["host_url"])
    api = f"{server.url}/api/v1/spaces/{sid}"
    cohost = token_of(mint(server, sid, role="cohost")["speaker_invite_url"])
    speaker = token_of(mint(server, sid, name="Sam")["speaker_invite_url"])
    raiser, other = listener_ticket(server, sid), listener_ticket(server, sid)
    # nothing to read before an invite, and never from a cache
    mine = httpx.get(api + "/hand", headers=bearer(raiser))
    assert mine.status_code == 200, mine.text
    assert mine.json() == {"invited": False}
    assert mine.headers["cache-control"] == "private, no-store"
    assert httpx.post(api + "/hand", headers=bearer(raiser)).status_code == 204
    problem(httpx.get(api + "/hands", headers=bearer(speaker)), 403, "role-not-allowed")
    hands = httpx.get(api + "/hands", headers=bearer(cohost)).json()["hands"]
    assert [h["invited"] for h in hands] == [False]
    hand = hands[0]["hand"]
    problem(
        httpx.post(api + "/hands/0123456789abcdef/invite", headers=bearer(host)),
        404,
        "hand-not-found",
        "no raised hand '0123456789abcdef'",
    )
    refused = httpx.post(api + f"/hands/{hand}/invite", headers=bearer(speaker))
    problem(refused, 403, "role-not-allowed")
    first = httpx.post(api + f"/hands/{hand}/invite", headers=bearer(cohost))
    assert first.status_code == 201, first.text
    again = httpx.post(api + f"/hands/{hand}/invite", headers=bearer(host), json={"name": "X"})
    assert again.status_code == 200, again.text  # idempotent: the same invite
    assert again.json()["invite"] == first.json()["invite"]
    assert httpx.get(api + "/hands", headers=bearer(host)).json()["hands"][0]["invited"] is True
    # only the raiser's ticket reads it; the token is a working speaker credential
    assert httpx.get(api + "/hand", headers=bearer(other)).json() == {"invited": False}
    problem(httpx.get(api + "/hand", headers=bearer(host)), 401, "ticket-invalid")
    invited = httpx.get(api + "/hand", headers=bearer(raiser)).json()
    assert invited["invited"] is True
    assert invited["whip_url"].endswith(f"/whip/{sid}")
    assert invited["speaker_invite_url"].endswith(invited["token"])

    async def speak() -> None:
        pc, response = await publish(invited["whip_url"], invited["token"])
        try:
            assert response.status_code == 201, response.text
            members = await asyncio.to_thread(wait_for_stage, server, sid, lambda m: len(m) == 1)
            assert members[0]["role"] == "speaker"
            assert members[0]["name"] == f"Listener {hand[:4]}"
        finally:
            await pc.close()

    asyncio.run(speak())
    # the invite was good for one connection: spent, it is no longer offered; inviting the
    # same hand again gives one more
    assert httpx.get(api + "/hand", headers=bearer(raiser)).json() == {"invited": False}
    assert httpx.get(api + "/hands", headers=bearer(host)).json()["hands"][0]["invited"] is False
    again = httpx.post(api + f"/hands/{hand}/invite", headers=bearer(host))
    assert again.status_code == 201, again.text
    assert httpx.get(api + "/hand", headers=bearer(raiser)).json()["invited"] is True
    # a revoked hand invite is no longer read, and the queue does not invite again
    assert server.api("DELETE", f"/api/v1/spaces/{sid}/invites/{first.json()['invite']}").is_success
    assert httpx.get(api + "/hand", headers=bearer(raiser)).json() == {"invited": False}
    problem(
        httpx.post(api + f"/hands/{hand}/invite", headers=bearer(host)),
        409,
        "hand-invite-revoked",
    )


def test_space_invite_takes_a_role_on_the_command_line(server: Server) -> None:
    sid = server.create_space("CLI roles")["id"]
    made = rostra("space", "invite", sid, "--role", "cohost", "--name", "Cat", server=server)
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)
    assert (body["role"], body["name"], body["seats"]) == ("cohost", "Cat", None)
    made = rostra("space", "invite", sid, server=server)
    assert json.loads(made.stdout)["role"] == "speaker"
    refused = rostra("space", "invite", sid, "--role", "host", server=server)
    assert refused.returncode == 2
    assert "'host' is not one of" in refused.stderr
