"""The listener-write API (the gate): join, heartbeat, leave, reactions, hand.

Web plane. Served by `rostra serve` (same origin as the pages: a Bearer header costs no CORS
preflight) and alone by `rostra gate` workers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rostra.audience.challenge import MAX_PAYLOAD_CHARS, ProofOfWork
from rostra.audience.gate import Admission, Gate
from rostra.audience.tickets import MAX_TOKEN_CHARS
from rostra.clock import iso_utc
from rostra.ids import is_space_id
from rostra.stage.moderation import DEVICE_HEADER, DEVICE_PATTERN, ModerationService, check_device
from rostra.web.inputs import PlainText, bearer, json_body, parse_json, read_capped, read_json

router = APIRouter(prefix="/api/v1/spaces", tags=["audience"])

MAX_BEACON_BYTES = 2048


class Reaction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emoji: PlainText = Field(min_length=1, max_length=16)


class LeaveBeacon(BaseModel):
    """The leave body of a page's beacon (a page that can send headers uses Bearer instead)."""

    ticket: str = Field(max_length=MAX_BEACON_BYTES)


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def _ticket_json(token: str, expires_at_s: int) -> dict[str, Any]:
    return {
        "ticket": token,
        "expires_at": iso_utc(datetime.fromtimestamp(expires_at_s, UTC)),
    }


class JoinBody(BaseModel):
    """What a join may carry: an ALTCHA solution when the space asks for proof-of-work, the
    arrival token of a waiting-room retry, or the ticket a returning listener gave back on leave
    (a reloaded page: exchanged once for a new ticket of the same listener, with no line and no
    proof-of-work)."""

    model_config = ConfigDict(extra="forbid")
    # base64 (the payload's alphabet): junk is refused even when the space asks no work
    altcha: str | None = Field(
        default=None, max_length=MAX_PAYLOAD_CHARS, pattern=r"^[A-Za-z0-9+/]*={0,2}$"
    )
    arrival: str | None = Field(default=None, max_length=1024)
    ticket: str | None = Field(default=None, max_length=MAX_TOKEN_CHARS)
    # the stable id the page keeps in localStorage: a device the host blocked is refused (403)
    device: str | None = Field(default=None, min_length=16, max_length=64, pattern=DEVICE_PATTERN)


async def _require_device_allowed(request: Request, space_id: str, device: str | None) -> None:
    """403 device-blocked when the space's host blocked this device: checked against this
    worker's copy of the space's blocks, read again (off the loop) when a second old."""
    moderation: ModerationService | None = getattr(request.app.state, "moderation", None)
    if device is None or moderation is None:
        return
    if moderation.is_cached(space_id):
        moderation.require_not_blocked(space_id, device, "listener")
    else:
        await asyncio.to_thread(moderation.require_not_blocked, space_id, device, "listener")


async def _proof_of_work(gate: Gate, space_id: str, altcha: str | None) -> None:
    """401 challenge-required (with the challenge), challenge-failed or challenge-spent, or
    nothing when the space asks no work or the proof is good (spent once, off the loop)."""
    if gate.challenge is None or not is_space_id(space_id):
        return  # a malformed id is refused by the join itself (404), with no work asked
    check = partial(_check_proof, gate, gate.challenge, space_id, altcha)
    if altcha:
        await asyncio.to_thread(check)
    else:
        check()  # the defence is cached: no storage is touched to ask for work


def _check_proof(gate: Gate, pow_check: ProofOfWork, space_id: str, altcha: str | None) -> None:
    defense = gate.defense(space_id)
    pow_check.check(space_id, altcha, mode=defense.pow, admission_rate=defense.admission_rate)


@router.post(
    "/{space_id}/join",
    status_code=201,
    summary="Join as a listener: a signed ticket",
    openapi_extra=json_body(JoinBody, is_required=False),
)
async def join(space_id: str, request: Request) -> JSONResponse:
    """201 a ticket; 503 + Retry-After + `{position, retry_after_s, number, arrival}` in the
    waiting room (send `arrival` back to keep the place: it stands for a passed challenge).
    With `ticket` (given back on leave): 201 a new ticket of the same listener, once; 401/403
    when that ticket is bad, expired, another space's or already exchanged."""
    gate = _gate(request)
    body_in = await read_json(request, JoinBody, is_optional=True)
    arrival = None
    if body_in.ticket is not None:
        gate.signed(body_in.ticket, space_id)
        await _require_device_allowed(request, space_id, body_in.device)
        # signature first (above, on the loop); the spent store is waited for off the loop
        admission = await asyncio.to_thread(gate.rejoin, body_in.ticket, space_id)
        return _admitted(admission)
    if body_in.arrival is not None and gate.admission is not None:
        arrival = gate.admission.verify_arrival(body_in.arrival, space_id)
        await _require_device_allowed(request, space_id, body_in.device)
    else:
        # an unknown or ended space is refused before its defence is read (an outsider's flood
        # of made-up ids never reaches the defence store, and gets 404, not a challenge)
        await asyncio.to_thread(gate.check_admits, space_id)
        await _require_device_allowed(request, space_id, body_in.device)
        await _proof_of_work(gate, space_id, body_in.altcha)
    # the space's line may be a file shared by workers: its lock is waited for off the loop
    admission = await asyncio.to_thread(gate.join, space_id, arrival=arrival)
    return _admitted(admission)


