"""WHIP (RFC 9725): POST an SDP offer to join the stage, DELETE the session resource to leave.

Web plane (origin process): served on the origin's own port, never by a listener worker.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from rostra.errors import InvalidSdp, MethodNotAllowed
from rostra.stage.invites import clean_name
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
    services.invites.authorize(token, space_id, consume=False)
    services.spaces.require_open(space_id)
    body = await read_body(request, limit=services.settings.max_sdp_bytes, content_type=SDP_TYPE)
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSdp("the SDP offer is not UTF-8 text") from exc
    name = clean_name(request.query_params.get("name"))
    credential = services.invites.authorize(token, space_id, consume=True)
    member, answer = await services.origin.connect(
        space_id,
        offer,
        name=name or credential.name,
        role=credential.role,
        invite_id=credential.invite_id,
    )
    services.publish(space_id)
    return Response(
        content=answer,
        status_code=201,
        media_type=SDP_TYPE,
        headers=_ice_links(services)
        | {"Location": f"/whip/{space_id}/{member.id}", "Cache-Control": "no-store"},
    )


def _ice_links(services: OriginServices) -> dict[str, str]:
    links = [server.link_header() for server in services.origin.ice_servers]
    return {"Link": ", ".join(links)} if links else {}


@router.options("/whip/{space_id}", include_in_schema=False)
async def preflight(space_id: str, request: Request) -> Response:
    """WHIP clients may ask which ICE servers to use before they make their offer."""
    services = _services(request)
    services.spaces.get(space_id)
    headers = _ice_links(services) | {"Accept-Post": SDP_TYPE, "Allow": "OPTIONS, POST"}
    return Response(status_code=204, headers=headers)


@router.delete("/whip/{space_id}/{session_id}", summary="Leave the stage (WHIP resource)")
async def leave(space_id: str, session_id: str, request: Request) -> Response:
    services = _services(request)
    services.spaces.get(space_id)
    services.invites.authorize(bearer(request), space_id, consume=False)
    await services.origin.disconnect(space_id, session_id)
    services.publish(space_id)
    return Response(status_code=200)


@router.patch("/whip/{space_id}/{session_id}", include_in_schema=False)
async def trickle(space_id: str, session_id: str) -> Response:
    raise MethodNotAllowed(
        "this WHIP server gathers all ICE candidates before answering; trickle ICE is not used"
    )
