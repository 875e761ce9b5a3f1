"""Moderation against a real `rostra serve` with real aiortc speakers: a mute takes the voice out
of the program within 100 ms (measured on the Ogg/Opus stream a listener hears), a locked mute
cannot be undone by the speaker, co-hosts act on speakers only, a block refuses the device as a
listener and as a speaker, and the moderation log is the host's and co-hosts' to read."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from rostra.media.codecs import CHANNELS
from rostra.media.opus import OpusDecoder
from rostra.stage.moderation import BLOCKS_CACHE_S
from tests.conftest import Server, start_server, stop_server
from tests.stage_api import bearer, mint_token, new_device, problem, stage, token_of
from tests.whip_client import offer

MUTE_BUDGET_MS = 100.0
# a tone's 20 ms frame through the leveller is far above this; digital silence is far below
LOUD_RMS = 0.02
QUIET_RMS = 0.002
WAIT_S = 15.0
OGG_HEADER_BYTES = 27


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("moderation") / "data")
    yield running
    stop_server(running)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def publish(
    server: Server, space_id: str, token: str, device: str | None = None
) -> tuple[RTCPeerConnection, httpx.Response]:
    """A real aiortc offer (a 440 Hz tone) with the device header a speaker page sends."""
    pc, sdp = await offer()
    headers = {"Content-Type": "application/sdp", **bearer(token)}
    if device is not None:
        headers["Rostra-Device"] = device
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{server.whip_base}/whip/{space_id}", content=sdp.encode(), headers=headers
        )
    if response.status_code == 201:
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    else:
        await pc.close()
    return pc, response


def session_of(response: httpx.Response) -> str:
    return response.headers["Location"].rsplit("/", 1)[1]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"never happened: {what}")


@dataclass
class ProgramTap:
    """A listener on the progressive Ogg/Opus stream: each 20 ms packet decoded, with the time its
    page arrived (an upper bound of when the origin made it)."""

    url: str
    packets: list[tuple[float, float]] = field(default_factory=list)  # (arrival_s, rms)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        decoder = OpusDecoder(channels=CHANNELS)
        buffer = bytearray()
        with httpx.stream("GET", self.url, timeout=10) as response:
            for chunk in response.iter_raw():
                arrived_s = time.monotonic()
                buffer += chunk
                for packet in _ogg_packets(buffer):
                    if packet.startswith((b"OpusHead", b"OpusTags")):
                        continue
                    pcm = decoder.decode(packet)
                    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
                    self.packets.append((arrived_s, rms))
                if self.stop.is_set():
                    return

    def loud_for(self, seconds: float) -> bool:
        frames = int(seconds / 0.02)
        recent = self.packets[-frames:]
        return len(recent) == frames and all(rms > LOUD_RMS for _, rms in recent)


def _ogg_packets(buffer: bytearray) -> Iterator[bytes]:
    """Whole pages' packets, removed from `buffer` (pages here never continue a packet)."""
    while len(buffer) >= OGG_HEADER_BYTES:
        assert buffer[:4] == b"OggS"
        segments = buffer[26]
        lacing = buffer[OGG_HEADER_BYTES : OGG_HEADER_BYTES + segments]
        size = OGG_HEADER_BYTES + segments + sum(lacing)
        if len(lacing) < segments or len(buffer) < size:
            return
        body = bytes(buffer[OGG_HEADER_BYTES + segments : size])
        del buffer[:size]
        packet, offset = b"", 0
        for length in lacing:
            packet += body[offset : offset + length]
            offset += length
            if length < 255:
                yield packet
                packet = b""


@contextlib.contextmanager
def program_tap(url: str) -> Iterator[ProgramTap]:
    tap = ProgramTap(url)
    thread = threading.Thread(target=tap.run, daemon=True)
    thread.start()
    try:
        yield tap
    finally:
        tap.stop.set()
        thread.join(timeout=5)


