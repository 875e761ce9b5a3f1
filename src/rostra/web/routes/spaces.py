"""The spaces API: create, list, read, start, end; speaker and co-host invites; the hand queue
and invites from it; the stage controls of the host and co-hosts.

Web plane.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from rostra.clock import iso_utc
from rostra.errors import HandNotFound
from rostra.stage.invites import check_hand, find_hand, hand_id
from rostra.stage.moderation import Action, check_session, require_may_act, role_of
from rostra.stage.roles import Role
from rostra.web.auth import require_admin, require_admin_or_host, require_moderator
from rostra.web.inputs import PlainText, bearer, read_json
from rostra.web.routes.moderation import record as record_moderation
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
    # a co-host runs the stage with the host (hands, removals of speakers); personal, at most 2
    role: Literal["speaker", "cohost"] = "speaker"


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
        space_id,
        name=body.name,
        uses=body.uses,
        seats=body.seats,
        is_studio=body.studio,
        role=Role(body.role),
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
            "role": body.role,
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


@router.get("/{space_id}/hands", summary="The hand queue, first raised first (host, co-host)")
async def hands(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    services.spaces.get(space_id)
    require_moderator(services, request, space_id)
    queue = await asyncio.to_thread(services.audience.reactions.hands, space_id)
    invited = await asyncio.to_thread(_invited_hands, services, space_id)
    return {
        "hands": [
            {
                "hand": hand_id(hand.listener_id),
                "listener": hand.listener_id[:8],
                "raised_at": iso_utc(datetime.fromtimestamp(hand.raised_at_s, UTC)),
                "invited": services.invites.hand_invite_id(space_id, hand.listener_id) in invited,
            }
            for hand in queue
        ]
    }


def _invited_hands(services: Services, space_id: str) -> set[str]:
    """The ids of the space's invites alive and unused (one store read for the whole queue)."""
    now = services.clock.now()
    return {
        invite.id
        for invite in services.store.list_invites(space_id)
        if not invite.is_revoked
        and invite.expires_at > now
        and (invite.uses_max is None or invite.uses_count < invite.uses_max)
    }


class HandInvite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # the name the listener has on stage (default: "Listener" and the hand's first characters)
    name: PlainText | None = Field(default=None, max_length=60)


@router.post(
    "/{space_id}/hands/{hand}/invite",
    status_code=201,
    summary="Invite the listener of a raised hand to speak (host, co-host)",
    openapi_extra=_json_body(HandInvite, is_required=False),
    responses={200: {"description": "The listener's invite, unused: the same one (idempotent)"}},
)
async def invite_hand(space_id: str, hand: str, request: Request) -> JSONResponse:
    """201 a new personal speaker invite for the hand's listener, who alone reads it (`GET
    …/hand` with their ticket); 200 the same invite when that listener was invited already."""
    services = _services(request)
    services.spaces.get(space_id)
    actor = require_moderator(services, request, space_id)
    check_hand(hand)
    services.spaces.require_open(space_id)
    body = await read_json(request, HandInvite, is_optional=True)
    queue = await asyncio.to_thread(services.audience.reactions.hands, space_id)
    raised = find_hand(queue, hand)
    if raised is None:
        raise HandNotFound(f"space '{space_id}' has no raised hand '{hand}'")
    name = body.name or f"Listener {hand[:4]}"
    minted, is_new = await asyncio.to_thread(
        services.invites.invite_hand, space_id, raised.listener_id, name
    )
    if is_new:
        await record_moderation(request, space_id, actor, Action.INVITE, f"hand {hand}", name)
    return JSONResponse(
        {
            "hand": hand,
            "invite": minted.record.id,
            "name": minted.record.name,
            "expires_at": iso_utc(minted.record.expires_at),
        },
        status_code=201 if is_new else 200,
    )


@router.get("/{space_id}/hand", summary="Was my raised hand invited to speak? (Bearer ticket)")
async def my_hand(space_id: str, request: Request) -> JSONResponse:
    """Polled about every second by a listener's page while its hand is up; answered privately
    (`Cache-Control: private, no-store`): the invite is for the ticket's own listener only."""
    services = _services(request)
    ticket = services.audience.gate.verify(bearer(request), space_id)  # no storage to say no
    minted = await asyncio.to_thread(services.invites.hand_invite, space_id, ticket.listener_id)
    body: dict[str, Any] = {"invited": minted is not None}
    if minted is not None:
        body |= {
            "name": minted.record.name,
            "speaker_invite_url": services.speaker_invite_url(space_id, minted.token),
            "whip_url": f"{services.settings.whip_base_url}/whip/{space_id}",
            "token": minted.token,
            "expires_at": iso_utc(minted.record.expires_at),
        }
    return JSONResponse(body, headers={"Cache-Control": "private, no-store"})


@router.delete(
    "/{space_id}/stage/{session_id}", summary="Remove a speaker from the stage (host, co-host)"
)
async def remove_speaker(space_id: str, session_id: str, request: Request) -> Response:
    services = _services(request)
    services.spaces.get(space_id)
    actor = require_moderator(services, request, space_id)
    check_session(session_id)
    # the target's role as the origin knows it now (404 when there is no such session)
    member = await services.origin.stage_member(space_id, session_id)
    require_may_act(actor, role_of(str(member["role"])), "remove", f"session '{session_id}'")
    await services.origin.remove_speaker(space_id, session_id)
    await record_moderation(
        request, space_id, actor, Action.REMOVE, session_id, str(member["name"])
    )
    return Response(status_code=204)
