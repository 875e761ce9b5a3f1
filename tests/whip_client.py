"""A minimal in-test WHIP client: a real aiortc offer, for tests that need a stage seat fast."""

from __future__ import annotations

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from rostra.media.ice import restrict_ice_host_addresses
from rostra.rehearse.speaker import PcmTrack, tone


async def offer() -> tuple[RTCPeerConnection, str]:
    restrict_ice_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # never a public STUN server
    pc.addTransceiver(PcmTrack(tone(440, 30)), direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def publish(
    whip_url: str, token: str, *, name: str = ""
) -> tuple[RTCPeerConnection, httpx.Response]:
    """POST a real offer; on 201 the answer is applied so the connection comes up."""
    pc, sdp = await offer()
    url = whip_url + (f"?name={name}" if name else "")
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            url,
            content=sdp.encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
    if response.status_code == 201:
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    else:
        await pc.close()
    return pc, response