async def test_mute_takes_the_voice_out_of_the_program_within_100_ms_and_a_lock_holds(
    server: Server, http: httpx.AsyncClient
) -> None:
    space = server.create_space("Mute", live=True)
    sid = space["id"]
    host = token_of(space["host_url"])
    invite = mint_token(server, sid, name="Tone")
    pc, response = await publish(server, sid, invite, new_device())
    assert response.status_code == 201, response.text
    session = session_of(response)
    mute_url = f"{server.url}/api/v1/spaces/{sid}/stage/{session}/mute"
    try:
        with program_tap(space["opus_stream_url"]) as tap:
            await asyncio.to_thread(wait_for, "the tone in the program", lambda: tap.loud_for(1))
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(mute_url, json={"muted": True}, headers=bearer(host))
            answered_s = time.monotonic()
            assert answer.status_code == 200, answer.text
            assert answer.json()["muted"] is True
            await asyncio.sleep(1.0)
            packets = list(tap.packets)
        last_loud = max(i for i, (_, rms) in enumerate(packets) if rms > LOUD_RMS)
        assert last_loud < len(packets) - 30, "the voice never left the program"
        first_quiet_s, _ = packets[last_loud + 1]
        after = [rms for _, rms in packets[last_loud + 1 :]]
        assert len(after) > 30
        assert all(rms < QUIET_RMS for rms in after[2:]), after[:10]
        latency_ms = max(0.0, first_quiet_s - answered_s) * 1000
        print(f"\nmute: program without the voice {latency_ms:.1f} ms after the answer")  # noqa: T201
        assert latency_ms < MUTE_BUDGET_MS
        assert any(m["id"] == session and m["muted"] for m in stage(server, sid))

        # the speaker unmutes themselves; the host then mutes and locks, and the speaker cannot
        assert (await http.post(mute_url, json={"muted": False}, headers=bearer(invite))).is_success
        locked = await http.post(
            mute_url, json={"muted": True, "locked": True}, headers=bearer(host)
        )
        assert locked.json() == {**locked.json(), "muted": True, "locked": True}
        refused = await http.post(mute_url, json={"muted": False}, headers=bearer(invite))
        detail = problem(refused, 403, "mute-locked")
        assert session in detail
        assert "locked" in detail
        problem(
            await http.post(mute_url, json={"muted": True, "locked": True}, headers=bearer(invite)),
            403,
            "role-not-allowed",
        )
        # muting themselves again keeps the lock: it is no way round it
        muted_again = await http.post(mute_url, json={"muted": True}, headers=bearer(invite))
        assert muted_again.json() == {**muted_again.json(), "muted": True, "locked": True}
        problem(
            await http.post(mute_url, json={"muted": False}, headers=bearer(invite)),
            403,
            "mute-locked",
        )
        await asyncio.to_thread(
            wait_for,
            "state.json showing the locked mute",
            lambda: any(m["id"] == session and m["locked"] for m in stage(server, sid)),
        )
        assert (await http.post(mute_url, json={"muted": False}, headers=bearer(host))).is_success
        unmuted = await http.post(mute_url, json={"muted": False}, headers=bearer(invite))
        assert unmuted.json()["muted"] is False
    finally:
        await pc.close()


