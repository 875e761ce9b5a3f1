"""A command-line speaker: publishes a frame source (file, tone) over WHIP in real time, can
record its mix-minus, and publishes again by itself when the origin goes away.

How a lost origin is told from a deliberate end of the session:
- The server ends a session on purpose (the host removes the speaker, the WHIP resource is
  DELETEd, the invite is revoked, the space ends) by closing the peer connection: DTLS sends
  close_notify and aiortc's connection state becomes "closed" without this client closing it.
  The speaker then stops; it never re-publishes.
- A dead origin (kill -9, crash) says nothing: the connection goes "failed", or no returned audio
  arrives for RETURN_SILENCE_S (the origin sends the mix-minus every 20 ms, silence included), or
  a publish does not connect within CONNECT_TIMEOUT_S. The speaker then DELETEs its old resource
  (best effort: a live origin frees the seat, a restarted one answers 404) and POSTs a new offer
  with exponential backoff and jitter (Backoff), until it is back or its time is up. 5xx, 429 and
  network errors are retried; 401, 403 (revoked, blocked), 404 (no such space) and 409 (stage
  full, space ended) stop it with the server's reason.
The source continues from where it was (a tone keeps its phase, a file its position) and the
return WAV gets silence for the gap. The first publish is not retried: a refusal or an
unreachable server at the start is reported at once.

Rehearsal plane (a client): used by `rostra speak`, tests and rehearsals.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlparse

import av
import httpx
import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rostra.ice_hosts import is_loopback, restrict_ice_host_addresses
from rostra.rehearse.frames import (
    FRAME_DURATION_S,
    FRAME_SAMPLES,
    SAMPLE_RATE_HZ,
    ArraySource,
    Frame,
    FrameSource,
    ReturnRecorder,
    ThenSilence,
    load_pcm,
    tone,
)

__all__ = ["PcmTrack", "SourceTrack", "SpeakError", "load_pcm", "speak", "tone", "whip_target"]

FULL_SCALE = 32_767
HTTP_TIMEOUT_S = 15.0
DELETE_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 10.0
RETURN_SILENCE_S = 3.0
WATCH_INTERVAL_S = 0.1
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
# answers that mean "not you, not here, not now": never retried
REFUSALS = frozenset({400, 401, 403, 404, 409, 413, 415, 422})
REDIRECTS = frozenset({307, 308})
# a speaker without --seconds stops trying to get back on stage after this long
RECONNECT_GIVE_UP_S = 300.0
MAX_REDIRECTS = 3


class SpeakError(Exception):
    """The server refused the speaker, or the link is not an invite link."""


@dataclass(frozen=True, slots=True)
class WhipTarget:
    endpoint: str
    token: str


def whip_target(invite_url: str) -> WhipTarget:
    """`…/speak/{id}?invite=TOKEN` (or `…/host/{id}?token=…`) → the WHIP endpoint and token."""
    parsed = urlparse(invite_url)
    query = parse_qs(parsed.query)
    token = (query.get("invite") or query.get("token") or [""])[0]
    parts = [p for p in parsed.path.split("/") if p]
    if not token or len(parts) < 2 or parts[-2] not in ("speak", "host"):
        raise SpeakError(f"not an invite link (…/speak/ID?invite=TOKEN): {invite_url[:120]}")
    base = f"{parsed.scheme}://{parsed.netloc}"
    return WhipTarget(endpoint=urljoin(base, f"/whip/{parts[-1]}"), token=token)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between re-publish attempts: doubling from `first_s` to `max_s`, each drawn
    uniformly from its upper half so that speakers cut off together do not return in step."""

    first_s: float = FIRST_BACKOFF_S
    max_s: float = MAX_BACKOFF_S

    def delays_s(self) -> Iterator[float]:
        ceiling = self.first_s
        while True:
            yield random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)
            ceiling = min(ceiling * 2, self.max_s)


class SourceTrack(MediaStreamTrack):
    """Sends a frame source in real time as L=R stereo, so aiortc's encoder keeps the level
    (no -3 dB). One track per connection; the source outlives it."""

    kind = "audio"

    def __init__(self, source: FrameSource) -> None:
        super().__init__()
        self._source = source
        self._sent = 0
        self._start: float | None = None
        self.started_at: float | None = None
        self.finished = asyncio.Event()

    @property
    def is_done(self) -> bool:
        return self.finished.is_set()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
            self.started_at = time.time()
        wait = self._start + self._sent * FRAME_DURATION_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self._source.read_frame()
        if chunk is None:
            self.finished.set()
            self.stop()
            raise MediaStreamError
        return self._frame(chunk)

    def _frame(self, chunk: Frame) -> av.AudioFrame:
        ints = np.round(np.clip(chunk, -1, 1) * FULL_SCALE).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(ints, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = self._sent * FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE_HZ)
        self._sent += 1
        return frame


class PcmTrack(SourceTrack):
    """PCM already in memory, then some silence (tests and benchmarks)."""

    def __init__(self, pcm: Frame, *, then_silence_s: float = 0.0) -> None:
        source = ArraySource(pcm)
        self._duration_s = source.duration_s + then_silence_s
        super().__init__(ThenSilence(source, then_silence_s))

    @property
    def duration_s(self) -> float:
        return self._duration_s


