"""Clips: a listener (ticket) or the host cuts a few seconds of a space's recording into an m4a;
the clip's page (a player and a share link) and its immutable file, kept after the space ends.

Web plane. The worker decides (credential, limits) and cuts from the recorded segments in the
data folder itself (pure Python, off the loop): the origin is not asked.
"""

from __future__ import annotations

import asyncio
import html
from datetime import UTC, datetime
from functools import partial

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

from rostra.audience.tickets import VERSION as TICKET_VERSION
from rostra.clock import iso_utc
from rostra.errors import CredentialMissing
from rostra.media.clips import cut
from rostra.stage.clips import MAX_DURATION_S, MAX_END_S_AGO, MIN_DURATION_S, ClipBook, ClipRecord
from rostra.web.auth import require_admin_or_host
from rostra.web.inputs import bearer, json_body, read_json
from rostra.web.openapi_errors import problem_responses
from rostra.web.reads import read_route
from rostra.web.routes.pages import PAGES_DIR
from rostra.web.services import Services

router = APIRouter(tags=["clips"])
read = read_route(router)

IMMUTABLE = "public, max-age=31536000, immutable"
CLIP_PAGE_CACHE = "public, max-age=300"
M4A_TYPE = "audio/mp4"
# a listener ticket is a signed token of this version; host and invite tokens are JWTs
_TICKET_PREFIX = f"{TICKET_VERSION}."
_HOST = "host"


class ClipCreate(BaseModel):
    """A clip of `duration_s` seconds of the recording, ending `end_s_ago` seconds before its
    newest recorded audio (while live, a second or so behind the program; after the end, its
    last word). Numbers, never strings or booleans; cut to the nearest whole AAC frame."""

    model_config = ConfigDict(extra="forbid")
    end_s_ago: float = Field(default=0, ge=0, le=MAX_END_S_AGO, strict=True)
    duration_s: float = Field(ge=MIN_DURATION_S, le=MAX_DURATION_S, strict=True)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _clip_book(services: Services) -> ClipBook:
    return ClipBook(services.media_root, services.clock)


def _maker(request: Request, services: Services, space_id: str) -> str:
    """Who asks: a listener's ticket of this space (its listener id), or the host (or admin)."""
    token = bearer(request)
    if not token:
        raise CredentialMissing(
            "send a listener ticket or the host token as 'Authorization: Bearer …'"
        )
    if token.startswith(_TICKET_PREFIX):
        ticket = request.app.state.gate.verify(token, space_id)
        return f"listener:{ticket.listener_id}"
    require_admin_or_host(services, request, space_id)
    return _HOST


@router.post(
    "/api/v1/spaces/{space_id}/clips",
    status_code=201,
    summary="Clip the recording (Bearer ticket or host token): an m4a and its page",
    openapi_extra=json_body(ClipCreate),
    responses=problem_responses(401, 403, 409, 422, 429),
)
async def make_clip(space_id: str, request: Request) -> JSONResponse:
    """201 `{clip_url, page_url}`. 422 for a duration outside 5–60 s, a negative `end_s_ago`, or a
    clip reaching back before the recording; 409 when nothing is recorded yet or the space holds
    as many clips as it may; 429 + Retry-After past 3 clips a minute or 20 an hour per ticket."""
    services = _services(request)
    services.spaces.get(space_id)
    who = _maker(request, services, space_id)
    body = await read_json(request, ClipCreate)
    directory = services.media_dir(space_id)
    record = await asyncio.to_thread(
        _clip_book(services).make,
        space_id,
        who=who,
        end_s_ago=body.end_s_ago,
        duration_s=body.duration_s,
        cut=partial(cut, directory, end_s_ago=body.end_s_ago, duration_s=body.duration_s),
    )
    return JSONResponse(
        {
            "clip_url": services.url(f"/clips/{record.id}.m4a"),
            "page_url": services.url(f"/clips/{record.id}"),
        },
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


# before the page's route: "/clips/{clip_id}" would take "ID.m4a" too
@read("/clips/{clip_id}.m4a", summary="A clip's file (m4a, immutable)")
async def clip_file(clip_id: str, request: Request) -> Response:
    path = _clip_book(_services(request)).file(clip_id)
    return FileResponse(path, media_type=M4A_TYPE, headers={"Cache-Control": IMMUTABLE})


@read("/clips/{clip_id}", include_in_schema=False)
async def clip_page(clip_id: str, request: Request) -> HTMLResponse:
    services = _services(request)
    record, _ = await asyncio.to_thread(_clip_book(services).find, clip_id)
    title = services.spaces.get(record.space_id).title
    return HTMLResponse(
        _render(record, title, services), headers={"Cache-Control": CLIP_PAGE_CACHE}
    )


def _render(record: ClipRecord, title: str, services: Services) -> str:
    made_at = datetime.fromtimestamp(record.made_at_s, UTC)
    values = {
        "title": title,
        "duration": f"{record.duration_s:g} s",
        "made_at": iso_utc(made_at) or "",
        "made_at_text": made_at.strftime("%d %b %Y, %H:%M UTC"),
        "clip_url": services.url(f"/clips/{record.id}.m4a"),
        "page_url": services.url(f"/clips/{record.id}"),
        "listen_url": services.url(f"/listen/{record.space_id}"),
    }
    text = (PAGES_DIR / "clip.html").read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", html.escape(value, quote=True))
    return text