async def test_cohosts_mute_speakers_only_and_mute_all_spares_hosts(
    server: Server, http: httpx.AsyncClient
) -> None:
    space = server.create_space("Co-hosts", live=True)
    sid = space["id"]
    host = token_of(space["host_url"])
    cohost_a = mint_token(server, sid, name="Cora", role="cohost")
    cohost_b = mint_token(server, sid, name="Cole", role="cohost")
    speakers = [mint_token(server, sid, name=f"Speaker {n}") for n in (1, 2)]
    connections: list[RTCPeerConnection] = []
    sessions: dict[str, str] = {}
    try:
        for label, token in [("host", host), ("a", cohost_a), ("b", cohost_b)] + [
            (f"s{n}", token) for n, token in enumerate(speakers)
        ]:
            pc, response = await publish(server, sid, token, new_device())
            assert response.status_code == 201, response.text
            connections.append(pc)
            sessions[label] = session_of(response)

        def mute(token: str, session: str) -> httpx.Response:
            return httpx.post(
                f"{server.url}/api/v1/spaces/{sid}/stage/{session}/mute",
                json={"muted": True},
                headers=bearer(token),
            )

        assert "co-host only on speakers" in problem(
            mute(cohost_a, sessions["host"]), 403, "role-not-allowed"
        )
        problem(mute(cohost_a, sessions["b"]), 403, "role-not-allowed")
        problem(mute(speakers[0], sessions["s1"]), 403, "role-not-allowed")
        assert mute(cohost_a, sessions["s0"]).json()["muted"] is True
        assert mute(host, sessions["a"]).json()["muted"] is True

        everyone = await http.post(
            f"{server.url}/api/v1/spaces/{sid}/stage/mute",
            json={"muted": True, "locked": True},
            headers=bearer(cohost_b),
        )
        assert everyone.status_code == 200, everyone.text
        assert {m["id"] for m in everyone.json()["sessions"]} == {sessions["s0"], sessions["s1"]}

        def settled() -> bool:
            by_id = {m["id"]: m for m in stage(server, sid)}
            return all(by_id[sessions[k]]["locked"] for k in ("s0", "s1")) and not any(
                by_id[sessions[k]]["muted"] for k in ("host", "b")
            )

        await asyncio.to_thread(wait_for, "speakers muted, host and co-host B not", settled)
        removed = await http.delete(
            f"{server.url}/api/v1/spaces/{sid}/stage/{sessions['s1']}", headers=bearer(cohost_a)
        )
        assert removed.status_code == 204, removed.text
        log = await http.get(f"{server.url}/api/v1/spaces/{sid}/moderation", headers=bearer(host))
        assert [(e["action"], e["actor"], e["target"]) for e in log.json()["entries"]] == [
            ("mute", "Cora", sessions["s0"]),
            ("mute", "Host", sessions["a"]),
            ("lock", "Cole", "all speakers"),
            ("remove", "Cora", sessions["s1"]),
        ]
    finally:
        for pc in connections:
            await pc.close()


async def test_block_refuses_the_device_as_listener_and_speaker_and_the_log_is_the_hosts(
    server: Server, http: httpx.AsyncClient
) -> None:
    space = server.create_space("Blocks", live=True)
    sid = space["id"]
    api = f"{server.url}/api/v1/spaces/{sid}"
    host = token_of(space["host_url"])
    cohost = mint_token(server, sid, name="Cora", role="cohost")

    # a listener raises a hand from their device; a co-host blocks the hand
    listener_device = new_device()
    joined = await http.post(f"{api}/join", json={"device": listener_device})
    assert joined.status_code == 201, joined.text
    ticket = joined.json()["ticket"]
    raised = await http.post(
        f"{api}/hand", headers=bearer(ticket) | {"Rostra-Device": listener_device}
    )
    assert raised.status_code == 204, raised.text
    hands = (await http.get(f"{api}/hands", headers=bearer(host))).json()["hands"]
    blocked = await http.post(
        f"{api}/blocks", json={"hand": hands[0]["hand"]}, headers=bearer(cohost)
    )
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["device_blocked"]
    assert blocked.json()["ticket_revoked"]

    refusals: list[httpx.Response] = []

    def refused_join() -> bool:
        response = httpx.post(f"{api}/join", json={"device": listener_device})
        refusals.append(response)
        return response.status_code == 403

    # the worker that blocked refuses at once, the others once their copy (1 s) is read again
    await asyncio.to_thread(wait_for, "the blocked device refused a join", refused_join, 3.0)
    await asyncio.sleep(BLOCKS_CACHE_S)
    detail = problem(refusals[-1], 403, "device-blocked")
    assert sid in detail
    assert "listener" in detail
    for _ in range(4):  # every worker
        problem(
            await http.post(f"{api}/join", json={"device": listener_device}), 403, "device-blocked"
        )
    await asyncio.to_thread(
        wait_for,
        "the blocked listener's ticket refused",
        lambda: httpx.post(f"{api}/heartbeat", headers=bearer(ticket)).status_code == 403,
        3.0,
    )
    assert (await http.post(f"{api}/join", json={"device": new_device()})).status_code == 201
    invite = mint_token(server, sid, name="Back door")
    pc, response = await publish(server, sid, invite, listener_device)
    problem(response, 403, "device-blocked")

    # a speaker on stage is blocked by session: invite revoked, off the stage, device refused
    speaker_device = new_device()
    personal = mint_token(server, sid, name="Troll")
    pc, response = await publish(server, sid, personal, speaker_device)
    assert response.status_code == 201, response.text
    session = session_of(response)
    try:
        problem(
            await http.post(
                f"{api}/blocks", json={"session": session, "hand": "x"}, headers=bearer(host)
            ),
            422,
            "block-target-invalid",
        )
        blocked = await http.post(f"{api}/blocks", json={"session": session}, headers=bearer(host))
        assert blocked.status_code == 200, blocked.text
        assert blocked.json()["invite_revoked"]
        assert blocked.json()["device_blocked"]
        await asyncio.to_thread(
            wait_for,
            "the blocked speaker off the stage",
            lambda: all(m["id"] != session for m in stage(server, sid)),
        )
    finally:
        await pc.close()
    fresh_invite = mint_token(server, sid, name="Troll again")
    _again, response = await publish(server, sid, fresh_invite, speaker_device)
    assert "speaker" in problem(response, 403, "device-blocked")
    # every worker reads the blocks again within a second
    await asyncio.to_thread(
        wait_for,
        "the blocked speaker's device refused a join",
        lambda: httpx.post(f"{api}/join", json={"device": speaker_device}).status_code == 403,
        3.0,
    )
    problem(await http.post(f"{api}/join", json={"device": "short"}), 422, "invalid-fields")

    # the log: the host and co-hosts read it, a speaker or nobody cannot
    log = await http.get(f"{api}/moderation", headers=bearer(host))
    assert log.status_code == 200, log.text
    entries = log.json()["entries"]
    assert [(e["action"], e["actor_role"]) for e in entries] == [
        ("block", "cohost"),
        ("block", "host"),
    ]
    assert entries[1]["target"] == f"session {session}"
    assert entries[1]["target_name"] == "Troll"
    assert entries[0]["at"].endswith("Z")
    assert (await http.get(f"{api}/moderation", headers=bearer(cohost))).status_code == 200
    problem(
        await http.get(f"{api}/moderation", headers=bearer(fresh_invite)), 403, "role-not-allowed"
    )
    problem(await http.get(f"{api}/moderation"), 401, "credential-missing")
    report = await http.get(f"{api}/incident", headers=bearer(host))
    assert report.status_code == 200, report.text
    assert [e["action"] for e in report.json()["moderation"]] == ["block", "block"]


