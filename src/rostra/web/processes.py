"""The two kinds of server process that `rostra serve` supervises, each on a listening socket the
supervisor bound and passed down (so a restarted process answers on the same port at once):

    python -m rostra.web.processes origin FD   the speakers' path (WHIP on FD)
    python -m rostra.web.processes worker FD   a listener worker (pages, API, gate, media on FD)

Web plane (composition root). Settings come from ROSTRA_* variables, set by the supervisor.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import sys

from rostra.config import Settings, load_settings, with_secrets
from rostra.log import setup_logging

WORKER_GRACEFUL_S = 3
PR_SET_PDEATHSIG = 1
M_ARENA_MAX = -8  # glibc's mallopt() parameter
# a listener worker's threads (file reads, store calls: dozens under load) share this many malloc
# arenas; by default each new thread takes its own, up to 8 per core, and each arena keeps its
# own high-water mark and free fragments: resident memory rose in steps (bench/soak.py)
WORKER_MALLOC_ARENAS = 2


def _die_with_supervisor() -> None:
    """Linux: a supervisor that dies, even by kill -9, takes its children with it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the supervisor was already gone
        raise SystemExit("the supervisor is gone")


def _bound_malloc_arenas(arenas: int) -> None:
    """Linux/glibc: before any thread starts, so every thread shares the first `arenas`."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        return


def _settings() -> Settings:
    _die_with_supervisor()
    settings, _ = with_secrets(load_settings())
    setup_logging(settings.log_level)
    return settings


def run_origin(fd: int) -> None:
    from rostra.web.origin_app import serve_origin

    settings = _settings()
    asyncio.run(serve_origin(settings, socket.socket(fileno=fd)))


def run_worker(fd: int) -> None:
    import uvicorn

    from rostra.web.app import create_listener_app
    from rostra.web.http_limits import bounded_protocol
    from rostra.web.memory_diagnostics import install_memory_dumps

    _bound_malloc_arenas(WORKER_MALLOC_ARENAS)
    settings = _settings()
    install_memory_dumps(settings.run_dir)  # SIGUSR2: where memory went, into the run folder
    if settings.worker_nice > 0:
        os.nice(settings.worker_nice)
    config = uvicorn.Config(
        create_listener_app(settings),
        http=bounded_protocol(settings.header_timeout_s),
        limit_concurrency=settings.max_connections,
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
        timeout_keep_alive=int(settings.keep_alive_s),
        timeout_graceful_shutdown=WORKER_GRACEFUL_S,
        # a client's address comes from X-Forwarded-For only when the peer is a trusted edge
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


def main(argv: list[str]) -> None:
    kinds = {"origin": run_origin, "worker": run_worker}
    if len(argv) != 2 or argv[0] not in kinds or not argv[1].isdigit():
        raise SystemExit("usage: python -m rostra.web.processes origin|worker FD")
    kinds[argv[0]](int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
