"""A command-line speaker: publishes a file or a tone over WHIP, and can record its mix-minus.

Rehearsal plane (a client): used by `rostra speak`, tests and rehearsals.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import re
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urljoin, urlparse

import av
import httpx
import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rostra.media.ice import is_loopback, restrict_ice_host_addresses

SAMPLE_RATE_HZ = 48_000
FRAME_SAMPLES = 960
FRAME_DURATION_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
FULL_SCALE = 32_767
TONE_LEVEL = 0.25
HTTP_TIMEOUT_S = 15.0
CONNECT_BUDGET_S = 20.0


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


def load_pcm(path: Path) -> npt.NDArray[np.float32]:
    """Any audio file → mono float32 at 48 kHz (PyAV decodes and resamples)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    chunks: list[npt.NDArray[np.float32]] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def tone(frequency_hz: float, seconds: float) -> npt.NDArray[np.float32]:
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return (TONE_LEVEL * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


class PcmTrack(MediaStreamTrack):
    """Sends PCM in real time as L=R stereo, so aiortc's encoder keeps the level (no -3 dB)."""

    kind = "audio"

    def __init__(self, pcm: npt.NDArray[np.float32], *, then_silence_s: float = 0.0) -> None:
        super().__init__()
        pad = int(then_silence_s * SAMPLE_RATE_HZ)
        total = pcm.size + pad
        total += (-total) % FRAME_SAMPLES
        self._pcm = np.zeros(total, dtype=np.float32)
        self._pcm[: pcm.size] = pcm
        self._index = 0
        self._start: float | None = None
        self.started_at: float | None = None
        self.finished = asyncio.Event()

    @property
    def duration_s(self) -> float:
        return self._pcm.size / SAMPLE_RATE_HZ

    @property
    def is_done(self) -> bool:
        return self._index >= self._pcm.size

    async def recv(self) -> av.AudioFrame:
        if self.is_done:
            self.finished.set()
            self.stop()
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
            self.started_at = time.time()
        frame_number = self._index // FRAME_SAMPLES
        wait = self._start + frame_number * FRAME_DURATION_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self._pcm[self._index : self._index + FRAME_SAMPLES]
        ints = np.round(np.clip(chunk, -1, 1) * FULL_SCALE).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(ints, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = self._index
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE_HZ)
        self._index += FRAME_SAMPLES
        return frame


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


async def ice_servers(endpoint: str) -> list[RTCIceServer]:
    """The STUN/TURN servers the WHIP server names; none (never aiortc's public default) if it
    names none."""
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            response = await client.options(endpoint)
    except httpx.HTTPError:
        return []
    return parse_ice_links(response.headers.get("link", ""))


async def _record(track: MediaStreamTrack, sink: list[npt.NDArray[np.int16]]) -> None:
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        assert isinstance(frame, av.AudioFrame)
        samples = frame.to_ndarray().reshape(-1)
        if frame.layout.name == "stereo":
            samples = samples.reshape(-1, 2).mean(axis=1).astype(np.int16)
        sink.append(samples.astype(np.int16))


def write_wav(path: Path, chunks: list[npt.NDArray[np.int16]]) -> None:
    data = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE_HZ)
        out.writeframes(data.tobytes())


async def speak(
    invite_url: str,
    pcm: npt.NDArray[np.float32],
    *,
    name: str = "",
    record_return: Path | None = None,
    tail_s: float = 0.5,
) -> dict[str, object]:
    """Join the stage, send `pcm` in real time, leave; returns what happened."""
    target = whip_target(invite_url)
    if is_loopback(urlparse(target.endpoint).hostname or ""):
        restrict_ice_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=await ice_servers(target.endpoint)))
    source = PcmTrack(pcm, then_silence_s=tail_s)
    pc.addTransceiver(source, direction="sendrecv")
    received: list[npt.NDArray[np.int16]] = []
    recorders: list[asyncio.Task[None]] = []

    @pc.on("connectionstatechange")
    def _on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            source.finished.set()

    @pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        if record_return is not None and track.kind == "audio":
            recorders.append(asyncio.ensure_future(_record(track, received)))

    await pc.setLocalDescription(await pc.createOffer())
    endpoint = target.endpoint + (f"?name={quote(name)}" if name else "")
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        response = await client.post(
            endpoint,
            content=pc.localDescription.sdp.encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {target.token}"},
        )
        if response.status_code != 201:
            await pc.close()
            raise SpeakError(f"the server answered {response.status_code}: {response.text[:300]}")
        resource = urljoin(target.endpoint, response.headers["Location"])
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        budget_s = source.duration_s + CONNECT_BUDGET_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(source.finished.wait(), timeout=budget_s)
        state = pc.connectionState
        await client.delete(resource, headers={"Authorization": f"Bearer {target.token}"})
    await pc.close()
    for task in recorders:
        task.cancel()
    if record_return is not None:
        write_wav(record_return, received)
    return {
        "resource": resource,
        "connection": state,
        "sent_s": round(pcm.size / SAMPLE_RATE_HZ, 3),
        "started_at": source.started_at,
        "returned_s": round(sum(c.size for c in received) / SAMPLE_RATE_HZ, 3),
    }
