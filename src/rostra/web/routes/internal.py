"""The origin's internal API, on a Unix socket in the data folder only: stage orders from listener
workers, the origin's health and metrics, and one progressive feed per worker and stream.

Web plane (origin process). Never reachable from the network: the app is served on the socket
alone, and the socket's folder is private to the server's user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field
from starlette.responses import Response, StreamingResponse

from rostra.errors import SpaceNotLive
from rostra.media.broadcast import Broadcast
from rostra.media.origin import StageMember
from rostra.web.origin_client import FRAME_DATA, FRAME_HEADER, frame
from rostra.web.origin_services import OriginServices

router = APIRouter(prefix="/internal", include_in_schema=False)

# a worker may ask for a feed just as the space goes live: wait this long for its pipeline
FEED_WAIT_S = 3.0
FEED_POLL_S = 0.05


def _services(request: Request) -> OriginServices:
    services: OriginServices = request.app.state.services
    return services


@router.post("/spaces/{space_id}/sync")
async def sync(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    await services.sync_space(space_id)
    return {"on_air": space_id in services.origin.space_ids()}


@router.delete("/spaces/{space_id}/stage/{session_id}")
async def remove_speaker(space_id: str, session_id: str, request: Request) -> Response:
    services = _services(request)
    await services.origin.disconnect(space_id, session_id)
    services.publish(space_id)
    return Response(status_code=204)


class MuteOrder(BaseModel):
    muted: bool
    locked: bool = False
    # with no session in the path: every voice holding one of these roles
    roles: list[str] = Field(default_factory=list, max_length=3)


def _member_json(member: StageMember) -> dict[str, Any]:
    return {
        "id": member.id,
        "name": member.name,
        "role": member.role,
        "invite_id": member.invite_id,
        "muted": member.is_muted,
        "locked": member.is_locked,
        "device": member.device_id,
    }


@router.get("/spaces/{space_id}/stage/{session_id}")
async def stage_member(space_id: str, session_id: str, request: Request) -> dict[str, Any]:
    return _member_json(_services(request).origin.member(space_id, session_id))


@router.post("/spaces/{space_id}/stage/{session_id}/mute")
async def mute_speaker(
    space_id: str, session_id: str, order: MuteOrder, request: Request
) -> dict[str, Any]:
    services = _services(request)
    member = services.origin.set_muted(
        space_id, session_id, is_muted=order.muted, is_locked=order.locked
    )
    services.publish(space_id)
    return _member_json(member)


@router.post("/spaces/{space_id}/stage/mute")
async def mute_roles(space_id: str, order: MuteOrder, request: Request) -> dict[str, Any]:
    services = _services(request)
    members = services.origin.set_muted_roles(
        space_id, frozenset(order.roles), is_muted=order.muted, is_locked=order.locked
    )
    services.publish(space_id)
    return {"sessions": [_member_json(m) for m in members]}


@router.post("/spaces/{space_id}/invites/{invite_id}/end")
async def end_invite_sessions(space_id: str, invite_id: str, request: Request) -> dict[str, int]:
    services = _services(request)
    ended = await services.origin.disconnect_invite(space_id, invite_id)
    services.publish(space_id)
    return {"sessions_ended": ended}


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    services = _services(request)
    spaces: dict[str, Any] = {}
    now_s = time.monotonic()
    for space_id in services.origin.space_ids():
        state = services.origin.health(space_id)
        if state is None:
            continue
        last = state.last_segment_at_s
        spaces[space_id] = {
            "ok": state.is_ok,
            "problems": list(state.problems),
            "last_segment_age_s": None if last is None else round(now_s - last, 3),
        }
    return {"status": "ok", "pid": services.pid, "spaces": spaces}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def _broadcast(services: OriginServices, space_id: str, kind: str) -> Broadcast:
    deadline = time.monotonic() + FEED_WAIT_S
    while True:
        pipeline = services.origin.pipeline(space_id)
        if pipeline is not None and pipeline.is_on_air:
            return pipeline.adts if kind == "aac" else pipeline.opus
        if time.monotonic() > deadline:
            raise SpaceNotLive(f"space '{space_id}' is not on air")
        await asyncio.sleep(FEED_POLL_S)


@router.get("/spaces/{space_id}/feeds/{kind}")
async def feed(space_id: str, kind: str, request: Request) -> StreamingResponse:
    if kind not in ("aac", "opus"):
        raise SpaceNotLive(f"there is no feed '{kind[:20]}'")
    broadcast = await _broadcast(_services(request), space_id, kind)

    async def frames() -> AsyncIterator[bytes]:
        # the encoder sets the header as the program starts: it may come after the first chunk
        sent_header = broadcast.header
        if sent_header:
            yield frame(FRAME_HEADER, sent_header)
        async for chunk in broadcast.listen(with_header=False):
            if broadcast.header != sent_header:
                sent_header = broadcast.header
                yield frame(FRAME_HEADER, sent_header)
            yield frame(FRAME_DATA, chunk)

    return StreamingResponse(frames(), media_type="application/octet-stream")
