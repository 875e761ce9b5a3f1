"""WHIP ingest (RFC 9725) on aiortc: one peer connection per speaker, its Opus packets handed to
Rostra's jitter buffer, and the speaker's mix-minus sent back on the same connection.

Media plane. aiortc's own audio jitter buffer is replaced at one hook point (see hook_receiver);
aiortc is pinned to a minor version and tests/media/test_aiortc_hook.py fails if the hook moves.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from rostra.errors import InvalidSdp
from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm, to_stereo_int16
from rostra.media.encode import TIME_BASE
from rostra.media.ice import IceServer
from rostra.media.jitter import JitterBuffer
from rostra.media.opus import OpusDecoder, OpusError
from rostra.media.sdp_answer import ask_for_full_band_opus
from rostra.media.whip_compat import decline_all_but_the_voice

log = logging.getLogger(__name__)

JITTER_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"
RETURN_QUEUE_FRAMES = 10
ICE_GATHER_TIMEOUT_S = 10.0
# what the answer asks a speaker's Opus encoder for, unless the origin is told otherwise
DEFAULT_SPEAKER_BITRATE_BPS = 96_000


class PacketDropper:
    """Seeded random loss in the receive path: proves concealment in tests and benchmarks."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._random = random.Random(seed)  # noqa: S311 - loss simulation, not security

    def should_drop(self) -> bool:
        return self.rate > 0 and self._random.random() < self.rate


@dataclass(slots=True)
class ReceiveStats:
    packets: int = 0
    dropped_by_test: int = 0
    # what the speaker sent: Opus payload bytes, and packets carrying in-band FEC (LBRR)
    payload_bytes: int = 0
    fec_packets: int = 0
    last_packet_s: float = field(default_factory=time.monotonic)


class JitterHook:
    """Stands where aiortc keeps its audio jitter buffer: every depayloaded packet goes to ours."""

    def __init__(self, jitter: JitterBuffer, dropper: PacketDropper | None) -> None:
        self.jitter = jitter
        self.stats = ReceiveStats()
        self._dropper = dropper
        # only parses packets (no decoder state is used): apart from the jitter buffer's decoder,
        # which lives on the mixer's thread
        self._parser = OpusDecoder()

    def add(self, packet: Any) -> tuple[bool, None]:
        self.stats.packets += 1
        self.stats.last_packet_s = time.monotonic()
        payload = bytes(packet._data)
        self.stats.payload_bytes += len(payload)
        if self._carries_fec(payload):
            self.stats.fec_packets += 1
        self.jitter.push(packet.sequence_number, packet.timestamp, payload)
        return False, None

    @property
    def dropper(self) -> PacketDropper | None:
        return self._dropper

    def drops(self) -> bool:
        """Whether the simulated network loses this packet (counted when it does)."""
        if self._dropper is None or not self._dropper.should_drop():
            return False
        self.stats.dropped_by_test += 1
        return True

    def _carries_fec(self, payload: bytes) -> bool:
        try:
            return self._parser.has_fec(payload)
        except OpusError:
            return False  # a corrupt payload: the jitter buffer counts it


def hook_receiver(receiver: Any, hook: JitterHook) -> None:
    if not hasattr(receiver, JITTER_BUFFER_ATTRIBUTE):
        raise RuntimeError(
            "aiortc's RTCRtpReceiver no longer keeps its jitter buffer in "
            f"{JITTER_BUFFER_ATTRIBUTE}; update rostra.media.ingest for this aiortc version"
        )
    setattr(receiver, JITTER_BUFFER_ATTRIBUTE, hook)
    if hook.dropper is not None:
        _drop_before_statistics(receiver, hook)


def _drop_before_statistics(receiver: Any, hook: JitterHook) -> None:
    """Simulated loss strikes where a network's would: before aiortc counts the packet, so its
    RTCP receiver reports tell the sender, whose Opus encoder then adds in-band FEC as it would
    for real loss (libopus writes FEC only for the loss the receiver reports)."""
    handle = receiver._handle_rtp_packet

    async def handle_unless_lost(packet: Any, arrival_time_ms: int) -> None:
        if not hook.drops():
            await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle_unless_lost


class ReturnTrack(MediaStreamTrack):
    """The mix-minus, as an aiortc track: frames arrive from the mixer thread at real time."""

    kind = "audio"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._event_loop = loop
        self._queue: asyncio.Queue[Pcm] = asyncio.Queue(maxsize=RETURN_QUEUE_FRAMES)
        self._pts = 0

    def push_threadsafe(self, pcm: Pcm) -> None:
        self._event_loop.call_soon_threadsafe(self._push, pcm)

    def _push(self, pcm: Pcm) -> None:
        if self._queue.full():
            self._queue.get_nowait()  # drop the oldest frame: latency stays bounded
        self._queue.put_nowait(pcm)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pcm = await self._queue.get()
        frame = av.AudioFrame.from_ndarray(to_stereo_int16(pcm), format="s16", layout="stereo")
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += FRAME_SAMPLES
        return frame


def _configuration(ice_servers: Sequence[IceServer]) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=s.url, username=s.username, credential=s.credential)
            for s in ice_servers
        ]
    )


def _check_offer(sdp: str) -> None:
    if not sdp.lstrip().startswith("v=0"):
        raise InvalidSdp("the body is not an SDP offer: it must start with 'v=0'")
    if "\nm=audio" not in sdp.replace("\r\n", "\n"):
        raise InvalidSdp("the SDP offer has no audio media section ('m=audio')")


class WhipConnection:
    """One speaker's peer connection: receives their voice, sends their mix-minus."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        ice_servers: Sequence[IceServer],
        dropper: PacketDropper | None,
        on_closed: Callable[[], None],
        speaker_bitrate_bps: int = DEFAULT_SPEAKER_BITRATE_BPS,
    ) -> None:
        self.jitter = JitterBuffer()
        self._speaker_bitrate_bps = speaker_bitrate_bps
        self.hook = JitterHook(self.jitter, dropper)
        self.return_track = ReturnTrack(loop)
        self._pc = RTCPeerConnection(_configuration(ice_servers))
        self._on_closed = on_closed
        self._is_closed = False

        @self._pc.on("connectionstatechange")
        async def _state_changed() -> None:
            if self._pc.connectionState in ("failed", "closed"):
                await self.close()

    async def answer(self, offer_sdp: str) -> str:
        _check_offer(offer_sdp)
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise InvalidSdp(f"the SDP offer cannot be used: {exc}") from exc
        audio = [t for t in self._pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise InvalidSdp("the SDP offer has no audio media section Rostra can receive")
        hook_receiver(audio[0].receiver, self.hook)
        decline_all_but_the_voice(self._pc.getTransceivers(), audio[0])
        self._pc.addTrack(self.return_track)
        try:
            answer = await self._pc.createAnswer()
            async with asyncio.timeout(ICE_GATHER_TIMEOUT_S):
                await self._pc.setLocalDescription(answer)
        except (ValueError, KeyError) as exc:
            raise InvalidSdp(f"no answer can be made for this offer: {exc}") from exc
        # aiortc keeps the answer it made; only the text sent to the speaker asks for more
        return ask_for_full_band_opus(
            str(self._pc.localDescription.sdp), bitrate_bps=self._speaker_bitrate_bps
        )

    async def close(self) -> None:
        if self._is_closed:
            return
        self._is_closed = True
        self.return_track.stop()
        await self._pc.close()
        self._on_closed()
