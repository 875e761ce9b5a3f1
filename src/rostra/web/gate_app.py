"""The gate app alone: the listener-write API for `rostra gate` workers, scaled out behind any
load balancer with Redis as the shared state. No media, no pages.

Web plane (composition root).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from rostra import __version__
from rostra.clock import SystemClock
from rostra.config import Settings, load_settings
from rostra.log import setup_logging
from rostra.web import problems
from rostra.web.audience_wiring import AUDIENCE_DATABASE_NAME, build_audience, run_flusher
from rostra.web.incident_recorder import install_incident_log
from rostra.web.metrics import GateCollector
from rostra.web.routes import audience, ops
from rostra.web.routes.moderation import build_moderation
from rostra.web.security_headers import SecurityHeaders
from rostra.web.source_limits import SourceLimits


class GateMisconfigured(ValueError):
    """A gate must share the deployment's signing secret and Redis: it refuses to start alone."""


def check_gate_settings(settings: Settings) -> None:
    if not settings.redis:
        raise GateMisconfigured("rostra gate needs --redis redis://HOST:PORT (ROSTRA_REDIS)")
    if not settings.signing_secret:
        raise GateMisconfigured(
            "rostra gate needs the deployment's shared signing secret: set ROSTRA_SIGNING_SECRET "
            "to the value in the origin's data folder (signing_secret); a gate never makes its own"
        )


def create_gate_app(settings: Settings | None = None) -> FastAPI:
    """Also the uvicorn factory for gate workers: settings then come from ROSTRA_* variables."""
    settings = settings or load_settings()
    check_gate_settings(settings)
    setup_logging(settings.log_level)
    parts = build_audience(settings, SystemClock(), spaces=None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        flusher = asyncio.create_task(run_flusher(parts.gate))
        yield
        flusher.cancel()
        await asyncio.to_thread(parts.gate.flush)
        parts.close()
        app.state.moderation.store.close()

    app = FastAPI(
        title="Rostra gate",
        version=__version__,
        summary="The listener-write API: join, heartbeat, leave, reactions, hand.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.gate = parts.gate
    app.state.moderation = build_moderation(settings, SystemClock(), AUDIENCE_DATABASE_NAME)
    app.state.admin_token = settings.admin_token  # /metrics answers it only
    registry = CollectorRegistry()
    registry.register(GateCollector(parts.gate))
    app.state.registry = registry
    problems.install(app)
    app.router.routes.extend(audience.fast_routes())  # first: the hot paths skip FastAPI
    app.include_router(audience.router)
    app.include_router(ops.router)
    app.add_middleware(SourceLimits, settings=settings)  # before routing: 429 per source
    install_incident_log(app, settings, has_data_folder=False)  # counts into Redis
    app.add_middleware(SecurityHeaders)  # nosniff and no Referer on every answer
    return app
