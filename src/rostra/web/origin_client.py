"""How a listener worker talks to the origin process: over a Unix socket in the data folder, never
on a listener's behalf — stage orders from the host, and one progressive feed per stream.

Web plane. The origin also reconciles with the space store every second, so an order lost while
it restarts is carried out anyway.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from rostra.errors import OriginUnavailable, SpaceNotLive, SpeakerNotFound

log = logging.getLogger(__name__)

SOCKET_NAME = "origin.sock"
ORDER_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 1.0
# a feed is a long stream: only connecting is bounded
FEED_TIMEOUT = httpx.Timeout(connect=2.0, read=None, write=5.0, pool=2.0)
FRAME_HEADER_BYTES = 5
FRAME_HEADER = b"H"
FRAME_DATA = b"D"
MAX_FRAME_BYTES = 1 << 20


def frame(kind: bytes, chunk: bytes) -> bytes:
    """One feed frame: kind (header or data), 4-byte big-endian length, the bytes."""
    return kind + len(chunk).to_bytes(4, "big") + chunk


async def read_frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[bytes, bytes]]:
    """The frames of a feed, whatever the transport's chunking."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= FRAME_HEADER_BYTES:
            kind = bytes(buffer[:1])
            length = int.from_bytes(buffer[1:FRAME_HEADER_BYTES], "big")
            if kind not in (FRAME_HEADER, FRAME_DATA) or length > MAX_FRAME_BYTES:
                raise ValueError(f"feed frame of kind {kind!r} and {length} bytes is malformed")
            if len(buffer) < FRAME_HEADER_BYTES + length:
                break
            yield kind, bytes(buffer[FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + length])
            del buffer[: FRAME_HEADER_BYTES + length]


class OriginClient:
    def __init__(self, run_dir: Path) -> None:
        self.socket_path = run_dir / SOCKET_NAME
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket_path)),
            base_url="http://origin",
            timeout=ORDER_TIMEOUT_S,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        timeout_s: float = ORDER_TIMEOUT_S,
        body: dict[str, Any] | None = None,
    ) -> Any:
        try:
            response = await self._client.request(method, path, timeout=timeout_s, json=body)
        except httpx.HTTPError as error:
            raise OriginUnavailable(
                "the origin (the speakers' path) does not answer; it restarts by itself",
                retry_after_s=2.0,
            ) from error
        if response.status_code == httpx.codes.NOT_FOUND:
            raise SpeakerNotFound(str(response.json().get("detail", "not found")))
        response.raise_for_status()
        return response.json() if response.content else None

    async def sync(self, space_id: str) -> None:
        """Ask the origin to follow the store now (go live, end); it also does so every second."""
        try:
            await self._call("POST", f"/internal/spaces/{space_id}/sync")
        except OriginUnavailable:
            log.warning("origin away; it will sync on its own", extra={"space": space_id})

    async def remove_speaker(self, space_id: str, session_id: str) -> None:
        await self._call("DELETE", f"/internal/spaces/{space_id}/stage/{session_id}")

    async def stage_member(self, space_id: str, session_id: str) -> dict[str, Any]:
        """One voice on stage as the origin knows it: id, name, role, invite_id, muted, locked,
        device (404 SpeakerNotFound when there is no such session)."""
        member: dict[str, Any] = await self._call(
            "GET", f"/internal/spaces/{space_id}/stage/{session_id}"
        )
        return member

    async def mute(
        self, space_id: str, session_id: str, *, is_muted: bool, is_locked: bool
    ) -> dict[str, Any]:
        """Mute or unmute one voice: the mixer leaves it out (or in) from its next tick."""
        member: dict[str, Any] = await self._call(
            "POST",
            f"/internal/spaces/{space_id}/stage/{session_id}/mute",
            body={"muted": is_muted, "locked": is_locked},
        )
        return member

    async def mute_roles(
        self, space_id: str, roles: list[str], *, is_muted: bool, is_locked: bool
    ) -> list[dict[str, Any]]:
        """Mute or unmute every voice on stage holding one of `roles`; the members changed."""
        body = await self._call(
            "POST",
            f"/internal/spaces/{space_id}/stage/mute",
            body={"muted": is_muted, "locked": is_locked, "roles": roles},
        )
        return list(body["sessions"])

    async def end_invite_sessions(self, space_id: str, invite_id: str) -> int:
        body = await self._call("POST", f"/internal/spaces/{space_id}/invites/{invite_id}/end")
        return int(body["sessions_ended"])

    async def health(self) -> dict[str, Any]:
        """The origin's own report; OriginUnavailable when it does not answer, or answers that
        its check failed (an error status)."""
        try:
            body: dict[str, Any] = await self._call("GET", "/internal/health", HEALTH_TIMEOUT_S)
        except httpx.HTTPStatusError as error:
            status = error.response.status_code
            raise OriginUnavailable(
                f"the origin's health check answered {status}", retry_after_s=2.0
            ) from error
        return body

    async def metrics_text(self) -> str:
        try:
            response = await self._client.get("/internal/metrics", timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError:
            return ""
        return response.text if response.status_code == httpx.codes.OK else ""

    async def feed(self, space_id: str, kind: str) -> AsyncIterator[tuple[bytes, bytes]]:
        """The space's encoded stream `kind` (aac or opus) as frames, until the origin ends it."""
        path = f"/internal/spaces/{space_id}/feeds/{kind}"
        async with self._client.stream("GET", path, timeout=FEED_TIMEOUT) as response:
            if response.status_code != httpx.codes.OK:
                raise SpaceNotLive(f"space '{space_id}' is not on air at the origin")
            async for item in read_frames(response.aiter_raw()):
                yield item
