"""What listeners read: HLS playlists and segments, the progressive streams, state.json, and the
replay after the end. Nothing here is per listener, so any HTTP cache can serve it.

Web plane.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import unicodedata
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from rostra.audience.gate import Gate
from rostra.clock import iso_utc
from rostra.errors import (
    MediaNotFound,
    PlaylistPartNotReady,
    PlaylistReloadMalformed,
    PlaylistReloadTooFar,
    SpaceEnded,
    SpaceNotLive,
    Unavailable,
)
from rostra.media.codecs import PARTS_PER_SEGMENT, TARGET_DURATION_S
from rostra.media.hls.replay import master_text, replay_text
from rostra.media.record import (
    DOWNLOAD_NAME,
    INIT_NAME,
    LIVE_PLAYLIST_NAME,
    OPUS_PART_NAME_RE,
    OPUS_PLAYLIST_NAME,
    PART_NAME_RE,
    REPLAY_PLAYLIST_NAME,
)
from rostra.stage.spaces import SpaceStatus
from rostra.store.admission_bucket import QueueSnapshot
from rostra.store.base import SpaceRecord
from rostra.web.live_parts import LiveParts
from rostra.web.openapi_errors import problem_responses
from rostra.web.reads import read_route
from rostra.web.services import Services

router = APIRouter(tags=["listen"])
read = read_route(router)

# the AAC rendition's files, and the Opus rendition's under the same names with "opus_"
SEGMENT_FILE_RE = re.compile(r"^(?:opus_)?(?:init\.mp4|seg_\d{6}\.m4s|part_\d{6}\.\d\.m4s)$")
IMMUTABLE = "public, max-age=31536000, immutable"
# at most one segment duration (1.024 s; HTTP caching has whole seconds), with a validator; an
# edge may answer from an expired copy while it refreshes it, but only within a second of expiry
# (an unbounded "stale while updating" gave the first listener after a quiet spell a playlist
# minutes old)
FRESH_FOR_A_SECOND = "public, max-age=1, stale-while-revalidate=1"
PLAYLIST_CACHE = FRESH_FOR_A_SECOND
ENDED_PLAYLIST_CACHE = "public, max-age=60"
# an answer to a blocking reload names a fixed state (that part exists): any cache may keep it,
# keyed by its query, for a few target durations
BLOCKING_PLAYLIST_CACHE = "public, max-age=6"
# RFC 8216bis §6.2.5.2: a server gives up on a blocking reload after three target durations,
# and refuses a segment more than two past its last
BLOCKING_TIMEOUT_S = 3.0 * TARGET_DURATION_S
MAX_SEGMENTS_AHEAD = 2
HLS_MSN = "_HLS_msn"
HLS_PART = "_HLS_part"
_DECIMAL_INTEGER_RE = re.compile(r"^\d{1,10}$")
STATE_CACHE = FRESH_FOR_A_SECOND
QUEUE_CACHE = FRESH_FOR_A_SECOND
# a live space whose playlist is older than this has stopped making segments
SEGMENT_STALE_S = 3.0
HLS_TYPE = "application/vnd.apple.mpegurl"
STREAM_NAME_HEADER = "icy-name"
MAX_STREAM_NAME_CHARS = 120
DEFAULT_STREAM_NAME = "Rostra"
DOWNLOAD_RETRY_S = 2.0
FIRST_SEGMENT_WAIT_S = 3.0
FIRST_SEGMENT_POLL_S = 0.05


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _media_file(services: Services, space: SpaceRecord, name: str) -> Response:
    if not SEGMENT_FILE_RE.fullmatch(name):
        raise MediaNotFound(f"'{name[:80]}' is not a media file name of this space")
    path = services.media_dir(space.id) / name
    if not path.is_file():
        raise MediaNotFound(f"space '{space.id}' has no media file '{name}'")
    media_type = "audio/mp4" if name.endswith(".mp4") else "audio/iso.segment"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": IMMUTABLE})


@read("/live/{space_id}/index.m3u8", summary="Live HLS (master playlist)")
async def live_master(space_id: str, request: Request) -> Response:
    services = _services(request)
    services.spaces.get(space_id)
    return Response(
        master_text(has_captions=services.settings.captions),
        media_type=HLS_TYPE,
        headers={"Cache-Control": "public, max-age=60"},
    )


def _read_playlist(path: Path) -> tuple[bytes, str] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return data, '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'


async def _live_playlist(path: Path, *, is_live: bool) -> tuple[bytes, str] | None:
    """Just after go-live the first segment is still being made: hold the request for it (as an
    LL-HLS blocking reload would) rather than refuse a player that came early."""
    deadline = time.monotonic() + FIRST_SEGMENT_WAIT_S
    found = _read_playlist(path)
    while found is None and is_live and time.monotonic() < deadline:
        await asyncio.sleep(FIRST_SEGMENT_POLL_S)
        found = _read_playlist(path)
    return found


def _blocking_reload(request: Request) -> tuple[int, int | None] | None:
    """`_HLS_msn` and `_HLS_part` of a blocking reload, or None for a plain request."""
    msn_text = request.query_params.get(HLS_MSN)
    part_text = request.query_params.get(HLS_PART)
    if msn_text is None and part_text is None:
        return None
    if msn_text is None:
        raise PlaylistReloadMalformed(f"{HLS_PART} needs {HLS_MSN} beside it")
    for name, text in ((HLS_MSN, msn_text), (HLS_PART, part_text)):
        if text is not None and not _DECIMAL_INTEGER_RE.fullmatch(text):
            raise PlaylistReloadMalformed(
                f"{name}={text[:40]!r} is not a decimal integer of at most 10 digits"
            )
    return int(msn_text), int(part_text) if part_text is not None else None


def _live_parts(request: Request) -> LiveParts:
    """The worker's one set of playlist watches, made with the first blocking reload."""
    state = request.app.state
    live_parts: LiveParts | None = getattr(state, "live_parts", None)
    if live_parts is None:
        live_parts = state.live_parts = LiveParts()
    return live_parts


