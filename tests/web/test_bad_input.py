"""Every bad input gets the contract's precise 4xx with a problem body, never a 500, and never
disturbs the live program."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import ADMIN_TOKEN, Server, start_server, stop_server
from tests.whip_client import offer, publish

PROBLEM = "application/problem+json"


def token_of(url: str) -> str:
    return url.split("invite=")[1] if "invite=" in url else url.split("token=")[1]


def assert_problem(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status
    assert body["detail"], body
    for word in words:
        assert word.lower() in body["detail"].lower(), f"{word!r} not in {body['detail']!r}"
    assert "Traceback" not in response.text


async def post_sdp(server: Server, space_id: str, body: bytes, token: str, **headers: str):  # type: ignore[no-untyped-def]
    merged = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    merged.update(headers)
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{server.whip_base}/whip/{space_id}", content=body, headers=merged
        )


async def test_whip_rejects_bad_offers_and_credentials(server: Server) -> None:
    space = server.create_space("Bad input")
    other = server.create_space("Other")
    invite = token_of(space["speaker_invite_url"])
    _, good_sdp = await offer()

    assert_problem(await post_sdp(server, space["id"], b"hello", invite), 400, "v=0")
    no_audio = good_sdp.split("m=audio")[0].encode()
    assert_problem(await post_sdp(server, space["id"], no_audio, invite), 400, "audio")
    garbage = b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" + b"a=\xff\xfe\r\n" * 3
    response = await post_sdp(server, space["id"], garbage, invite)
    assert response.status_code == 400, response.text
    huge = b"v=0\r\n" + b"a=x\r\n" * 20_000
    assert_problem(await post_sdp(server, space["id"], huge, invite), 413, "bytes")
    assert_problem(
        await post_sdp(
            server, space["id"], good_sdp.encode(), invite, **{"Content-Type": "application/json"}
        ),
        415,
        "application/sdp",
    )
    assert_problem(await post_sdp(server, "nosuchspace1", good_sdp.encode(), invite), 404)
    assert_problem(await post_sdp(server, "..%2f..%2fetc", good_sdp.encode(), invite), 404)
    assert_problem(await post_sdp(server, space["id"], good_sdp.encode(), "junk"), 401)
    async with httpx.AsyncClient() as client:
        missing = await client.post(
            f"{server.whip_base}/whip/{space['id']}",
            content=good_sdp.encode(),
            headers={"Content-Type": "application/sdp"},
        )
    assert_problem(missing, 401, "bearer")
    forged = jwt.encode({"typ": "host", "spc": space["id"]}, "x" * 40, algorithm="HS256")
    assert_problem(await post_sdp(server, space["id"], good_sdp.encode(), forged), 401, "forged")
    tampered = invite[:-3] + ("AAA" if not invite.endswith("AAA") else "BBB")
    assert_problem(await post_sdp(server, space["id"], good_sdp.encode(), tampered), 401)
    other_invite = token_of(other["speaker_invite_url"])
    assert_problem(
        await post_sdp(server, space["id"], good_sdp.encode(), other_invite), 403, "another space"
    )


async def test_revoked_invite_is_refused_and_ends_its_sessions(server: Server) -> None:
    space = server.create_space("Revoke")
    minted = server.api("POST", f"/api/v1/spaces/{space['id']}/invites", json={"name": "Ann"})
    assert minted.status_code == 201, minted.text
    invite = minted.json()
    token = token_of(invite["speaker_invite_url"])
    pc, response = await publish(space["whip_url"], token)
    assert response.status_code == 201, response.text
    stage = server.api("GET", f"/live/{space['id']}/state.json").json()["stage"]
    assert [m["name"] for m in stage] == ["Ann"]
    revoked = server.api("DELETE", f"/api/v1/spaces/{space['id']}/invites/{invite['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["sessions_ended"] == 1
    assert server.api("GET", f"/live/{space['id']}/state.json").json()["stage"] == []
    pc2, again = await publish(space["whip_url"], token)
    assert_problem(again, 403, "revoked")
    await pc.close()
    await pc2.close()


async def test_invite_uses_are_counted(server: Server) -> None:
    space = server.create_space("Uses")
    minted = server.api("POST", f"/api/v1/spaces/{space['id']}/invites", json={"uses": 1}).json()
    token = token_of(minted["speaker_invite_url"])
    pc, first = await publish(space["whip_url"], token)
    assert first.status_code == 201, first.text
    pc2, second = await publish(space["whip_url"], token)
    assert_problem(second, 403, "uses")
    await pc.close()
    await pc2.close()


async def test_ended_space_refuses_speakers_and_streams(server: Server) -> None:
    space = server.create_space("Ended")
    assert server.api("POST", f"/api/v1/spaces/{space['id']}/end").status_code == 200
    pc, response = await publish(space["whip_url"], token_of(space["speaker_invite_url"]))
    assert_problem(response, 409, "ended")
    async with httpx.AsyncClient() as client:
        assert_problem(await client.get(space["stream_url"]), 409, "ended")
    assert_problem(server.api("POST", f"/api/v1/spaces/{space['id']}/start"), 409, "ended")
    await pc.close()


async def test_stage_refuses_a_voice_past_the_limit(tmp_path: Path) -> None:
    limited = start_server(tmp_path / "data", extra_env={"ROSTRA_MAX_VOICES": "2"})
    try:
        space = limited.create_space("Small stage")
        token = token_of(space["speaker_invite_url"])
        host = token_of(space["host_url"])  # one seat is the host's alone
        seats = [await publish(space["whip_url"], t) for t in (token, host)]
        assert all(r.status_code == 201 for _, r in seats), [r.text for _, r in seats]
        pc, third = await publish(space["whip_url"], token)
        assert_problem(third, 409, "allows 2 voices", "2 are on stage")
        for seat, _ in seats:
            await seat.close()
        await pc.close()
    finally:
        stop_server(limited)


def test_expired_invite_is_refused(tmp_path: Path) -> None:
    short = start_server(tmp_path / "data", extra_env={"ROSTRA_INVITE_TTL_S": "1"})
    try:
        space = short.create_space("Short invites")
        time.sleep(2.1)
        response = httpx.post(
            space["whip_url"],
            content=b"v=0\r\n",
            headers={
                "Content-Type": "application/sdp",
                "Authorization": f"Bearer {token_of(space['speaker_invite_url'])}",
            },
        )
        assert_problem(response, 401, "expired")
    finally:
        stop_server(short)


@pytest.mark.parametrize(
    "path",
    [
        "/live/{id}/..%2F..%2Fsigning_secret",
        "/live/{id}/%2e%2e%2fadmin_token",
        "/live/{id}/seg_1.m4s",
        "/live/{id}/seg_000000.m4s%00.txt",
        "/replay/{id}/..%2Frostra.sqlite3",
        "/live/..%2F..%2Fdata/index.m3u8",
        "/static/..%2F..%2Fapp.py",
        "/live/{id}/state.json/../../../admin_token",
    ],
)
def test_media_urls_refuse_path_traversal(server: Server, path: str) -> None:
    space = server.create_space("Traversal")
    response = httpx.get(server.url + path.replace("{id}", space["id"]))
    assert response.status_code in (404, 409), response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    secret = (server.data / "signing_secret").read_text().strip()
    assert ADMIN_TOKEN not in response.text
    assert secret not in response.text


def test_api_rejects_malformed_requests(server: Server) -> None:
    url = server.url + "/api/v1/spaces"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert_problem(httpx.post(url, json={"title": "x"}), 401)
    assert_problem(
        httpx.post(url, json={"title": "x"}, headers={"Authorization": "Bearer nope"}), 401
    )
    assert_problem(
        httpx.post(url, content=b"{not json", headers={**auth, "Content-Type": "application/json"}),
        400,
        "json",
    )
    assert_problem(
        httpx.post(url, content=b"title=x", headers={**auth, "Content-Type": "text/plain"}), 415
    )
    assert_problem(httpx.post(url, json={"title": ""}, headers=auth), 422, "title")
    assert_problem(httpx.post(url, json={"title": "x", "bogus": 1}, headers=auth), 422, "bogus")
    assert_problem(httpx.post(url, json=[1, 2], headers=auth), 422, "object")
    assert_problem(
        httpx.post(url, json={"title": "x", "scheduled_at": "tomorrow"}, headers=auth), 422
    )
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert_problem(
        httpx.post(url, json={"title": "x", "scheduled_at": naive}, headers=auth), 422, "timezone"
    )
    assert_problem(httpx.get(server.url + "/api/v1/spaces/zzzzzzzzzzzz", headers=auth), 404)
    space = server.create_space("Invites")
    invites = f"{url}/{space['id']}/invites"
    assert_problem(httpx.post(invites, json={"uses": 0}, headers=auth), 422, "uses")
    assert_problem(httpx.post(invites, json={"name": "x" * 61}, headers=auth), 422, "name")
    speaker = token_of(space["speaker_invite_url"])
    assert_problem(
        httpx.post(f"{url}/{space['id']}/end", headers={"Authorization": f"Bearer {speaker}"}),
        403,
        "host",
    )
    response = httpx.delete(f"{url}/{space['id']}/stage/nosuchsession1", headers=auth)
    assert_problem(response, 404, "session")


async def test_bad_requests_do_not_disturb_the_live_program(server: Server) -> None:
    space = server.create_space("Barrage")
    pc, seat = await publish(space["whip_url"], token_of(space["speaker_invite_url"]))
    assert seat.status_code == 201, seat.text
    deadline = time.monotonic() + 6
    statuses: set[int] = set()
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < deadline:
            for response in [
                await client.post(
                    f"{server.whip_base}/whip/{space['id']}",
                    content=b"x" * 70_000,
                    headers={"Content-Type": "application/sdp"},
                ),
                await client.post(
                    f"{server.whip_base}/whip/{space['id']}",
                    content=b"v=0",
                    headers={"Content-Type": "application/sdp", "Authorization": "Bearer a.b.c"},
                ),
                await client.get(f"{server.url}/live/{space['id']}/seg_999999.m4s"),
            ]:
                statuses.add(response.status_code)
        assert statuses <= {401, 404, 413}, statuses
        playlist = (await client.get(f"{server.url}/live/{space['id']}/audio.m3u8")).text
        metrics = (
            await client.get(
                server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
        ).text
    numbers = [int(line[4:10]) for line in playlist.splitlines() if line.startswith("seg_")]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    dropped = [
        line
        for line in metrics.splitlines()
        if line.startswith("rostra_program_frames_dropped_total")
    ]
    assert dropped, metrics[:500]
    assert all(line.endswith(" 0.0") for line in dropped), dropped
    await pc.close()
    assert "Traceback" not in server.log()


def test_media_and_pages_answer_head_like_get(server: Server) -> None:
    space = server.create_space("Head")
    for url in (space["listen_url"], space["hls_url"], space["state_url"], server.url + "/"):
        head = httpx.head(url)
        get = httpx.get(url)
        assert head.status_code == get.status_code == 200, url
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]


def test_whip_options_names_the_ice_servers(tmp_path: Path) -> None:
    with_turn = start_server(
        tmp_path / "data",
        extra_env={
            "ROSTRA_ICE_SERVERS": "stun:stun.example.org:3478,turn:u:p@turn.example.org:3478"
        },
    )
    try:
        space = with_turn.create_space("ICE")
        token = token_of(space["speaker_invite_url"])
        response = httpx.options(space["whip_url"], headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 204
        link = response.headers["link"]
        assert '<stun:stun.example.org:3478>; rel="ice-server"' in link
        assert (
            '<turn:turn.example.org:3478>; rel="ice-server"; username="u"; credential="p"' in link
        )
    finally:
        stop_server(with_turn)


async def test_thirteen_voices_fit_and_the_fourteenth_is_refused(server: Server) -> None:
    space = server.create_space("Full stage")
    invite = server.api("POST", f"/api/v1/spaces/{space['id']}/invites", json={"seats": 12})
    shared = token_of(invite.json()["speaker_invite_url"])
    seats = []
    try:
        for number in range(13):  # twelve speakers, then the host in the seat kept for the host
            token = shared if number < 12 else token_of(space["host_url"])
            pc, response = await publish(space["whip_url"], token, name=f"Voice{number}")
            seats.append(pc)
            assert response.status_code == 201, f"voice {number + 1}: {response.text}"
        pc, refused = await publish(space["whip_url"], shared, name="Fourteen")
        seats.append(pc)
        assert_problem(refused, 409, "allows 13 voices", "13 are on stage")
        async with httpx.AsyncClient() as client:
            state = (await client.get(space["state_url"])).json()
        assert len(state["stage"]) == 13
    finally:
        for seat in seats:
            await seat.close()
