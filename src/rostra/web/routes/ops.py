"""Operations: /healthz and Prometheus /metrics, on listener workers and gates.

Web plane. A listener worker's /healthz checks what a listener depends on (the origin process,
segments of every live space, free disk); its /metrics adds the origin's own. /metrics names live
spaces and their audiences: it answers the admin token only (`Authorization: Bearer …`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.responses import JSONResponse, Response

from rostra.errors import CredentialInvalid, CredentialMissing
from rostra.web.inputs import bearer

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


def admin_token_of(request: Request) -> str:
    """The deployment's admin token: a listener app's settings, or a gate's app.state."""
    services = getattr(request.app.state, "services", None)
    if services is not None:
        return str(services.settings.admin_token)
    return str(getattr(request.app.state, "admin_token", "") or "")


def require_scraper(request: Request) -> None:
    """The admin token, compared in constant time; a gate started without one serves no
    metrics at all rather than serving them to anyone."""
    token = bearer(request)
    if not token:
        raise CredentialMissing("/metrics needs the admin token as 'Authorization: Bearer …'")
    expected = admin_token_of(request)
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise CredentialInvalid("the bearer token is not this deployment's admin token")


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin token)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(request: Request) -> Response:
    require_scraper(request)
    merged: Callable[[], bytes] | None = getattr(request.app.state, "merged_metrics", None)
    registry: CollectorRegistry = request.app.state.registry
    text = merged() if merged is not None else generate_latest(registry)
    extra: ExtraMetrics | None = getattr(request.app.state, "extra_metrics", None)
    if extra is not None:
        text += (await extra()).encode()
    return Response(text, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