async def _blocking_answer(
    request: Request, space: SpaceRecord, path: Path, msn: int, part: int | None
) -> Response:
    live_parts = _live_parts(request)
    now = live_parts.read(path)
    last = now.edge.last_segment if now is not None else None
    if last is not None and msn > last + MAX_SEGMENTS_AHEAD:
        raise PlaylistReloadTooFar(
            f"{HLS_MSN}={msn} is more than {MAX_SEGMENTS_AHEAD} segments past the last "
            f"segment of space '{space.id}' ({last})"
        )
    if part is not None and part >= PARTS_PER_SEGMENT:
        # RFC 8216bis §6.2.5.2: past the last part of a segment is part 0 of the next
        msn, part = msn + 1, 0
    found = await live_parts.wait_for(path, msn, part, timeout_s=BLOCKING_TIMEOUT_S)
    if found is None:
        wanted = f"segment {msn}" if part is None else f"part {part} of segment {msn}"
        raise PlaylistPartNotReady(
            f"space '{space.id}' made no {wanted} within {BLOCKING_TIMEOUT_S:g} s",
            retry_after_s=TARGET_DURATION_S,
        )
    cache = ENDED_PLAYLIST_CACHE if found.edge.is_ended else BLOCKING_PLAYLIST_CACHE
    headers = {"Cache-Control": cache, "ETag": found.etag}
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=HLS_TYPE, headers=headers)


@read(
    "/live/{space_id}/audio.m3u8",
    summary="Live HLS (media playlist; LL-HLS blocking reload with _HLS_msn, _HLS_part)",
    responses=problem_responses(400),
)
async def live_playlist(space_id: str, request: Request) -> Response:
    """The packager's playlist file (AAC-LC rendition), as written: after the end, the same list
    closed with EXT-X-ENDLIST. Cacheable for one segment duration, with an entity tag.

    With `_HLS_msn=M[&_HLS_part=P]` (RFC 8216bis §6.2.5.2) the answer waits until that segment
    (or part) is listed: 400 for M more than two segments past the last, 503 after three target
    durations. Such answers are cacheable for longer, keyed by the query."""
    return await _media_playlist(space_id, request, LIVE_PLAYLIST_NAME)


