"""The stage's holes, closed, against a real `rostra serve` and real aiortc WHIP clients: a guest
cannot hang up the host, one link cannot fill the stage, the host's seat stays free, failed
connections spend no invite use, the host's names win, malformed offers get 400, TURN credentials
go only to a credential and expire, and a rotated host link stops working in every process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from rostra.media.ice import restrict_ice_host_addresses
from tests.conftest import ADMIN_TOKEN, Server, free_port, start_server, stop_server
from tests.stage_api import bearer, problem, stage, token_of, wait_for_stage
from tests.stage_api import mint_token as mint
from tests.whip_client import offer, publish

VOICES = 5  # a small stage: four speakers at most, the fifth seat is the host's
STAGE_WAIT_S = 15.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("holes") / "data", extra_env={"ROSTRA_MAX_VOICES": str(VOICES)}
    )
    yield running
    stop_server(running)


class Seats:
    """Peer connections opened by a test, all closed at its end."""

    def __init__(self, server: Server, space: dict[str, Any]) -> None:
        self.whip_url = f"{server.whip_base}/whip/{space['id']}"
        self.pcs: list[RTCPeerConnection] = []

    async def take(self, token: str, *, name: str = "") -> httpx.Response:
        pc, response = await publish(self.whip_url, token, name=name)
        self.pcs.append(pc)
        return response

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in self.pcs))


async def test_only_the_credential_that_made_a_session_or_the_host_may_end_it(
    server: Server,
) -> None:
    space = server.create_space("Hang-ups")
    sid, host = space["id"], token_of(space["host_url"])
    guest = token_of(space["speaker_invite_url"])
    spent = mint(server, sid, uses=1)
    seats = Seats(server, space)
    try:
        host_session = (await seats.take(host)).headers["location"]
        guest_session = (await seats.take(guest)).headers["location"]
        assert (await seats.take(spent)).status_code == 201  # its one use is spent now
        bo_session = (await seats.take(mint(server, sid, name="Bo"))).headers["location"]
        whip = f"http://127.0.0.1:{server.whip_port}"
        async with httpx.AsyncClient(base_url=whip, timeout=10) as client:
            # session ids are public in state.json: any guest knows the host's
            assert host_session.rsplit("/", 1)[1] in {m["id"] for m in stage(server, sid)}
            for token in (guest, spent):
                refused = await client.delete(host_session, headers=bearer(token))
                problem(refused, 403, "session-not-owned", "was not made with this invite")
            problem(await client.delete(guest_session, headers=bearer(spent)), 403, "not-owned")
            problem(await client.delete(host_session), 401, "credential-missing")
            assert (await client.delete(guest_session, headers=bearer(guest))).status_code == 200
            assert (await client.delete(bo_session, headers=bearer(host))).status_code == 200
            ended = await client.delete(host_session, headers=bearer(ADMIN_TOKEN))
            assert ended.status_code == 200
        remaining = wait_for_stage(server, sid, lambda members: len(members) == 1)
        assert [m["role"] for m in remaining] == ["speaker"]  # the spent invite's own session
    finally:
        await seats.close()


async def test_no_invite_locks_the_host_out_and_refused_connections_spend_no_use(
    server: Server,
) -> None:
    space = server.create_space("Full stage")
    sid, host = space["id"], token_of(space["host_url"])
    two_seats = token_of(
        rostra(server, "space", "invite", sid, "--seats", "2")["speaker_invite_url"]
    )
    four_seats = mint(server, sid, seats=4)
    cy = mint(server, sid, name="Cy", uses=1)
    seats = Seats(server, space)
    try:
        assert [(await seats.take(two_seats)).status_code for _ in range(2)] == [201, 201]
        problem(
            await seats.take(two_seats),
            409,
            "invite-seats-taken",
            "holds at most 2 seats at once; 2 are taken",
        )
        for _ in range(2):
            assert (await seats.take(four_seats)).status_code == 201
        problem(
            await seats.take(four_seats),
            409,
            "stage-full",
            f"allows {VOICES} voices (one seat is kept for the host); 4 are on stage",
        )
        problem(await seats.take(cy), 409, "stage-full")  # Cy's one use is given back
        assert (await seats.take(host)).status_code == 201  # the host's seat was free
        members = wait_for_stage(server, sid, lambda members: len(members) == VOICES)
        assert sorted(m["role"] for m in members) == ["host"] + ["speaker"] * 4
        speaker = next(m["id"] for m in members if m["role"] == "speaker")
        assert server.api("DELETE", f"/api/v1/spaces/{sid}/stage/{speaker}").status_code == 204
        assert (await seats.take(cy)).status_code == 201, "a refused connection spent Cy's use"
        problem(await seats.take(cy), 403, "invite-used-up")
        problem(
            server.api("POST", f"/api/v1/spaces/{sid}/invites", json={"seats": VOICES}),
            422,
            "invalid-fields",
            f"seats is {VOICES}; it must be between 1 and {VOICES - 1}",
        )
    finally:
        await seats.close()


async def test_a_personal_invite_holds_one_session_and_the_hosts_names_win(
    server: Server,
) -> None:
    space = server.create_space("Names")
    sid, host = space["id"], token_of(space["host_url"])
    ann = mint(server, sid, name="Ann")
    seats = Seats(server, space)
    try:
        first = await seats.take(ann, name="Mallory")
        second = await seats.take(ann, name="Mallory")  # Ann's other tab, or a thief of her link
        assert first.status_code == second.status_code == 201
        await seats.take(token_of(space["speaker_invite_url"]), name="Zed")
        await seats.take(host, name="Hostess")
        await seats.take(host)  # the host's other tab takes the host's one seat
        members = wait_for_stage(server, sid, lambda members: len(members) == 3)
        by_name = {m["name"]: m for m in members}
        assert set(by_name) == {"Ann", "Zed", "Host"}, members
        assert by_name["Ann"]["id"] == second.headers["location"].rsplit("/", 1)[1]
        deadline = time.monotonic() + STAGE_WAIT_S
        while seats.pcs[0].connectionState not in ("closed", "failed"):
            assert time.monotonic() < deadline, "the replaced session's connection stayed up"
            await asyncio.sleep(0.2)
    finally:
        await seats.close()


BAD_OFFERS = {
    "m=audio without a port": ("m=audio 9 ", "m=audio ", "has no port"),
    "non-numeric port": ("m=audio 9 ", "m=audio 9x ", "the media port '9x' is not a number"),
    "video first": ("m=audio 9 ", "m=video 9 ", "is video"),
    "truncated candidate": (" typ host", "", "is truncated"),
    "payload type 99999": ("a=rtpmap:96 opus", "a=rtpmap:99999 opus", "99999 is outside 0..127"),
}


async def test_malformed_offers_get_400_and_spend_no_use(server: Server) -> None:
    space = server.create_space("Bad offers")
    one_use = mint(server, space["id"], name="Dee", uses=1)
    pc, good = await offer()
    await pc.close()
    good = good.replace(good[good.index("m=audio ") : good.index(" UDP/TLS")], "m=audio 9")
    seats = Seats(server, space)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for label, (old, new, detail) in BAD_OFFERS.items():
                assert old in good, label
                response = await client.post(
                    seats.whip_url,
                    content=good.replace(old, new, 1).encode(),
                    headers=bearer(one_use) | {"Content-Type": "application/sdp"},
                )
                problem(response, 400, "invalid-sdp", detail)
            duplicated = good + good[good.index("m=audio") :]
            response = await client.post(
                seats.whip_url,
                content=duplicated.encode(),
                headers=bearer(one_use) | {"Content-Type": "application/sdp"},
            )
            problem(response, 400, "invalid-sdp", "2 audio sections")
        assert (await seats.take(one_use)).status_code == 201, "a bad offer spent the use"
    finally:
        await seats.close()


def rostra(server: Server, *args: str) -> dict[str, Any]:
    env = dict(os.environ, ROSTRA_ADMIN_TOKEN=ADMIN_TOKEN, ROSTRA_SERVER=server.url)
    result = subprocess.run(
        [sys.executable, "-m", "rostra", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


async def test_a_rotated_host_link_stops_working_in_every_process(server: Server) -> None:
    space = server.create_space("Rotation")
    sid, old = space["id"], token_of(space["host_url"])
    assert space["host_expires_at"] > "2026"
    fresh = rostra(server, "space", "host-link", sid)  # same generation: both work
    assert set(fresh) >= {"host_url", "host_token", "expires_at"}
    for token in (old, fresh["host_token"]):
        read = server.api("GET", f"/api/v1/spaces/{sid}", headers=bearer(token))
        assert read.status_code == 200, read.text
    rotated = rostra(server, "space", "host-link", sid, "--rotate")
    assert token_of(rotated["host_url"]) == rotated["host_token"]
    seats = Seats(server, space)
    try:
        for token in (old, fresh["host_token"]):
            problem(
                server.api("GET", f"/api/v1/spaces/{sid}", headers=bearer(token)),
                403,
                "host-link-rotated",
                "rotated its host link to generation 1",
            )
            problem(await seats.take(token), 403, "host-link-rotated")  # WHIP, in the origin
        new = rotated["host_token"]
        assert server.api("GET", f"/api/v1/spaces/{sid}/hands", headers=bearer(new)).is_success
        assert (await seats.take(new)).status_code == 201
        host_only = server.api(
            "POST", f"/api/v1/spaces/{sid}/host-link", headers=bearer(new), json={"rotate": True}
        )
        problem(host_only, 401, "credential-invalid")  # rotation is the admin's alone
    finally:
        await seats.close()


def coturn_password(secret: str, username: str) -> str:
    """coturn's `use-auth-secret` rule (TURN REST API): base64(HMAC-SHA1(secret, username))."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), "sha1").digest()).decode()


