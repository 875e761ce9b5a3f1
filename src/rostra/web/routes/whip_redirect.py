"""WHIP on a listener worker: never served here (speakers keep their path when listener workers
are saturated), only pointed at the origin's WHIP endpoint.

Web plane. Printed `whip_url` values already name the origin's endpoint; this catches old links.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from rostra.errors import MediaNotFound
from rostra.web.services import Services

router = APIRouter(include_in_schema=False)


@router.api_route("/whip/{rest:path}", methods=["GET", "POST", "DELETE", "OPTIONS", "PATCH"])
async def whip_elsewhere(rest: str, request: Request) -> Response:
    services: Services = request.app.state.services
    target = services.settings.whip_base_url
    if target == services.settings.base_url:
        raise MediaNotFound(
            f"WHIP is served by the origin on port {services.settings.origin_whip_port}: "
            "route /whip/ there (rostra edge does)"
        )
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"{target}/whip/{rest}{query}", status_code=308)
