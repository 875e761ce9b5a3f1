"""A listener worker's app: pages, the API, the gate, state.json, HLS files read from the data
folder and the progressive streams fed from the origin. Never the speakers' path: no aiortc, no
PyAV is loaded here (tests/architecture checks it).

Web plane (composition root).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from rostra import __version__
from rostra.audience.icecast_count import IcecastCount
from rostra.clock import SystemClock
from rostra.config import Settings, parse_icecast_url
from rostra.stage.invites import InviteService
from rostra.stage.spaces import SpaceService
from rostra.stage.tokens import TokenSigner
from rostra.store.sqlite import DATABASE_NAME, SqliteSpaceStore
from rostra.web import problems
from rostra.web.audience_wiring import AUDIENCE_DATABASE_NAME, build_audience, run_flusher
from rostra.web.cache_headers import NoStoreWrites
from rostra.web.feeds import FeedHub
from rostra.web.health import ListenerHealth
from rostra.web.icecast_feed import IcecastFeeder, supervised
from rostra.web.incident_recorder import install_incident_log
from rostra.web.metrics import GateCollector
from rostra.web.origin_client import OriginClient
from rostra.web.origin_status import StatusReader
from rostra.web.routes import audience, ics, incident, media, ops, pages, spaces, whip_redirect
from rostra.web.routes import captions as captions_routes
from rostra.web.routes import clips as clip_routes
from rostra.web.routes import defense as defense_routes
from rostra.web.routes import moderation as moderation_routes
from rostra.web.security_headers import SecurityHeaders, content_security_policy
from rostra.web.services import Services
from rostra.web.source_limits import SourceLimits
from rostra.web.worker_metrics import WorkerMetrics

log = logging.getLogger(__name__)

MEDIA_FOLDER = "spaces"


def build_services(settings: Settings) -> Services:
    clock = SystemClock()
    store = SqliteSpaceStore(settings.data / DATABASE_NAME)
    signer = TokenSigner(settings.signing_secret)
    origin = OriginClient(settings.run_dir)
    media_root = settings.data / MEDIA_FOLDER
    return Services(
        audience=build_audience(settings, clock, store),
        settings=settings,
        clock=clock,
        store=store,
        spaces=SpaceService(store, clock),
        invites=InviteService.from_settings(store, signer, clock, settings),
        signer=signer,
        origin=origin,
        feeds=FeedHub(origin, settings.run_dir, max_listeners=settings.max_stream_listeners),
        origin_status=StatusReader(media_root),
        media_root=media_root,
        icecast_count=(
            IcecastCount(parse_icecast_url(settings.icecast).base_url, settings.icecast_relays)
            if settings.icecast
            else None
        ),
    )


class StreamCollector:
    """Plain players on this worker."""

    def __init__(self, feeds: FeedHub) -> None:
        self._feeds = feeds

    def collect(self) -> list[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "rostra_worker_stream_listeners", "Progressive-stream listeners on this worker"
        )
        gauge.add_metric([], self._feeds.listener_count())
        return [gauge]


def create_listener_app(settings: Settings) -> FastAPI:
    if not settings.admin_token or not settings.signing_secret:
        raise ValueError("settings need the admin token and signing secret (config.with_secrets)")
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for space in services.spaces.list():
            services.publish_status(space)
        flusher = asyncio.create_task(run_flusher(services.audience.gate))
        feeds = asyncio.create_task(services.feeds.run())
        metrics = asyncio.create_task(worker_metrics.run())
        tasks: tuple[asyncio.Task[None], ...] = (flusher, feeds, metrics)
        if services.icecast_count is not None:  # docs/relays.md: one worker feeds, each counts
            feeder = IcecastFeeder(settings, services.origin, services.store)
            tasks += (
                asyncio.create_task(supervised("icecast feeder", feeder.run)),
                asyncio.create_task(supervised("icecast count", services.icecast_count.run)),
            )
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(services.audience.gate.flush)
        services.audience.close()
        app.state.moderation.store.close()
        await services.origin.close()
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
    app.state.moderation = moderation_routes.build_moderation(
        settings, services.clock, AUDIENCE_DATABASE_NAME
    )
    app.state.health_check = ListenerHealth(services).check
    app.state.extra_metrics = services.origin.metrics_text
    registry = CollectorRegistry()
    registry.register(GateCollector(services.audience.gate))
    registry.register(StreamCollector(services.feeds))
    app.state.registry = registry
    worker_metrics = WorkerMetrics(registry, settings.run_dir)
    app.state.merged_metrics = worker_metrics.merged_text
    problems.install(app)
    app.router.routes.extend(audience.fast_routes())  # first: the hot paths skip FastAPI
    app.include_router(captions_routes.router)  # before media's /live/{id}/{name}
    for module in (spaces, audience, ics, media, pages, ops, whip_redirect, incident, clip_routes):
        app.include_router(module.router)
    app.include_router(defense_routes.router)
    app.include_router(moderation_routes.router)
    app.add_middleware(NoStoreWrites)
    app.add_middleware(SourceLimits, settings=settings)  # before routing: 429 per source
    install_incident_log(app, settings, has_data_folder=True)  # outermost: sees every answer
    # the policy, nosniff and no Referer go on every answer, the limits' 429 included
    app.add_middleware(
        SecurityHeaders,
        policy=content_security_policy(
            public_url=settings.base_url, whip_base_url=settings.whip_base_url
        ),
    )
    return app
