"""What listeners read of the captions: the WebVTT subtitles rendition of the live HLS (its
playlist and segments), the last minutes as one WebVTT document, and the replay's document.
Registered before media.py's routes, whose `/live/{id}/{name}` would otherwise answer first.

Web plane. Files written by the origin's caption worker, read from the data folder.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from rostra.errors import MediaNotFound, SpaceNotLive
from rostra.media.captions.playlist import (
    CAPTIONS_PLAYLIST_NAME,
    LIVE_DOCUMENT_NAME,
    REPLAY_DOCUMENT_NAME,
    SUBTITLE_SEGMENT_NAME_RE,
)
from rostra.media.captions.store import replay_document
from rostra.media.captions.webvtt import webvtt_document
from rostra.stage.spaces import SpaceStatus
from rostra.store.base import SpaceRecord
from rostra.web.openapi_errors import problem_responses
from rostra.web.reads import read_route
from rostra.web.services import Services

router = APIRouter(tags=["listen"])
read = read_route(router)

VTT_TYPE = "text/vtt; charset=utf-8"
HLS_TYPE = "application/vnd.apple.mpegurl"
# as the other live reads: fresh for a second, with a validator
LIVE_CACHE = "public, max-age=1, stale-while-revalidate=1"
ENDED_CACHE = "public, max-age=60"
IMMUTABLE = "public, max-age=31536000, immutable"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _space(request: Request, space_id: str) -> tuple[Services, SpaceRecord]:
    services = _services(request)
    space = services.spaces.get(space_id)
    if not services.settings.captions:
        raise MediaNotFound(f"captions are off on this server (space '{space.id}')")
    return services, space


def _answer(request: Request, data: bytes, media_type: str, cache: str) -> Response:
    etag = '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'
    headers = {"Cache-Control": cache, "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


@read(
    "/live/{space_id}/captions.m3u8",
    summary="Live captions: the WebVTT subtitles rendition's media playlist",
    responses=problem_responses(404),
)
async def captions_playlist(space_id: str, request: Request) -> Response:
    """Its segments are numbered and timed as the audio's and listed once recognition has
    passed their end, so it runs a few seconds behind the audio playlist."""
    services, space = _space(request, space_id)
    path = services.media_dir(space.id) / CAPTIONS_PLAYLIST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpaceNotLive(
            f"space '{space.id}' is {space.status}: its captions have no segment yet",
            retry_after_s=1.0,
        ) from None
    is_live = space.status == SpaceStatus.LIVE
    return _answer(request, data, HLS_TYPE, LIVE_CACHE if is_live else ENDED_CACHE)


@read(
    "/live/{space_id}/captions.vtt",
    summary="Live captions: the last minutes as one WebVTT document (cacheable 1 s)",
    responses=problem_responses(404),
)
async def captions_document(space_id: str, request: Request) -> Response:
    """Cue times are seconds of the program's media timeline (segment n starts at n × 1.024 s).
    Empty (a header alone) until something has been said."""
    services, space = _space(request, space_id)
    path = services.media_dir(space.id) / LIVE_DOCUMENT_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = webvtt_document([]).encode()
    is_live = space.status == SpaceStatus.LIVE
    return _answer(request, data, VTT_TYPE, LIVE_CACHE if is_live else ENDED_CACHE)


@read(
    "/live/{space_id}/{name}.vtt",
    summary="Live captions: WebVTT segments (immutable)",
    include_in_schema=False,
)
async def captions_segment(space_id: str, name: str, request: Request) -> Response:
    services, space = _space(request, space_id)
    file_name = f"{name}.vtt"
    if not SUBTITLE_SEGMENT_NAME_RE.fullmatch(file_name):
        raise MediaNotFound(f"'{file_name[:80]}' is not a captions file name of this space")
    path = services.media_dir(space.id) / file_name
    if not path.is_file():
        raise MediaNotFound(f"space '{space.id}' has no captions file '{file_name}'")
    return FileResponse(path, media_type=VTT_TYPE, headers={"Cache-Control": IMMUTABLE})


@read(
    "/replay/{space_id}/captions.vtt",
    summary="Replay captions: every cue, timed from the replay's start",
    responses=problem_responses(404),
)
async def replay_captions(space_id: str, request: Request) -> Response:
    services, space = _space(request, space_id)
    if space.status != SpaceStatus.ENDED:
        raise SpaceNotLive(
            f"space '{space.id}' is {space.status}; its replay is ready after it ends"
        )
    directory = services.media_dir(space.id)
    path = directory / REPLAY_DOCUMENT_NAME
    text = path.read_text(encoding="utf-8") if path.is_file() else replay_document(directory)
    if text is None:
        raise MediaNotFound(f"space '{space.id}' has no captions to replay")
    return _answer(request, text.encode(), VTT_TYPE, ENDED_CACHE)
