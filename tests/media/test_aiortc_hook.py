"""Rostra replaces aiortc's audio jitter buffer at one hook point; this fails if aiortc moves it."""

from __future__ import annotations

import asyncio

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from rostra.media.ice import restrict_ice_host_addresses
from rostra.media.ingest import JITTER_BUFFER_ATTRIBUTE, JitterHook, PacketDropper, hook_receiver
from rostra.media.jitter import JitterBuffer
from rostra.rehearse.speaker import PcmTrack, tone


def test_aiortc_keeps_its_audio_jitter_buffer_where_rostra_hooks() -> None:
    assert JITTER_BUFFER_ATTRIBUTE == "_RTCRtpReceiver__jitter_buffer"
    source = RTCRtpReceiver._handle_rtp_packet.__code__
    assert "_RTCRtpReceiver__jitter_buffer" in source.co_names
    assert "add" in source.co_names


async def hooked_pair(
    hook: JitterHook, *, tone_s: float
) -> tuple[RTCPeerConnection, RTCPeerConnection]:
    """A sender of a tone and a receiver whose audio goes to `hook`, connected over loopback."""
    restrict_ice_host_addresses(["127.0.0.1"])
    local = RTCConfiguration(iceServers=[])  # loopback only, never a public STUN server
    sender, receiver = RTCPeerConnection(local), RTCPeerConnection(local)
    sender.addTransceiver(PcmTrack(tone(440, tone_s)), direction="sendonly")
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    hook_receiver(receiver.getTransceivers()[0].receiver, hook)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(
        RTCSessionDescription(receiver.localDescription.sdp, "answer")
    )
    return sender, receiver


async def test_every_received_packet_reaches_rostras_jitter_buffer() -> None:
    jitter = JitterBuffer()
    hook = JitterHook(jitter, dropper=None)
    sender, receiver = await hooked_pair(hook, tone_s=3)
    frames = []
    for _ in range(100):  # pull as the mixer does, one 20 ms frame at a time
        await asyncio.sleep(0.02)
        frames.append(jitter.pop())
    await sender.close()
    await receiver.close()
    assert hook.stats.packets >= 50, hook.stats
    heard = [f for f in frames if f is not None]
    assert len(heard) >= 50
    assert max(float(np.max(np.abs(f))) for f in heard) > 0.1


async def test_simulated_loss_is_reported_to_the_sender_as_network_loss_would_be() -> None:
    """The dropper strikes before aiortc's receive statistics, so RTCP receiver reports carry
    the loss back to the sender (a browser's Opus encoder adds in-band FEC only for that)."""
    hook = JitterHook(JitterBuffer(), dropper=PacketDropper(0.2, seed=7))
    sender, receiver = await hooked_pair(hook, tone_s=6)
    reported_lost = 0
    for _ in range(60):  # receiver reports come every 0.5-1.5 s
        await asyncio.sleep(0.1)
        report = await sender.getStats()
        reported_lost = max(
            [reported_lost]
            + [s.packetsLost for s in report.values() if s.type == "remote-inbound-rtp"]
        )
        if reported_lost >= 5 and hook.stats.dropped_by_test >= 5:
            break
    await sender.close()
    await receiver.close()
    assert hook.stats.dropped_by_test >= 5, hook.stats
    assert reported_lost >= 5, (reported_lost, hook.stats)
    assert reported_lost <= hook.stats.dropped_by_test  # the loss reported is the drop's
    assert hook.stats.packets > hook.stats.dropped_by_test  # what arrived reached the buffer
