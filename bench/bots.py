"""Benchmark speakers: WHIP clients on aiortc that note when each frame is handed to WebRTC, send
pre-encoded Opus without encoding, and tap their mix-minus as RTP packets arrive.

Every connection offers only 127.0.0.1 as its ICE candidate and asks no STUN server.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urljoin

import av
import httpx
import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rostra.media.ice import restrict_ice_host_addresses
from rostra.media.ingest import DEFAULT_SPEAKER_BITRATE_BPS, hook_receiver
from rostra.rehearse.speaker import PcmTrack, whip_request, whip_target

SAMPLE_RATE_HZ = 48_000
FRAME_SAMPLES = 960
FRAME_DURATION_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE_HZ)
CONNECT_TIMEOUT_S = 20.0
HTTP_TIMEOUT_S = 15.0
# What Chromium's WebRTC Opus encoder does with Rostra's WHIP answer (mono, full band, the
# answer's maxaveragebitrate, in-band FEC allowed, no DTX): `application` is VoIP for a mono
# track; VBR is libopus's default, constrained (WebRTC turns VBR on and leaves the constraint
# alone: at 64 kbit/s it sends about 50, where unconstrained VBR spends 83); and its expected
# packet loss follows the loss the receiver reports (RTCP receiver reports), 0 % on a clean
# network. libopus codes in-band FEC (SILK LBRR) only when that expected loss is above 0, so
# `packet_loss` is the loss the sender has been told of.
CHROMIUM_LIKE_BITRATE_BPS = DEFAULT_SPEAKER_BITRATE_BPS


def chromium_like_options(told_loss_pct: int = 0) -> dict[str, str]:
    return {
        "application": "voip",
        "vbr": "constrained",
        "fec": "1",
        "dtx": "0",
        "packet_loss": str(told_loss_pct),
    }


PayloadSink = Callable[[bytes, float], None]


class TimedPcmTrack(PcmTrack):
    """Sends PCM in real time like `rostra speak`, noting the wall-clock time each frame (by its
    first sample's index) is handed to aiortc's encoder."""

    def __init__(self, pcm: npt.NDArray[np.float32], *, then_silence_s: float = 0.0) -> None:
        super().__init__(pcm, then_silence_s=then_silence_s)
        self.handed_at: dict[int, float] = {}

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        self.handed_at[int(frame.pts or 0)] = time.time()
        return frame

    @property
    def lateness_s(self) -> list[float]:
        """Per frame, how late it was handed over against the schedule set by the first."""
        if not self.handed_at:
            return []
        first = self.handed_at[min(self.handed_at)]
        return [at - (first + pts / SAMPLE_RATE_HZ) for pts, at in self.handed_at.items()]


class OpusPacketTrack(MediaStreamTrack):
    """Sends pre-encoded 20 ms Opus packets in real time, once or in a loop (from `first_packet`);
    aiortc only packetizes them."""

    kind = "audio"

    def __init__(
        self, packets: Sequence[bytes], *, first_packet: int = 0, is_looped: bool = True
    ) -> None:
        super().__init__()
        if not packets:
            raise ValueError("an Opus packet track needs at least one packet")
        self._packets = list(packets)
        self._first = first_packet
        self._is_looped = is_looped
        self._sent = 0
        self._start: float | None = None
        self.finished = asyncio.Event()
        self.lateness_s: list[float] = []

    @property
    def packets_sent(self) -> int:
        return self._sent

    async def recv(self) -> av.Packet:
        if not self._is_looped and self._sent >= len(self._packets):
            self.finished.set()
            self.stop()
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._sent * FRAME_DURATION_S
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        self.lateness_s.append(time.monotonic() - due)
        packet = av.Packet(self._packets[(self._first + self._sent) % len(self._packets)])
        packet.pts = self._sent * FRAME_SAMPLES
        packet.time_base = TIME_BASE
        self._sent += 1
        return packet


def sender_lateness(lateness_s: Sequence[float], *, late_s: float = 0.040) -> dict[str, Any]:
    """How late a bot handed frames to aiortc: a loaded machine delays the sender too, and the
    server's jitter buffer (40 ms of hold) sees that as network jitter."""
    if not lateness_s:
        return {}
    late = np.asarray(lateness_s)
    return {
        "frames": int(late.size),
        "p50_s": round(float(np.percentile(late, 50)), 4),
        "p99_s": round(float(np.percentile(late, 99)), 4),
        "max_s": round(float(late.max()), 4),
        f"frames_over_{round(late_s * 1000)}ms_late": int(np.sum(late > late_s)),
    }


def encode_opus(
    pcm: npt.NDArray[np.float32], *, bitrate_bps: int, options: dict[str, str]
) -> list[bytes]:
    """Mono 48 kHz PCM → 20 ms libopus packets (PyAV), once, to be sent many times."""
    context: Any = av.CodecContext.create("libopus", "w")
    context.sample_rate = SAMPLE_RATE_HZ
    context.layout = "mono"
    context.format = "s16"
    context.bit_rate = bitrate_bps
    context.time_base = TIME_BASE
    context.options = {"frame_duration": "20", **options}
    context.open()
    ints = np.round(np.clip(pcm, -1, 1) * 32_767).astype(np.int16)
    packets: list[bytes] = []
    usable = ints.size - ints.size % FRAME_SAMPLES
    for start in range(0, usable, FRAME_SAMPLES):
        frame = av.AudioFrame.from_ndarray(
            ints[start : start + FRAME_SAMPLES].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = start
        frame.time_base = TIME_BASE
        packets += [bytes(p) for p in context.encode(frame)]
    packets += [bytes(p) for p in context.encode(None)]
    return packets


class ReturnTap:
    """Stands where aiortc keeps the audio jitter buffer of a bot's receiver: counts each mix-minus
    packet, hands its Opus payload and arrival time to `on_payload`, then (if given) passes it on
    to aiortc's own jitter buffer so the stock receive track still plays."""

    def __init__(self, on_payload: PayloadSink | None = None) -> None:
        self.packets = 0
        self._on_payload = on_payload
        self._passthrough: Any = None

    @property
    def dropper(self) -> None:
        """A bot's receiver simulates no loss."""
        return None

    def attach(self, receiver: Any, *, passthrough: bool) -> None:
        if passthrough:
            self._passthrough = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
        hook_receiver(receiver, self)

    def add(self, packet: Any) -> tuple[bool, Any]:
        self.packets += 1
        if self._on_payload is not None:
            self._on_payload(bytes(packet._data), time.time())
        if self._passthrough is not None:
            result: tuple[bool, Any] = self._passthrough.add(packet)
            return result
        return False, None


@dataclass(slots=True)
class Bot:
    """One speaker on stage: its peer connection and its WHIP resource."""

    name: str
    pc: RTCPeerConnection
    resource: str
    token: str
    tap: ReturnTap
    returned: MediaStreamTrack | None = None

    async def wait_connected(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: connection {self.pc.connectionState}")
            await asyncio.sleep(0.05)

    async def leave(self, client: httpx.AsyncClient) -> None:
        try:
            await client.delete(self.resource, headers={"Authorization": f"Bearer {self.token}"})
        finally:
            await self.pc.close()


async def join(
    client: httpx.AsyncClient,
    invite_url: str,
    track: MediaStreamTrack,
    *,
    name: str,
    tap: ReturnTap,
    stock_playout: bool = False,
    whip_url: str | None = None,
) -> Bot:
    """Publish `track` over WHIP and tap the mix-minus; with `stock_playout`, aiortc's own
    jitter buffer and decoder still feed the received track (`Bot.returned`). The endpoint is
    `whip_url` when given (the space's own `whip_url`), else derived from the invite link."""
    target = whip_target(invite_url)
    if whip_url is not None:
        target = replace(target, endpoint=whip_url)
    restrict_ice_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver(track, direction="sendrecv")
    tap.attach(transceiver.receiver, passthrough=stock_playout)
    returned: list[MediaStreamTrack] = []
    pc.on("track", returned.append)
    await pc.setLocalDescription(await pc.createOffer())
    # a listener worker answers the invite-derived endpoint with a 308 to the origin's own port
    response = await whip_request(
        client,
        "POST",
        target.endpoint + f"?name={quote(name)}",
        content=pc.localDescription.sdp.encode(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {target.token}"},
        timeout=HTTP_TIMEOUT_S,
    )
    if response.status_code != 201:
        await pc.close()
        raise RuntimeError(f"{name}: WHIP answered {response.status_code}: {response.text[:300]}")
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    bot = Bot(
        name=name,
        pc=pc,
        resource=urljoin(str(response.url), response.headers["Location"]),
        token=target.token,
        tap=tap,
    )
    bot.returned = returned[0] if returned else None
    return bot
