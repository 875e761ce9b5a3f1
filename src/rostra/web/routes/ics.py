"""`/live/{id}/event.ics`: a scheduled space as a calendar event, for "Add to calendar".

Web plane. The same for everyone and fixed once the space is created, so any cache keeps it.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from starlette.responses import Response

from rostra.errors import SpaceNotScheduled
from rostra.stage.ics import event_ics
from rostra.web.reads import read_route
from rostra.web.services import Services

router = APIRouter(tags=["listen"])
read = read_route(router)

CALENDAR_TYPE = "text/calendar; charset=utf-8"
# the event never changes once made: an edge keeps it a minute, then revalidates in the
# background (the ETag makes that a 304)
EVENT_CACHE = "public, max-age=60, stale-while-revalidate=600"


@read(
    "/live/{space_id}/event.ics",
    summary="The scheduled space as an iCalendar event (RFC 5545)",
    response_class=Response,  # documented as text/calendar (web/openapi_errors.py)
)
async def event(space_id: str, request: Request) -> Response:
    services: Services = request.app.state.services
    space = services.spaces.get(space_id)
    if space.scheduled_at is None:
        raise SpaceNotScheduled(f"space '{space.id}' was created without a scheduled start")
    body = event_ics(space, listen_url=services.url(f"/listen/{space.id}"))
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "Cache-Control": EVENT_CACHE,
        "ETag": etag,
        "Content-Disposition": f'inline; filename="{space.id}.ics"',
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers, media_type=CALENDAR_TYPE)
