"""WHIP (RFC 9725): POST an SDP offer to join the stage, DELETE the session resource to leave.

Web plane (origin process): served on the origin's own port, never by a listener worker.
"""

from __future__ import annotations

import asyncio
import hmac
from functools import partial

from fastapi import APIRouter, Request
from starlette.responses import Response

from rostra.errors import InvalidSdp, MethodNotAllowed
from rostra.media.origin import SeatClaim
from rostra.stage.invites import clean_name
from rostra.stage.moderation import DEVICE_HEADER, ModerationService, check_device
from rostra.stage.roles import Credential, Role, may_moderate
from rostra.web.inputs import bearer, read_body
from rostra.web.origin_services import OriginServices

router = APIRouter(tags=["whip"])

SDP_TYPE = "application/sdp"


def _services(request: Request) -> OriginServices:
    services: OriginServices = request.app.state.services
    return services


@router.post(
    "/whip/{space_id}",
    status_code=201,
    summary="Publish a voice (WHIP)",
    openapi_extra={
        "requestBody": {"required": True, "content": {SDP_TYPE: {"schema": {"type": "string"}}}},
        "parameters": [
            {"name": "name", "in": "query", "required": False, "schema": {"type": "string"}}
        ],
    },
)
async def publish(space_id: str, request: Request) -> Response:
    services = _services(request)
    services.spaces.get(space_id)
    token = bearer(request)
    role = services.invites.authorize(token, space_id, consume=False).role
    services.spaces.require_open(space_id)
    device_id = await _allowed_device(request, space_id, role)
    body = await read_body(request, limit=services.settings.max_sdp_bytes, content_type=SDP_TYPE)
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSdp("the SDP offer is not UTF-8 text") from exc
    asked_name = clean_name(request.query_params.get("name"))
    credential = services.invites.authorize(token, space_id, consume=True)
    claim = SeatClaim(role=credential.role, invite_id=credential.invite_id, seats=credential.seats)
    try:
        member, answer = await services.origin.connect(
            space_id,
            offer,
            name=_speaker_name(credential, asked_name),
            claim=claim,
            device_id=device_id or "",
        )
    except BaseException:
        # the use counted above buys a connection: none came up, so it is given back
        services.invites.refund(credential)
        raise
    services.publish(space_id)
    return Response(
        content=answer,
        status_code=201,
        media_type=SDP_TYPE,
        headers=_ice_links(services, space_id)
        | {"Location": f"/whip/{space_id}/{member.id}", "Cache-Control": "no-store"},
    )


async def _allowed_device(request: Request, space_id: str, role: Role) -> str | None:
    """The speaker's device id (`Rostra-Device`), refused (403) when the space blocked it. The
    host and co-hosts are never refused by device: a co-host blocking a hand or a ticket raised
    from the host's browser must not take the host off the stage (the host revokes a co-host's
    invite to keep them out)."""
    device_id = check_device(request.headers.get(DEVICE_HEADER))
    if may_moderate(role):
        return device_id
    moderation: ModerationService = request.app.state.moderation
    await asyncio.to_thread(
        partial(moderation.require_not_blocked, space_id, device_id, "speaker", is_fresh=True)
    )
    return device_id


def _speaker_name(credential: Credential, asked_name: str) -> str:
    """The name the host gave an invite wins; `?name=` names only the bearer of a nameless one."""
    if credential.role == Role.HOST:
        return asked_name or credential.name
    return credential.name or asked_name


def _ice_links(services: OriginServices, space_id: str) -> dict[str, str]:
    links = [server.link_header() for server in services.origin.client_ice_servers(space_id)]
    return {"Link": ", ".join(links)} if links else {}


def _is_admin(services: OriginServices, token: str | None) -> bool:
    admin = services.settings.admin_token
    return bool(token) and bool(admin) and hmac.compare_digest(str(token).encode(), admin.encode())


@router.options("/whip/{space_id}", include_in_schema=False)
async def preflight(space_id: str, request: Request) -> Response:
    """WHIP clients may ask which ICE servers to use before they make their offer: only a
    credential of the space learns them (TURN passwords are not for anyone who asks)."""
    services = _services(request)
    services.spaces.get(space_id)
    headers = {"Accept-Post": SDP_TYPE, "Allow": "OPTIONS, POST"}
    token = bearer(request)
    if token:
        services.invites.authorize(token, space_id, consume=False)
        headers |= _ice_links(services, space_id)
    return Response(status_code=204, headers=headers)


@router.delete("/whip/{space_id}/{session_id}", summary="Leave the stage (WHIP resource)")
async def leave(space_id: str, session_id: str, request: Request) -> Response:
    """Only the credential that made the session (its invite; the host token for the host's), the
    host or the admin may end it: session ids are public in state.json."""
    services = _services(request)
    services.spaces.get(space_id)
    token = bearer(request)
    if not _is_admin(services, token):
        credential = services.invites.authorize(token, space_id, consume=False)
        member = services.origin.member(space_id, session_id)
        services.invites.require_session_owner(credential, session_id, member.invite_id)
    await services.origin.disconnect(space_id, session_id)
    services.publish(space_id)
    return Response(status_code=200)


@router.patch("/whip/{space_id}/{session_id}", include_in_schema=False)
async def trickle(space_id: str, session_id: str) -> Response:
    raise MethodNotAllowed(
        "this WHIP server gathers all ICE candidates before answering; trickle ICE is not used"
    )