async def test_a_cohost_blocking_the_hosts_hand_leaves_the_host_free_to_speak(
    server: Server, http: httpx.AsyncClient
) -> None:
    """The host listened and raised a hand from their own browser: a co-host blocking that hand
    blocks a listener, never the host's seat. A malformed hand id is 422 before any lookup."""
    space = server.create_space("Host's hand", live=True)
    sid = space["id"]
    api = f"{server.url}/api/v1/spaces/{sid}"
    host = token_of(space["host_url"])
    cohost = mint_token(server, sid, name="Cora", role="cohost")
    host_device = new_device()
    ticket = (await http.post(f"{api}/join", json={"device": host_device})).json()["ticket"]
    raised = await http.post(f"{api}/hand", headers=bearer(ticket) | {"Rostra-Device": host_device})
    assert raised.status_code == 204, raised.text
    (hand,) = (await http.get(f"{api}/hands", headers=bearer(cohost))).json()["hands"]

    for bad in ("\x01" * 16, "0123456789ABCDEF", "0123456789abcd\x7f!", "0" * 64):
        path_hand = httpx.URL(f"{api}/hands/x/invite").copy_with(
            raw_path=f"/api/v1/spaces/{sid}/hands/{quote(bad, safe='')}/invite".encode()
        )
        detail = problem(await http.post(path_hand, headers=bearer(cohost)), 422, "hand-invalid")
        assert bad not in detail
        detail = problem(
            await http.post(f"{api}/blocks", json={"hand": bad}, headers=bearer(cohost)),
            422,
            "hand-invalid",
        )
        assert bad not in detail

    blocked = await http.post(f"{api}/blocks", json={"hand": hand["hand"]}, headers=bearer(cohost))
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["device_blocked"]
    pc, response = await publish(server, sid, host, host_device)
    try:
        assert response.status_code == 201, response.text
    finally:
        await pc.close()
    speaker = mint_token(server, sid, name="Same browser")
    pc, response = await publish(server, sid, speaker, host_device)
    problem(response, 403, "device-blocked")  # a speaker's invite from it is still refused