LINK_RE = re.compile(r"<([^>]+)>([^<]*)")


def parse_ice_links(header: str) -> list[RTCIceServer]:
    """RFC 9725 §4.6 `Link: <stun:…>; rel="ice-server"; username=…; credential=…` entries."""
    servers = []
    for url, params in LINK_RE.findall(header):
        if 'rel="ice-server"' not in params:
            continue
        fields = dict(re.findall(r'([a-z-]+)="([^"]*)"', params))
        servers.append(
            RTCIceServer(
                urls=url, username=fields.get("username"), credential=fields.get("credential")
            )
        )
    return servers


async def whip_request(
    client: httpx.AsyncClient, method: str, url: str, **options: Any
) -> httpx.Response:
    """A WHIP request that follows 307/308 to the same host (a listener worker points /whip/ at
    the origin's port) and keeps the Bearer token, which httpx drops when the port changes."""
    host = urlparse(url).hostname
    for _ in range(MAX_REDIRECTS):
        response = await client.request(method, url, **options)
        location = response.headers.get("location", "")
        if response.status_code not in REDIRECTS or not location:
            return response
        url = urljoin(str(response.url), location)
        if urlparse(url).hostname != host:
            raise SpeakError(f"the WHIP endpoint redirects to another host: {url[:120]}")
    return response


