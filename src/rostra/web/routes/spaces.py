"""The spaces API: create, list, read, start, end; speaker invites; the host's stage controls.

Web plane.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from rostra.clock import iso_utc
from rostra.errors import SpeakerNotFound
from rostra.ids import is_session_id
from rostra.web.auth import require_admin, require_admin_or_host
from rostra.web.inputs import PlainText, read_json
from rostra.web.services import Services

router = APIRouter(prefix="/api/v1/spaces", tags=["spaces"])


class SpaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: PlainText = Field(min_length=1, max_length=200)
    # timezone-aware, from 2000 to a year ahead (checked by the space service: 422)
    scheduled_at: datetime | None = None
    live: bool = False


class InviteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: PlainText | None = Field(default=None, max_length=60)
    uses: int | None = Field(default=None, ge=1, le=10_000)
    # a link without a name is shared: it holds at most this many stage seats at once (default
    # 4; at most the stage's voices less the host's seat); a named invite holds one
    seats: int | None = Field(default=None, ge=1)
    # the link opens the speak page in studio mode (no noise suppression or automatic gain, for
    # guests on headphones); strict: `"yes"` or 1 is refused, not read as true
    studio: bool = Field(default=False, strict=True)


class HostLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # end every host link given so far: the new one is the only one that works
    rotate: bool = Field(default=False, strict=True)  # `"yes"` or 1 is refused, not read as true


def _json_body(model: type[BaseModel], *, is_required: bool = True) -> dict[str, Any]:
    """Document a body that the route reads itself (strictly, with problem+json errors)."""
    schema = {"application/json": {"schema": model.model_json_schema()}}
    return {"requestBody": {"required": is_required, "content": schema}}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post("", status_code=201, summary="Create a space", openapi_extra=_json_body(SpaceCreate))
async def create_space(request: Request) -> JSONResponse:
    services = _services(request)
    require_admin(services, request)
    body = await read_json(request, SpaceCreate)
    space = services.spaces.create(body.title, scheduled_at=body.scheduled_at, is_live=body.live)
    services.invites.mint(space.id)
    services.publish_status(space)
    if body.live:
        await services.origin.sync(space.id)
    return JSONResponse(services.space_json(space, is_private=True), status_code=201)


@router.get("", summary="List spaces")
async def list_spaces(request: Request) -> dict[str, Any]:
    services = _services(request)
    require_admin(services, request)
    return {"spaces": [services.space_json(s, is_private=True) for s in services.spaces.list()]}


@router.get("/{space_id}", summary="Read a space")
async def get_space(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    space = services.spaces.get(space_id)
    require_admin_or_host(services, request, space.id)
    return services.space_json(space, is_private=True)


@router.post("/{space_id}/start", summary="Go live")
async def start_space(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    services.spaces.get(space_id)
    require_admin_or_host(services, request, space_id)
    space = services.spaces.start(space_id)
    services.publish_status(space)
    await services.origin.sync(space.id)
    return services.space_json(space, is_private=True)


@router.post("/{space_id}/end", summary="End the space; its recording becomes the replay")
async def end_space(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    services.spaces.get(space_id)
    require_admin_or_host(services, request, space_id)
    space = services.spaces.end(space_id)
    services.publish_status(space)
    await services.origin.sync(space.id)
    return services.space_json(space, is_private=True)


@router.post(
    "/{space_id}/invites",
    status_code=201,
    summary="Mint a speaker invite link",
    openapi_extra=_json_body(InviteCreate, is_required=False),
)
async def create_invite(space_id: str, request: Request) -> JSONResponse:
    services = _services(request)
    services.spaces.get(space_id)
    require_admin_or_host(services, request, space_id)
    services.spaces.require_open(space_id)
    body = await read_json(request, InviteCreate, is_optional=True)
    minted = services.invites.mint(
        space_id, name=body.name, uses=body.uses, seats=body.seats, is_studio=body.studio
    )
    invite_url = services.speaker_invite_url(space_id, minted.token) + minted.link_fragment()
    return JSONResponse(
        {
            "id": minted.record.id,
            "speaker_invite_url": invite_url,
            "expires_at": iso_utc(minted.record.expires_at),
            "name": minted.record.name,
            "uses": minted.record.uses_max,
            "seats": minted.record.seats,
            "studio": minted.is_studio,
        },
        status_code=201,
    )


@router.post(
    "/{space_id}/host-link",
    summary="A fresh host link; with rotate, every older host link stops working (admin)",
    openapi_extra=_json_body(HostLinkCreate, is_required=False),
)
async def host_link(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    space = services.spaces.get(space_id)
    require_admin(services, request)
    body = await read_json(request, HostLinkCreate, is_optional=True)
    link = (
        services.invites.rotate_host_link(space_id)
        if body.rotate
        else services.invites.host_link(space)
    )
    return {
        "host_url": services.url(f"/host/{space_id}?token={link.token}"),
        "host_token": link.token,
        "expires_at": iso_utc(link.expires_at),
        "generation": link.generation,
    }


@router.delete("/{space_id}/invites/{invite_id}", summary="Revoke an invite; its speakers leave")
async def revoke_invite(space_id: str, invite_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    services.spaces.get(space_id)
    require_admin_or_host(services, request, space_id)
    services.invites.revoke(space_id, invite_id)
    removed = await services.origin.end_invite_sessions(space_id, invite_id)
    return {"revoked": invite_id, "sessions_ended": removed}


@router.get("/{space_id}/hands", summary="The hand queue, first raised first (host)")
async def hands(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    services.spaces.get(space_id)
    require_admin_or_host(services, request, space_id)
    queue = await asyncio.to_thread(services.audience.reactions.hands, space_id)
    return {
        "hands": [
            {
                "listener": hand.listener_id[:8],
                "raised_at": iso_utc(datetime.fromtimestamp(hand.raised_at_s, UTC)),
            }
            for hand in queue
        ]
    }


@router.delete("/{space_id}/stage/{session_id}", summary="Remove a speaker from the stage")
async def remove_speaker(space_id: str, session_id: str, request: Request) -> Response:
    services = _services(request)
    services.spaces.get(space_id)
    require_admin_or_host(services, request, space_id)
    if not is_session_id(session_id):  # never pass raw text on to the origin's URL
        raise SpeakerNotFound(f"no speaker session has id '{session_id[:40]}' in '{space_id}'")
    await services.origin.remove_speaker(space_id, session_id)
    return Response(status_code=204)
