"""The Icecast source protocol: `PUT` (or the legacy `SOURCE`) `/ingest/{id}` with Basic
`source:PASSWORD` streams MP3, AAC (ADTS) or Ogg/Opus into one voice on the space's stage.

Web plane (origin process): served on the origin's own port beside WHIP, never by a listener
worker; `web/icecast_framing.py` gives the lengthless body its framing. The voice leaves the stage
when the body ends, the connection drops, the source stalls, or its bytes do not decode as audio.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from limits import parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from rostra.errors import (
    RostraError,
    SourceAlreadyLive,
    SourceFormatUnsupported,
    SourcePasswordWrong,
    SourceRateLimited,
    SpaceNotLive,
)
from rostra.media.source_ingest import SOURCE_FORMATS, SourceFeed
from rostra.stage.invites import MAX_NAME_CHARS, clean_name
from rostra.stage.sources import SOURCE_USER, is_source_password
from rostra.stage.spaces import SpaceStatus
from rostra.web import problems
from rostra.web.origin_services import OriginServices
from rostra.web.source_limits import BoundedMemoryStorage, Source, source_of

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

BASIC_CHALLENGE = 'Basic realm="Rostra"'
DEFAULT_NAME = "Broadcast"
END_OF_STREAM = "end of stream"
DISCONNECTED = "source disconnected"
# a source that sends nothing for this long has stalled: its voice leaves the stage
READ_TIMEOUT_S = 10.0
# the decoder takes nothing for this long (the machine is starved): the source ends. A decoder
# paced by a full voice (a source ahead of real time) is making progress and is waited for.
PIPE_WAIT_S = 5.0
PIPE_POLL_S = 0.01
# after the last byte the voice plays what it has buffered (at most MAX_BUFFER_S) first
DRAIN_WAIT_S = 3.5
DRAIN_POLL_S = 0.05
# wrong passwords a client address (or its /24, /48 prefix) may send before it is answered 429:
# a 144-bit password is not guessed, so this bounds the work and the log lines a flood costs.
# Each counted refusal is logged, and at most this many a minute over all clients.
MAX_REFUSALS_PER_ADDRESS = parse("10/minute")
MAX_REFUSALS_PER_PREFIX = parse("30/minute")
MAX_REFUSALS_LOGGED = parse("60/minute")


class PasswordRefusals:
    """Wrong source passwords counted per client address and prefix, in memory (one origin
    process; the storage caps its counters). Only the wrong ones count: a source with the right
    password is never refused for its neighbours' mistakes."""

    def __init__(self) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(BoundedMemoryStorage())
        self.unlogged = 0

    async def refuse(self, client: Source, space_id: str, error: SourcePasswordWrong) -> None:
        """Count and log one wrong password, raising `error`, or 429 past the limit."""
        checks = (
            ("address", client.address, MAX_REFUSALS_PER_ADDRESS),
            ("prefix", client.prefix, MAX_REFUSALS_PER_PREFIX),
        )
        for scope_name, key, item in checks:
            if not await self._limiter.hit(item, "source-password", scope_name, key):
                stats = await self._limiter.get_window_stats(
                    item, "source-password", scope_name, key
                )
                wait_s = max(1.0, math.ceil(stats.reset_time - time.time()))
                raise SourceRateLimited(
                    f"wrong source passwords from {scope_name} {key} are over {item};"
                    f" retry in {wait_s:.0f} s",
                    retry_after_s=wait_s,
                )
        if await self._limiter.hit(MAX_REFUSALS_LOGGED, "source-password", "logged"):
            extra = {"space": space_id[:40], "client": client.address, "unlogged": self.unlogged}
            log.warning("source password refused", extra=extra)
            self.unlogged = 0
        else:
            self.unlogged += 1
        raise error