def _admitted(admission: Admission) -> JSONResponse:
    body = _ticket_json(admission.issued.token, admission.issued.ticket.expires_at_s)
    body["heartbeat_interval_s"] = admission.heartbeat_interval_s
    return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})


@router.post("/{space_id}/heartbeat", summary="I am still listening (Bearer ticket)")
async def heartbeat(space_id: str, request: Request) -> Response:
    renewed = _gate(request).heartbeat(bearer(request), space_id)
    if renewed is None:
        return Response(status_code=204)
    return JSONResponse(
        _ticket_json(renewed.token, renewed.ticket.expires_at_s),
        headers={"Cache-Control": "no-store"},
    )


async def _beacon_ticket(request: Request) -> str | None:
    """`navigator.sendBeacon` cannot set headers: the ticket may come in a small JSON body (sent
    as text/plain, which needs no CORS preflight), capped before a byte of it is read."""
    token = bearer(request)
    if token:
        return token
    raw = await read_capped(request, limit=MAX_BEACON_BYTES)
    if not raw.strip():
        return None
    data = parse_json(raw)
    ticket = data.get("ticket") if isinstance(data, dict) else None
    return ticket if isinstance(ticket, str) else None


@router.post(
    "/{space_id}/leave",
    status_code=204,
    summary="Stop listening (Bearer or JSON body): the ticket is given back",
    openapi_extra=json_body(LeaveBeacon, is_required=False),
)
async def leave(space_id: str, request: Request) -> Response:
    # the hand store may be a file shared by workers: its lock is waited for off the loop
    await asyncio.to_thread(_gate(request).leave, await _beacon_ticket(request), space_id)
    return Response(status_code=204)


@router.post(
    "/{space_id}/reactions",
    status_code=204,
    summary="React (Bearer ticket)",
    openapi_extra=json_body(Reaction),
)
async def react(space_id: str, request: Request) -> Response:
    gate = _gate(request)
    ticket = bearer(request)
    gate.verify(ticket, space_id)  # a bad ticket costs no body parsing
    body = await read_json(request, Reaction)
    gate.react(ticket, space_id, body.emoji)
    return Response(status_code=204)


@router.post("/{space_id}/hand", status_code=204, summary="Raise a hand (Bearer ticket)")
async def raise_hand(space_id: str, request: Request) -> Response:
    gate = _gate(request)
    device = check_device(request.headers.get(DEVICE_HEADER))
    await asyncio.to_thread(gate.raise_hand, bearer(request), space_id)
    moderation: ModerationService | None = getattr(request.app.state, "moderation", None)
    if device is not None and moderation is not None:
        # a block by hand refuses the device the hand was raised from
        ticket = gate.signed(bearer(request), space_id)
        await asyncio.to_thread(
            moderation.remember_hand_device,
            space_id,
            ticket.listener_id,
            device,
            float(ticket.expires_at_s),
        )
    return Response(status_code=204)


@router.delete("/{space_id}/hand", status_code=204, summary="Lower a hand (Bearer ticket)")
async def lower_hand(space_id: str, request: Request) -> Response:
    await asyncio.to_thread(_gate(request).lower_hand, bearer(request), space_id)
    return Response(status_code=204)


def fast_routes() -> list[Route]:
    """The hot paths (join, heartbeat) as plain Starlette routes, placed before every FastAPI
    route: they skip FastAPI's matching and dependency solving (about 2.4x the heartbeats per
    core, bench/gate.py). They call the same handlers; the FastAPI routes above document them."""

    async def fast_join(request: Request) -> Response:
        return await join(request.path_params["space_id"], request)

    async def fast_heartbeat(request: Request) -> Response:
        return await heartbeat(request.path_params["space_id"], request)

    return [
        Route("/api/v1/spaces/{space_id}/join", fast_join, methods=["POST"]),
        Route("/api/v1/spaces/{space_id}/heartbeat", fast_heartbeat, methods=["POST"]),
    ]
