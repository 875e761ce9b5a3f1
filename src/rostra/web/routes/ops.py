"""Operations: /healthz and Prometheus /metrics, on listener workers and gates.

Web plane. A listener worker's /healthz checks what a listener depends on (the origin process,
segments of every live space, free disk); its /metrics adds the origin's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.responses import JSONResponse, Response

# a listener app sets these on app.state; a gate has neither
HealthCheck = Callable[[], Awaitable[dict[str, Any]]]
ExtraMetrics = Callable[[], Awaitable[str]]

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness and readiness: 503 with the failed checks",
    responses={503: {"description": "a check failed: the body names it"}},
)
async def healthz(request: Request) -> JSONResponse:
    check: HealthCheck | None = getattr(request.app.state, "health_check", None)
    body = await check() if check is not None else {"status": "ok", "failed": []}
    status = 200 if body["status"] == "ok" else 503
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    merged: Callable[[], bytes] | None = getattr(request.app.state, "merged_metrics", None)
    registry: CollectorRegistry = request.app.state.registry
    text = merged() if merged is not None else generate_latest(registry)
    extra: ExtraMetrics | None = getattr(request.app.state, "extra_metrics", None)
    if extra is not None:
        text += (await extra()).encode()
    return Response(text, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