@contextlib.contextmanager
def running_coturn(folder: Path, secret: str) -> Iterator[int]:
    """Debian's coturn with `use-auth-secret` on a free loopback port; stopped by PID."""
    if shutil.which("turnserver") is None:
        pytest.fail("coturn is missing: `make test` installs it (Debian package coturn)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (folder / "turn.log").open("wb") as log:
        process = subprocess.Popen(
            [
                "turnserver",
                "-n",  # no configuration file: every option is here
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={port}",
                "--use-auth-secret",
                f"--static-auth-secret={secret}",
                "--realm=rostra.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--fingerprint",
                f"--userdb={folder / 'turndb'}",
                f"--pidfile={folder / 'turn.pid'}",
                "--simple-log",
                "--log-file=stdout",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STAGE_WAIT_S
        while not answers_stun(port):
            assert process.poll() is None, (folder / "turn.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "coturn did not answer a STUN binding request"
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def answers_stun(port: int) -> bool:
    """An RFC 8489 Binding request over UDP: True once the server answers it."""
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(request, ("127.0.0.1", port))
        try:
            return sock.recv(2048)[8:20] == request[8:20]
        except TimeoutError:
            return False


async def relay_candidates(turn_url: str, username: str, password: str) -> int:
    """How many relay candidates a real client gathers from the TURN server with this pair."""
    restrict_ice_host_addresses(["127.0.0.1"])
    server = RTCIceServer(urls=turn_url, username=username, credential=password)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[server]))
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp).count(" typ relay")
    finally:
        await pc.close()


async def test_turn_credentials_go_only_to_a_credential_expire_and_open_a_real_relay(
    tmp_path: Path,
) -> None:
    secret = "turn-shared-secret"
    with running_coturn(tmp_path / "coturn", secret) as turn_port:
        turn_url = f"turn:127.0.0.1:{turn_port}"
        with_turn = start_server(
            tmp_path / "data",
            extra_env={
                "ROSTRA_ICE_SERVERS": f"{turn_url},turn:u:p@127.0.0.1:3479",
                "ROSTRA_TURN_SECRET": secret,
                "ROSTRA_TURN_TTL_S": "600",
            },
        )
        try:
            space = with_turn.create_space("TURN")
            async with httpx.AsyncClient(timeout=10) as client:
                anonymous = await client.options(space["whip_url"])
                assert anonymous.status_code == 204
                assert "link" not in anonymous.headers
                forged = await client.options(space["whip_url"], headers=bearer("forged"))
                problem(forged, 401, "invalid")
                asked_at = int(time.time())
                invite = bearer(token_of(space["speaker_invite_url"]))
                link = (await client.options(space["whip_url"], headers=invite)).headers["link"]
        finally:
            stop_server(with_turn)
        assert 'username="u"; credential="p"' in link  # a configured password is kept
        entry = link.split(f"<{turn_url}>")[1].split(", <")[0]
        username = entry.split('username="')[1].split('"')[0]
        password = entry.split('credential="')[1].split('"')[0]
        expiry, label = username.split(":")
        assert label == space["id"]
        assert asked_at + 600 <= int(expiry) <= int(time.time()) + 600
        assert password == coturn_password(secret, username)
        # coturn itself: the pair Rostra gave opens a relay; an expired or forged one does not
        assert await relay_candidates(turn_url, username, password) == 1
        expired = f"{asked_at - 1}:{label}"
        assert await relay_candidates(turn_url, expired, coturn_password(secret, expired)) == 0
        assert await relay_candidates(turn_url, username, coturn_password("guess", username)) == 0
