"""`rostra gate`: the listener-write API alone, N workers on Redis; stateless, scale out freely.

CLI.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
import uvicorn

from rostra.config import load_settings
from rostra.web.gate_app import GateMisconfigured, check_gate_settings

GRACEFUL_SHUTDOWN_S = 10


def gate(
    redis: Annotated[str | None, typer.Option(help="Redis URL [env ROSTRA_REDIS]")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address [env ROSTRA_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env ROSTRA_PORT]")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [env ROSTRA_GATE_WORKERS]")
    ] = None,
) -> None:
    settings = load_settings({"redis": redis, "host": host, "port": port, "gate_workers": workers})
    try:
        check_gate_settings(settings)
    except GateMisconfigured as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    # workers are separate processes: they read their settings from the environment
    os.environ["ROSTRA_REDIS"] = settings.redis
    typer.echo(
        f"Rostra gate on http://{settings.host}:{settings.port} with {settings.gate_workers} "
        f"worker(s), Redis at {settings.redis.split('@')[-1]}"
    )
    uvicorn.run(
        "rostra.web.gate_app:create_gate_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.gate_workers,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=int(settings.keep_alive_s),
        # a client's address comes from X-Forwarded-For only when the peer is a trusted edge
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        log_level="warning",
        access_log=False,
    )
