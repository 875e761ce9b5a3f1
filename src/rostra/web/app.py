"""The server's app factory: wires the planes and owns their lifetime (graceful shutdown ends
live spaces cleanly, recordings closed).

Web plane (composition root).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from rostra import __version__
from rostra.clock import SystemClock
from rostra.config import Settings
from rostra.media.ice import is_loopback
from rostra.media.origin import Origin
from rostra.stage.invites import InviteService
from rostra.stage.spaces import SpaceService, SpaceStatus
from rostra.stage.tokens import TokenSigner
from rostra.store.sqlite import SqliteSpaceStore
from rostra.web import problems
from rostra.web.audience_wiring import build_audience, run_flusher
from rostra.web.metrics import GateCollector
from rostra.web.routes import audience, media, ops, pages, spaces, whip
from rostra.web.routes.ops import OriginCollector
from rostra.web.services import Services

log = logging.getLogger(__name__)

DATABASE_NAME = "rostra.sqlite3"
MEDIA_FOLDER = "spaces"


def build_services(settings: Settings) -> Services:
    clock = SystemClock()
    store = SqliteSpaceStore(settings.data / DATABASE_NAME)
    signer = TokenSigner(settings.signing_secret)
    origin = Origin(
        settings.data / MEDIA_FOLDER,
        ice_servers=settings.ice_servers,
        ice_host_addresses=settings.ice_host_addresses
        or (("127.0.0.1",) if is_loopback(settings.host) else ()),
        max_voices=settings.max_voices,
        window_segments=settings.live_window_segments,
        drop_rate=settings.ingest_drop_rate,
        drop_seed=settings.ingest_drop_seed,
    )
    audience = build_audience(settings, clock, store)
    return Services(
        audience=audience,
        settings=settings,
        clock=clock,
        store=store,
        spaces=SpaceService(store, clock),
        invites=InviteService(store, signer, clock, settings.invite_ttl_s),
        signer=signer,
        origin=origin,
    )


async def _resume(services: Services) -> None:
    """Spaces that were live when the server stopped go on air again (the recording continues)."""
    for space in services.spaces.list():
        if space.status != SpaceStatus.ENDED:
            services.publish_status(space)
        if space.status == SpaceStatus.LIVE and space.started_at is not None:
            await services.origin.go_live(space.id, space.started_at)


def create_app(settings: Settings) -> FastAPI:
    if not settings.admin_token or not settings.signing_secret:
        raise ValueError("settings need the admin token and signing secret (config.with_secrets)")
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _resume(services)
        flusher = asyncio.create_task(run_flusher(services.audience.gate))
        yield
        flusher.cancel()
        on_air = await services.origin.shutdown()
        for space_id in on_air:
            services.publish_status(services.spaces.end(space_id))
        await asyncio.to_thread(services.audience.gate.flush)
        services.audience.close()
        log.info("server stopped", extra={"spaces_ended": len(on_air)})
        services.store.close()

    app = FastAPI(
        title="Rostra",
        version=__version__,
        summary="Large live audio conversations: speak over WHIP, listen over HLS or any player.",
        lifespan=lifespan,
        docs_url=None,  # served by routes/pages.py from local files
        redoc_url=None,
    )
    app.state.services = services
    app.state.gate = services.audience.gate
    registry = CollectorRegistry()
    registry.register(OriginCollector(services.origin))
    registry.register(GateCollector(services.audience.gate))
    app.state.registry = registry
    problems.install(app)
    app.router.routes.extend(audience.fast_routes())  # first: the hot paths skip FastAPI
    for module in (spaces, whip, audience, media, pages, ops):
        app.include_router(module.router)
    return app