@read(
    "/live/{space_id}/opus.m3u8",
    summary="Live HLS, Opus rendition (media playlist; LL-HLS blocking reload as audio.m3u8)",
    responses=problem_responses(400),
)
async def live_opus_playlist(space_id: str, request: Request) -> Response:
    """The Opus rendition's playlist, with the same rules as audio.m3u8: its segments and parts
    carry the same media sequence numbers and start within 20 ms of the AAC ones."""
    return await _media_playlist(space_id, request, OPUS_PLAYLIST_NAME)


async def _media_playlist(space_id: str, request: Request, name: str) -> Response:
    services = _services(request)
    space = services.spaces.get(space_id)
    is_live = space.status == SpaceStatus.LIVE
    reload = _blocking_reload(request)
    path = services.media_dir(space.id) / name
    found = await _live_playlist(path, is_live=is_live) if is_live or path.exists() else None
    if found is None:
        raise SpaceNotLive(
            f"space '{space.id}' is {space.status}: its program has no segment yet",
            retry_after_s=1.0,
        )
    if reload is not None and is_live:
        return await _blocking_answer(request, space, path, *reload)
    data, etag = found
    cache = PLAYLIST_CACHE if is_live else ENDED_PLAYLIST_CACHE
    headers = {"Cache-Control": cache, "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=HLS_TYPE, headers=headers)


@read(
    "/live/{space_id}/state.json",
    summary="Stage, status and counts (cacheable 1 s)",
)
async def state(space_id: str, request: Request) -> JSONResponse:
    services = _services(request)
    space = services.spaces.get(space_id)
    is_live = space.status == SpaceStatus.LIVE
    # a scheduled space may have speakers too: they meet in the green room before the start
    status = services.origin_status.read(space.id) if space.status != SpaceStatus.ENDED else None
    stage = [entry.to_json() for entry in status.stage] if status is not None else []
    body: dict[str, Any] = {
        "id": space.id,
        "status": space.status,
        "title": space.title,
        "scheduled_at": iso_utc(space.scheduled_at),
        "started_at": iso_utc(space.started_at),
        "ended_at": iso_utc(space.ended_at),
        "stage": stage,
        "stream_listeners": _stream_listeners(services, space.id) if is_live else 0,
        "health": "ok" if not is_live or _is_healthy(services, space.id) else "degraded",
        "waiting": 0,
    }
    body.update(await _audience(services, space.id))
    if space.status != SpaceStatus.ENDED:
        body["waiting"] = await _waiting(services, space.id)
    return JSONResponse(body, headers={"Cache-Control": STATE_CACHE})


def _stream_listeners(services: Services, space_id: str) -> int:
    """Plain players on this machine's workers and on the Icecast mounts it feeds (connections;
    ticketed listeners are counted apart, in `listeners`)."""
    icecast = services.icecast_count
    relayed = icecast.listeners(space_id) if icecast is not None else 0
    return services.feeds.total_listeners(space_id) + relayed


async def _queue(services: Services, space_id: str) -> QueueSnapshot | None:
    gate = services.audience.gate
    if gate.admission is None:
        return None
    return await asyncio.to_thread(gate.admission.queue, space_id, gate.defense(space_id))


async def _waiting(services: Services, space_id: str) -> int:
    """Listeners in line to be counted: numbers handed out that the line has not reached. A
    number whose holder went away leaves the figure when the line passes it (at the rate)."""
    try:
        snapshot = await _queue(services, space_id)
    except Unavailable:
        return 0
    return snapshot.waiting if snapshot is not None else 0


@read("/live/{space_id}/queue.json", summary="The waiting room's line (cacheable 1 s)")
async def queue(space_id: str, request: Request) -> JSONResponse:
    """Waiters poll this at the edge, not the gate: when `admitted_watermark` reaches their
    number, they join again with their arrival token."""
    services = _services(request)
    space = services.spaces.get(space_id)
    gate = services.audience.gate
    defense = gate.defense(space.id)
    snapshot = await _queue(services, space.id)
    now = services.clock.now()
    body: dict[str, Any] = {
        "id": space.id,
        "admitted_watermark": snapshot.watermark if snapshot is not None else 0,
        "arrivals": snapshot.arrivals if snapshot is not None else 0,
        "waiting": snapshot.waiting if snapshot is not None else 0,
        "rate": defense.admission_rate,
        "burst": defense.admission_burst,
        "updated_at": iso_utc(now),
    }
    return JSONResponse(body, headers={"Cache-Control": QUEUE_CACHE})


def _is_healthy(services: Services, space_id: str) -> bool:
    """A live space is healthy when its origin reports no problem and its segments keep coming."""
    if not services.origin_status.read(space_id).is_ok:
        return False
    try:
        modified_s = (services.media_dir(space_id) / LIVE_PLAYLIST_NAME).stat().st_mtime
    except FileNotFoundError:
        return False
    return time.time() - modified_s <= SEGMENT_STALE_S


async def _audience(services: Services, space_id: str) -> dict[str, Any]:
    """The honest count (ticketed listeners heartbeating in the window), reactions and hands."""
    gate = services.audience.gate
    count = await gate.presence.read(space_id)
    now_s = services.clock.now().timestamp()
    try:
        reactions, hands = await asyncio.to_thread(_signals, gate, space_id, now_s)
        is_stale = count.is_stale
    except Unavailable:
        reactions, hands, is_stale = {}, 0, True
    return {
        "listeners": count.listeners,
        "error": round(count.error, 4),
        "peak": count.peak,
        "admitted": count.admitted,
        "counted_at": iso_utc(count.counted_at or services.clock.now()),
        "stale": is_stale,
        "window_s": services.settings.presence_window,
        "reactions": reactions,
        "hands": hands,
    }


def icy_name(title: str) -> str:
    """The title as a header value: printable ASCII only (accents folded, control characters
    as spaces, anything else '?', runs of space collapsed), bounded; never raw text, which
    could end the header block."""
    chars = []
    for char in unicodedata.normalize("NFKD", title):
        if " " <= char <= "~":
            chars.append(char)
        elif char.isspace() or unicodedata.category(char).startswith("C"):
            chars.append(" ")
        elif not unicodedata.combining(char):
            chars.append("?")
    clean = " ".join("".join(chars).split())[:MAX_STREAM_NAME_CHARS]
    return clean or DEFAULT_STREAM_NAME


def _signals(gate: Gate, space_id: str, now_s: float) -> tuple[dict[str, int], int]:
    return gate.reactions.tally(space_id, now_s), len(gate.reactions.hands(space_id))


async def _stream(services: Services, space: SpaceRecord, kind: str) -> StreamingResponse:
    if space.status == SpaceStatus.ENDED:
        raise SpaceEnded(f"space '{space.id}' has ended; its replay is at /replay/{space.id}/")
    if space.status != SpaceStatus.LIVE:
        raise SpaceNotLive(f"space '{space.id}' is not live yet", retry_after_s=5.0)
    chunks = await services.feeds.listen(space.id, kind)
    media_type = "audio/aac" if kind == "aac" else "audio/ogg"
    headers = {
        "Cache-Control": "no-store",
        STREAM_NAME_HEADER: icy_name(space.title),
        "icy-pub": "0",
        "X-Content-Type-Options": "nosniff",
        "X-Accel-Buffering": "no",  # an nginx edge passes it through as it comes
    }
    return StreamingResponse(chunks, media_type=media_type, headers=headers)


@router.get("/live/{space_id}/stream.aac", summary="Progressive AAC stream (ADTS) for any player")
async def stream_aac(space_id: str, request: Request) -> StreamingResponse:
    services = _services(request)
    return await _stream(services, services.spaces.get(space_id), "aac")


@router.get("/live/{space_id}/stream.opus", summary="Progressive Ogg/Opus stream, full band")
async def stream_opus(space_id: str, request: Request) -> StreamingResponse:
    services = _services(request)
    return await _stream(services, services.spaces.get(space_id), "opus")


def _hinted_part(
    live_parts: LiveParts, space: SpaceRecord, path: Path
) -> tuple[Path, int, int] | None:
    """A part not made yet, as a preload hint names it: the playlist, segment and part index
    to wait for (RFC 8216bis §6.2.6: Safari asks for it early), within the bounds of a
    blocking reload; None when there is nothing to wait for."""
    match = PART_NAME_RE.fullmatch(path.name)
    playlist = path.with_name(LIVE_PLAYLIST_NAME)
    if match is None:
        match = OPUS_PART_NAME_RE.fullmatch(path.name)
        playlist = path.with_name(OPUS_PLAYLIST_NAME)
    if match is None or space.status != SpaceStatus.LIVE or path.is_file():
        return None
    msn, part = int(match.group(1)), int(match.group(2))
    now = live_parts.read(playlist)
    last = now.edge.last_segment if now is not None else None
    if last is None or msn > last + MAX_SEGMENTS_AHEAD:
        return None
    return playlist, msn, part


@read(
    "/live/{space_id}/{name}",
    summary="Live HLS init, media segments and parts (immutable; a hinted part is waited for)",
)
async def live_file(space_id: str, name: str, request: Request) -> Response:
    services = _services(request)
    space = services.spaces.get(space_id)
    if SEGMENT_FILE_RE.fullmatch(name):
        live_parts = _live_parts(request)
        hinted = _hinted_part(live_parts, space, services.media_dir(space.id) / name)
        if hinted is not None:
            playlist, msn, part = hinted
            await live_parts.wait_for(playlist, msn, part, timeout_s=BLOCKING_TIMEOUT_S)
    return _media_file(services, space, name)


def _require_ended(space: SpaceRecord) -> None:
    if space.status != SpaceStatus.ENDED:
        raise SpaceNotLive(
            f"space '{space.id}' is {space.status}; its replay is ready after it ends"
        )


@read("/replay/{space_id}/index.m3u8", summary="Replay (VOD playlist, seekable)")
async def replay_playlist(space_id: str, request: Request) -> Response:
    services = _services(request)
    space = services.spaces.get(space_id)
    _require_ended(space)
    directory = services.media_dir(space.id)
    path = directory / REPLAY_PLAYLIST_NAME
    text = path.read_text() if path.is_file() else replay_text(directory)
    if text is None:
        raise MediaNotFound(f"space '{space.id}' was never on air: there is nothing to replay")
    return Response(text, media_type=HLS_TYPE, headers={"Cache-Control": "public, max-age=60"})


@read("/replay/{space_id}/audio.m4a", summary="Download the whole recording")
async def replay_download(space_id: str, request: Request) -> Response:
    services = _services(request)
    space = services.spaces.get(space_id)
    _require_ended(space)
    path = services.media_dir(space.id) / DOWNLOAD_NAME
    if not path.is_file():
        if (services.media_dir(space.id) / INIT_NAME).is_file():
            raise Unavailable("the download file is being prepared", retry_after_s=DOWNLOAD_RETRY_S)
        raise MediaNotFound(f"space '{space.id}' was never on air: there is nothing to download")
    filename = f"rostra-{space.id}.m4a"
    return FileResponse(
        path,
        media_type="audio/mp4",
        filename=filename,
        headers={"Cache-Control": "public, max-age=3600"},
    )


@read(
    "/replay/{space_id}/{name}",
    summary="Replay init and media segments (immutable)",
)
async def replay_file(space_id: str, name: str, request: Request) -> Response:
    services = _services(request)
    space = services.spaces.get(space_id)
    _require_ended(space)
    return _media_file(services, space, name)