def _services(request: Request) -> OriginServices:
    services: OriginServices = request.app.state.services
    return services


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _check_password(services: OriginServices, space_id: str, request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise SourcePasswordWrong("an Icecast source needs HTTP Basic credentials source:PASSWORD")
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SourcePasswordWrong("the Basic credentials are not base64 of user:password") from exc
    if user != SOURCE_USER or not is_source_password(
        services.settings.signing_secret, space_id, password
    ):
        raise SourcePasswordWrong(
            f"user '{SOURCE_USER}' with space '{space_id}''s source password is needed:"
            " `rostra space source ID` prints it"
        )


def _demuxer(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    demuxer = SOURCE_FORMATS.get(content_type)
    if demuxer is None:
        raise SourceFormatUnsupported(
            f"Content-Type '{content_type[:60]}' is not decoded here; use one of"
            f" {', '.join(sorted(SOURCE_FORMATS))}"
        )
    return demuxer


def _voice_name(request: Request) -> str:
    """`ice-name`, read as UTF-8 whatever the header's charset, cleaned like any name."""
    raw = next((v for k, v in request.headers.raw if k.lower() == b"ice-name"), b"")
    text = "".join(c for c in raw.decode("utf-8", "replace") if c.isprintable())
    return clean_name(" ".join(text.split())[:MAX_NAME_CHARS]) or DEFAULT_NAME


def _check_space(services: OriginServices, space_id: str) -> None:
    space = services.spaces.get(space_id)
    if space.status != SpaceStatus.LIVE:
        raise SpaceNotLive(
            f"space '{space_id}' is {space.status}, not live: start it, then connect the source"
        )
    on_stage = services.origin.source_of(space_id)
    if on_stage is not None:
        raise SourceAlreadyLive(
            f"space '{space_id}' already has a source on stage ('{on_stage.name}'): one at a time"
        )


@router.api_route("/ingest/{space_id}", methods=["PUT", "SOURCE"])
async def ingest(space_id: str, request: Request) -> Response:
    """Every answer closes the connection: a source refused or stopped may still be sending, and
    its bytes are not read as another request."""
    refusals: PasswordRefusals = request.app.state.source_refusals
    try:
        try:
            response = await _ingest(space_id, request)
        except SourcePasswordWrong as error:
            await refusals.refuse(source_of(request.scope), space_id, error)
            raise
    except SourcePasswordWrong as error:
        response = problems.from_error(error)
        response.headers["WWW-Authenticate"] = BASIC_CHALLENGE
    except RostraError as error:
        response = problems.from_error(error)
    response.headers["Connection"] = "close"
    return response


async def _ingest(space_id: str, request: Request) -> Response:
    services = _services(request)
    services.spaces.get(space_id)
    _check_password(services, space_id, request)
    _check_space(services, space_id)
    feed = SourceFeed(space_id, _demuxer(request))
    stopped = asyncio.Event()
    try:
        member = services.origin.add_source(
            space_id, _voice_name(request), feed.voice, stop=stopped.set
        )
    except BaseException:
        await asyncio.to_thread(feed.end)
        raise
    services.publish(space_id)
    log.info("source connected", extra={"space": space_id, "client": _client(request)})
    reason = "ended"
    decoder_reason = ""
    try:
        reason = await _pump(request.stream(), feed, stopped)
        if reason in (END_OF_STREAM, DISCONNECTED):
            await _play_out(feed, stopped)  # the last words are heard; a removed source is not
        decoder_reason = await asyncio.to_thread(feed.end)
    finally:
        feed.stop()  # cancelled on the way: the decoder thread still ends
        # the seat and the one source slot are given back whatever happened above
        services.origin.remove_source(space_id, member.id)
        services.publish(space_id)
        log.info(
            "source ended",
            extra={
                "space": space_id,
                "reason": reason,
                "decoder": decoder_reason or feed.decoder.reason,
                "received_bytes": feed.received_bytes,
                "decoded_s": round(feed.voice.decoded_s, 2),
                "dropped_frames": feed.voice.stats.frames_dropped,
                "underruns": feed.voice.stats.underruns,
                "margin_s": round(feed.voice.margin_s, 2),
            },
        )
    if feed.voice.stats.frames_decoded == 0 and feed.received_bytes:
        raise SourceFormatUnsupported(f"no audio decoded: {reason}")
    return Response(status_code=200)


async def _pump(chunks: AsyncIterator[bytes], feed: SourceFeed, stopped: asyncio.Event) -> str:
    """Feed the body to the decoder until it ends; why it ended."""
    stop = asyncio.ensure_future(stopped.wait())
    try:
        while True:
            read = asyncio.ensure_future(anext(chunks))
            done, _ = await asyncio.wait(
                {read, stop}, timeout=READ_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
            if read not in done:
                await _abandon(read)
                if stop in done:
                    return "removed from the stage"
                return f"no data for {READ_TIMEOUT_S:.0f} s"
            try:
                chunk = read.result()
            except StopAsyncIteration:
                return END_OF_STREAM
            except ClientDisconnect:
                return DISCONNECTED
            reason = feed.feed(chunk) if chunk else None
            if reason is None:
                reason = await _wait_for_room(feed)
            if reason is not None:
                return reason
    finally:
        stop.cancel()


async def _abandon(read: asyncio.Future[bytes]) -> None:
    """Stop waiting for the next chunk: the read is ours to cancel, and its end is awaited so
    that nothing it raised goes unseen."""
    read.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, ClientDisconnect):
        await read
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError  # it was this task that was cancelled, not only the read


async def _wait_for_room(feed: SourceFeed) -> str | None:
    """Wait while the pipe is full; the reason to end the source when the decoder has ended
    (it found the stream is not audio: said at once, not after the wait) or took nothing for
    PIPE_WAIT_S."""
    polls, taken = 0, feed.pipe.read_bytes
    while feed.pipe.is_full and not feed.decoder.is_done:
        if feed.pipe.read_bytes != taken:
            polls, taken = 0, feed.pipe.read_bytes
        elif polls >= round(PIPE_WAIT_S / PIPE_POLL_S):
            return f"decoder behind for {PIPE_WAIT_S:.0f} s"
        polls += 1
        await asyncio.sleep(PIPE_POLL_S)
    if feed.decoder.is_done:
        return feed.decoder.reason or "decoder ended"
    return None


async def _play_out(feed: SourceFeed, stopped: asyncio.Event) -> None:
    """The decoder takes what is left in the pipe at the program's pace (a source sent ahead of
    real time may have seconds there), then the voice plays its buffer out; a stop, or a decoder
    that makes no progress for PIPE_WAIT_S, cuts it short."""
    feed.pipe.close()
    decoded, polls = feed.voice.stats.frames_decoded, 0
    while not feed.decoder.is_done and not stopped.is_set():
        if feed.voice.stats.frames_decoded != decoded:
            decoded, polls = feed.voice.stats.frames_decoded, 0
        elif polls >= round(PIPE_WAIT_S / DRAIN_POLL_S):
            break
        polls += 1
        await asyncio.sleep(DRAIN_POLL_S)
    feed.voice.drain()
    for _ in range(round(DRAIN_WAIT_S / DRAIN_POLL_S)):
        if feed.voice.buffered_frames == 0 or stopped.is_set():
            return
        await asyncio.sleep(DRAIN_POLL_S)
