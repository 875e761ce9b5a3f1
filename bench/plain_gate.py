"""Experiments for the gate benchmark, not the shipped server: the same Gate (same ticket
check, same per-worker batcher, same Redis store, built by `build_audience`) behind plain
Starlette routes instead of FastAPI's, to measure what the framework layer costs per heartbeat:
a bare Starlette app (`create_app`), and the shipped FastAPI gate app with plain routes for
heartbeat and join put ahead of its own (`create_mounted_app`: FastAPI's middleware kept).

Run by bench/gate.py as uvicorn factories (`plain_gate:create_app`); settings from ROSTRA_*.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rostra.audience.gate import Gate
from rostra.clock import SystemClock, iso_utc
from rostra.config import load_settings
from rostra.errors import RostraError
from rostra.web.audience_wiring import build_audience, run_flusher
from rostra.web.gate_app import check_gate_settings, create_gate_app
from rostra.web.inputs import bearer
from rostra.web.problems import from_error

NO_STORE = {"Cache-Control": "no-store"}


def _ticket_json(token: str, expires_at_s: int) -> dict[str, str | None]:
    return {"ticket": token, "expires_at": iso_utc(datetime.fromtimestamp(expires_at_s, UTC))}


def _routes(gate: Gate) -> list[Route]:
    async def heartbeat(request: Request) -> Response:
        try:
            renewed = gate.heartbeat(bearer(request), request.path_params["space_id"])
        except RostraError as error:
            return from_error(error)
        if renewed is None:
            return Response(status_code=204)
        body = _ticket_json(renewed.token, renewed.ticket.expires_at_s)
        return JSONResponse(body, headers=NO_STORE)

    async def join(request: Request) -> Response:
        try:
            admission = gate.join(request.path_params["space_id"])
        except RostraError as error:
            return from_error(error)
        body: dict[str, object] = {
            **_ticket_json(admission.issued.token, admission.issued.ticket.expires_at_s),
            "heartbeat_interval_s": admission.heartbeat_interval_s,
        }
        return JSONResponse(body, status_code=201, headers=NO_STORE)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return [
        Route("/api/v1/spaces/{space_id}/heartbeat", heartbeat, methods=["POST"]),
        Route("/api/v1/spaces/{space_id}/join", join, methods=["POST"]),
        Route("/healthz", healthz),
    ]


def create_app() -> Starlette:
    settings = load_settings()
    check_gate_settings(settings)
    parts = build_audience(settings, SystemClock(), spaces=None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        flusher = asyncio.create_task(run_flusher(parts.gate))
        yield
        flusher.cancel()
        await asyncio.to_thread(parts.gate.flush)
        parts.close()

    return Starlette(routes=_routes(parts.gate), lifespan=lifespan)


def create_mounted_app() -> FastAPI:
    app = create_gate_app()
    app.router.routes[:0] = _routes(app.state.gate)[:2]
    return app