async def ice_servers(
    client: httpx.AsyncClient, endpoint: str, token: str = ""
) -> list[RTCIceServer]:
    """The STUN/TURN servers the WHIP server names (to the bearer of a credential of the space);
    none (never aiortc's public default) if it names none."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = await whip_request(client, "OPTIONS", endpoint, headers=headers)
    except httpx.HTTPError:
        return []
    return parse_ice_links(response.headers.get("link", ""))


def _mono_int16(frame: av.AudioFrame) -> npt.NDArray[np.int16]:
    samples = frame.to_ndarray().reshape(-1)
    if frame.layout.name == "stereo":
        samples = samples.reshape(-1, 2).mean(axis=1)
    return samples.astype(np.int16)


def _refusal(response: httpx.Response) -> str:
    detail = response.text[:300]
    with contextlib.suppress(ValueError):
        detail = str(response.json().get("detail", detail))
    return f"the server answered {response.status_code}: {detail}"


@dataclass(eq=False)
class _Session:
    """One publish: a peer connection, its WHIP resource and the task draining its return."""

    pc: RTCPeerConnection
    track: SourceTrack
    posted_s: float = field(default_factory=time.monotonic)
    resource: str = ""
    connected_s: float | None = None
    last_return_s: float | None = None
    is_closing: bool = False
    is_closed_by_server: bool = False
    is_failed: bool = False
    drains: list[asyncio.Task[None]] = field(default_factory=list)

    def outcome(self, now_s: float) -> str | None:
        """Why this session is over, or None while it is fine."""
        if self.track.is_done:
            return "finished"
        if self.is_closed_by_server:
            return "closed-by-server"
        if self.is_failed:
            return "lost"
        if self.connected_s is None:
            return "lost" if now_s - self.posted_s > CONNECT_TIMEOUT_S else None
        heard_s = max(self.connected_s, self.last_return_s or 0.0)
        return "lost" if now_s - heard_s > RETURN_SILENCE_S else None


class Speaker:
    """One `rostra speak` run: publish, watch the connection, re-publish when the origin is lost."""

    def __init__(
        self,
        target: WhipTarget,
        source: FrameSource,
        *,
        name: str,
        recorder: ReturnRecorder | None,
        run_s: float | None,
        backoff: Backoff,
    ) -> None:
        self._target = target
        self._source = source
        self._endpoint = target.endpoint + (f"?name={quote(name)}" if name else "")
        # the invite's endpoint: back to it when the origin's own stops answering (moved ports)
        self._invite_endpoint = self._endpoint
        self._recorder = recorder
        self._run_s = run_s
        self._backoff = backoff
        self._auth = {"Authorization": f"Bearer {target.token}"}
        self._ice: list[RTCIceServer] = []
        self._deadline_s: float | None = None
        self.started_at: float | None = None
        self.publishes = 0
        self.returned_samples = 0
        self.ended = ""
        self.connection = "new"
        self.resource = ""

    async def run(self, client: httpx.AsyncClient) -> None:
        self._ice = await ice_servers(client, self._target.endpoint, self._target.token)
        try:
            session = await self._publish(client)
        except httpx.TransportError as exc:
            raise SpeakError(
                f"the server at {self._target.endpoint} cannot be reached: {exc}"
            ) from exc
        assert session is not None  # the first publish raises rather than waits
        while True:
            outcome = await self._watch(session)
            self.connection = session.pc.connectionState
            await self._close(client, session, tell_server=outcome != "closed-by-server")
            if outcome != "lost":
                self.ended = outcome
                return
            next_session = await self._republish(client)
            if next_session is None:
                self.ended = "deadline"
                return
            session = next_session

    def _is_past_deadline(self) -> bool:
        return self._deadline_s is not None and time.monotonic() >= self._deadline_s

    async def _watch(self, session: _Session) -> str:
        while True:
            if session.track.started_at is not None and self.started_at is None:
                self.started_at = session.track.started_at
                if self._run_s is not None:
                    self._deadline_s = time.monotonic() + self._run_s
            if self._is_past_deadline():
                return "deadline"
            outcome = session.outcome(time.monotonic())
            if outcome is not None:
                return outcome
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _republish(self, client: httpx.AsyncClient) -> _Session | None:
        started_s = time.monotonic()
        for delay_s in self._backoff.delays_s():
            if self._is_past_deadline():
                return None
            if time.monotonic() - started_s > RECONNECT_GIVE_UP_S:
                raise SpeakError(
                    f"the server did not take this speaker back within {RECONNECT_GIVE_UP_S:.0f} s"
                )
            await asyncio.sleep(delay_s)
            try:
                session = await self._publish(client)
            except httpx.TransportError:
                self._endpoint = self._invite_endpoint
                continue
            if session is not None:
                return session
        return None  # pragma: no cover (the delays never end)

    async def _publish(self, client: httpx.AsyncClient) -> _Session | None:
        """A new connection on stage; None when the server is away (5xx, 429: try again)."""
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice))
        session = _Session(pc=pc, track=SourceTrack(self._source))
        pc.addTransceiver(session.track, direction="sendrecv")
        self._watch_state(session)
        try:
            await pc.setLocalDescription(await pc.createOffer())
            response = await whip_request(
                client,
                "POST",
                self._endpoint,
                content=pc.localDescription.sdp.encode(),
                headers={"Content-Type": "application/sdp"} | self._auth,
            )
            if response.status_code in REFUSALS or (
                self.publishes == 0 and response.status_code != 201
            ):
                raise SpeakError(_refusal(response))
            if response.status_code != 201:
                await self._close(client, session, tell_server=False)
                return None
            session.resource = urljoin(str(response.url), response.headers["Location"])
            # publish again straight to the origin's endpoint, never through a listener worker
            self._endpoint = str(response.url)
            await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        except BaseException:
            await self._close(client, session, tell_server=False)
            raise
        session.posted_s = time.monotonic()
        self.publishes += 1
        self.resource = session.resource
        return session

    def _watch_state(self, session: _Session) -> None:
        pc = session.pc

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            state = pc.connectionState
            if state == "connected" and session.connected_s is None:
                session.connected_s = time.monotonic()
            elif state == "failed":
                session.is_failed = True
            elif state == "closed" and not session.is_closing:
                session.is_closed_by_server = True

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                session.drains.append(asyncio.ensure_future(self._drain(session, track)))

    async def _drain(self, session: _Session, track: MediaStreamTrack) -> None:
        """Read every returned frame (aiortc queues them without bound otherwise)."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.AudioFrame)
            session.last_return_s = time.monotonic()
            samples = _mono_int16(frame)
            self.returned_samples += samples.size
            if self._recorder is not None:
                self._recorder.write(samples)

    async def _close(
        self, client: httpx.AsyncClient, session: _Session, *, tell_server: bool
    ) -> None:
        session.is_closing = True
        if tell_server and session.resource:
            with contextlib.suppress(httpx.HTTPError):
                await client.delete(session.resource, headers=self._auth, timeout=DELETE_TIMEOUT_S)
        await session.pc.close()
        for task in session.drains:
            task.cancel()
        session.track.stop()


async def speak(
    invite_url: str,
    source: FrameSource | Frame,
    *,
    name: str = "",
    record_return: Path | None = None,
    tail_s: float = 0.5,
    run_s: float | None = None,
    backoff: Backoff | None = None,
) -> dict[str, object]:
    """Join the stage, send `source` in real time (then `tail_s` of silence), leave; re-publish
    when the origin is lost, until the source is sent or `run_s` seconds (wall clock, from the
    first frame sent) have passed. Returns what happened."""
    target = whip_target(invite_url)
    if is_loopback(urlparse(target.endpoint).hostname or ""):
        restrict_ice_host_addresses(["127.0.0.1"])
    frames = ArraySource(source) if isinstance(source, np.ndarray) else source
    recorder = ReturnRecorder(record_return) if record_return is not None else None
    speaker = Speaker(
        target,
        ThenSilence(frames, tail_s),
        name=name,
        recorder=recorder,
        run_s=None if run_s is None else run_s + tail_s,
        backoff=backoff or Backoff(),
    )
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            await speaker.run(client)
    finally:
        if recorder is not None:
            recorder.close()
    return {
        "resource": speaker.resource,
        "connection": speaker.connection,
        "ended": speaker.ended,
        "publishes": speaker.publishes,
        "sent_s": round(frames.frames_read * FRAME_DURATION_S, 3),
        "started_at": speaker.started_at,
        "returned_s": round(speaker.returned_samples / SAMPLE_RATE_HZ, 3),
    }
