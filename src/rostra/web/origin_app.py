"""The origin process: the speakers' path alone — WHIP on its own port, ICE/DTLS/RTP, jitter
buffers, mixer, encoders, HLS packager, recorder — and its internal API on a Unix socket.

Web plane (origin process composition root). No listener request is ever handled here; a stop
leaves live spaces live (their playlists open), and a start puts them back on air.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware.cors import CORSMiddleware

from rostra import __version__
from rostra.clock import SystemClock
from rostra.config import Settings
from rostra.media.ice import is_loopback
from rostra.media.origin import Origin
from rostra.stage.invites import InviteService
from rostra.stage.moderation import DEVICE_HEADER
from rostra.stage.spaces import SpaceService
from rostra.stage.tokens import TokenSigner
from rostra.store.sqlite import DATABASE_NAME, SqliteSpaceStore
from rostra.web import problems
from rostra.web.audience_wiring import AUDIENCE_DATABASE_NAME
from rostra.web.cache_headers import NoStoreWrites
from rostra.web.icecast_framing import IcecastFraming
from rostra.web.origin_client import SOCKET_NAME
from rostra.web.origin_metrics import OriginCollector
from rostra.web.origin_services import OriginServices
from rostra.web.routes import ingest, internal, whip
from rostra.web.routes.moderation import build_moderation
from rostra.web.security_headers import SecurityHeaders

log = logging.getLogger(__name__)

MEDIA_FOLDER = "spaces"
STOP_TIMEOUT_S = 20


def build_origin_services(settings: Settings) -> OriginServices:
    clock = SystemClock()
    store = SqliteSpaceStore(settings.data / DATABASE_NAME)
    origin = Origin(
        settings.data / MEDIA_FOLDER,
        ice_servers=settings.ice_servers,
        ice_host_addresses=settings.ice_host_addresses
        or (("127.0.0.1",) if is_loopback(settings.host) else ()),
        max_voices=settings.max_voices,
        turn_secret=settings.turn_secret,
        turn_ttl_s=settings.turn_ttl_s,
        window_segments=settings.live_window_segments,
        drop_rate=settings.ingest_drop_rate,
        drop_seed=settings.ingest_drop_seed,
        speaker_bitrate_bps=settings.speaker_bitrate_kbps * 1000,
        has_captions=settings.captions,
    )
    return OriginServices(
        settings=settings,
        clock=clock,
        store=store,
        spaces=SpaceService(store, clock),
        invites=InviteService.from_settings(
            store, TokenSigner(settings.signing_secret), clock, settings
        ),
        origin=origin,
    )


def _app(services: OriginServices, title: str) -> FastAPI:
    app = FastAPI(title=title, version=__version__, docs_url=None, redoc_url=None)
    app.state.services = services
    problems.install(app)
    return app


def create_whip_app(services: OriginServices) -> FastAPI:
    """WHIP for speakers' pages on the listener origin: CORS, since the page is on another port
    (a Bearer token, never a cookie, carries the credential)."""
    app = _app(services, "Rostra origin (WHIP)")
    app.include_router(whip.router)
    # blocked devices are refused here too (read from the store of the audience's state)
    app.state.moderation = build_moderation(
        services.settings, services.clock, AUDIENCE_DATABASE_NAME
    )
    app.include_router(ingest.router)  # Icecast sources, on the same port
    app.state.source_refusals = ingest.PasswordRefusals()
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["POST", "DELETE", "OPTIONS", "PATCH"],
        allow_headers=["Authorization", "Content-Type", DEVICE_HEADER],
        expose_headers=["Location", "Link", "Accept-Post"],
        max_age=600,
    )
    app.add_middleware(NoStoreWrites)
    app.add_middleware(SecurityHeaders)  # nosniff and no Referer on every answer
    return app


def create_internal_app(services: OriginServices) -> FastAPI:
    app = _app(services, "Rostra origin (internal)")
    registry = CollectorRegistry()
    registry.register(OriginCollector(services.origin))
    app.state.registry = registry
    app.include_router(internal.router)
    return app


class _QuietServer(uvicorn.Server):
    """Signals are the origin's to handle: both servers stop together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _internal_socket(settings: Settings) -> socket.socket:
    run_dir = settings.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    path = run_dir / SOCKET_NAME
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    return sock


async def serve_origin(settings: Settings, whip_socket: socket.socket) -> None:
    """Run until SIGTERM/SIGINT: resume live spaces, follow the store, answer WHIP."""
    services = build_origin_services(settings)
    await services.reconcile()
    internal_socket = _internal_socket(settings)
    servers = [
        _QuietServer(_config(create_whip_app(services), settings, tls=True)),
        _QuietServer(_config(create_internal_app(services), settings, tls=False)),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with asyncio.TaskGroup() as group:
        reconciler = group.create_task(services.run())
        downloads = group.create_task(services.finish_downloads())
        serving = [
            group.create_task(servers[0].serve(sockets=[whip_socket])),
            group.create_task(servers[1].serve(sockets=[internal_socket])),
        ]
        log.info(
            "origin started", extra={"pid": os.getpid(), "whip_port": settings.origin_whip_port}
        )
        await stop.wait()
        services.origin.stop_sources()  # an Icecast source is a request that never ends itself
        reconciler.cancel()
        downloads.cancel()
        for server in servers:
            server.should_exit = True
        await asyncio.wait(serving, timeout=STOP_TIMEOUT_S)
    on_air = await services.origin.shutdown()
    services.store.close()
    log.info("origin stopped; live spaces stay live", extra={"on_air": len(on_air)})


def _config(app: FastAPI, settings: Settings, *, tls: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",
        ssl_certfile=(settings.tls_cert or None) if tls else None,
        ssl_keyfile=(settings.tls_key or None) if tls else None,
        # the speakers' port also takes Icecast sources, whose bodies have no HTTP framing
        http=IcecastFraming if tls else "auto",
        timeout_keep_alive=int(settings.keep_alive_s),
        timeout_graceful_shutdown=STOP_TIMEOUT_S,
        log_level="warning",
        access_log=False,
    )
