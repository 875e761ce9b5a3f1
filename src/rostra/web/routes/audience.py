"""The listener-write API (the gate): join, heartbeat, leave, reactions, hand.

Web plane. Served by `rostra serve` (same origin as the pages: a Bearer header costs no CORS
preflight) and alone by `rostra gate` workers.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rostra.audience.gate import Gate
from rostra.clock import iso_utc
from rostra.errors import BadRequest
from rostra.web.inputs import bearer, read_json

router = APIRouter(prefix="/api/v1/spaces", tags=["audience"])

MAX_BEACON_BYTES = 2048


class Reaction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emoji: str = Field(min_length=1, max_length=16)


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def _ticket_json(token: str, expires_at_s: int) -> dict[str, Any]:
    return {
        "ticket": token,
        "expires_at": iso_utc(datetime.fromtimestamp(expires_at_s, UTC)),
    }


@router.post("/{space_id}/join", status_code=201, summary="Join as a listener: a signed ticket")
async def join(space_id: str, request: Request) -> JSONResponse:
    admission = _gate(request).join(space_id)
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
    """`navigator.sendBeacon` cannot set headers: the ticket may come in a small JSON body."""
    token = bearer(request)
    if token:
        return token
    raw = await request.body()
    if not raw:
        return None
    if len(raw) > MAX_BEACON_BYTES:
        raise BadRequest(f"the leave body has {len(raw)} bytes; at most {MAX_BEACON_BYTES}")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest('the leave body must be JSON: {"ticket": "…"}') from exc
    ticket = data.get("ticket") if isinstance(data, dict) else None
    return ticket if isinstance(ticket, str) else None


@router.post("/{space_id}/leave", status_code=204, summary="Stop listening (Bearer or JSON body)")
async def leave(space_id: str, request: Request) -> Response:
    # the hand store may be a file shared by workers: its lock is waited for off the loop
    await asyncio.to_thread(_gate(request).leave, await _beacon_ticket(request), space_id)
    return Response(status_code=204)


@router.post("/{space_id}/reactions", status_code=204, summary="React (Bearer ticket)")
async def react(space_id: str, request: Request) -> Response:
    gate = _gate(request)
    ticket = bearer(request)
    gate.verify(ticket, space_id)  # a bad ticket costs no body parsing
    body = await read_json(request, Reaction)
    gate.react(ticket, space_id, body.emoji)
    return Response(status_code=204)


@router.post("/{space_id}/hand", status_code=204, summary="Raise a hand (Bearer ticket)")
async def raise_hand(space_id: str, request: Request) -> Response:
    await asyncio.to_thread(_gate(request).raise_hand, bearer(request), space_id)
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
