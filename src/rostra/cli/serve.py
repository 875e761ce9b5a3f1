"""`rostra serve`: the server on one machine — the origin process (the speakers' path) and N
listener workers, supervised — with embedded storage by default.

CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from rostra.cli.supervisor import Supervisor
from rostra.config import (
    ADMIN_TOKEN_FILE,
    MAX_SPEAKER_BITRATE_KBPS,
    MIN_SPEAKER_BITRATE_KBPS,
    Settings,
    load_settings,
    with_secrets,
)
from rostra.log import setup_logging
from rostra.store.sqlite import DATABASE_NAME, SqliteSpaceStore


def banner(settings: Settings, created: list[str], *, is_token_from_env: bool) -> list[str]:
    """What the operator needs on first start: where the secrets are, and the next command."""
    data = settings.data.resolve()
    lines = [
        f"Rostra on {settings.base_url}  (data: {data})",
        f"Listener workers: {settings.workers}; speakers' WHIP endpoint: {settings.whip_base_url}"
        "/whip/ID (the origin process)",
    ]
    if created:
        lines.append(f"Generated {' and '.join(created)} in {data} (keep them private)")
    if is_token_from_env:
        lines.append("Admin token: from ROSTRA_ADMIN_TOKEN")
    else:
        lines.append(
            f"Admin token: {settings.data / ADMIN_TOKEN_FILE} (`rostra space …` run from this "
            "folder reads it; elsewhere set ROSTRA_ADMIN_TOKEN)"
        )
    lines.append("Create a space:  .venv/bin/rostra space create --title 'My space' --live")
    lines.append("then open its host_url in a browser.")
    return lines


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [env ROSTRA_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env ROSTRA_PORT]")] = None,
    data: Annotated[Path | None, typer.Option(help="Data folder [env ROSTRA_DATA]")] = None,
    public_url: Annotated[
        str | None, typer.Option(help="Base of every absolute URL [env ROSTRA_PUBLIC_URL]")
    ] = None,
    tls_cert: Annotated[str | None, typer.Option(help="TLS certificate (PEM)")] = None,
    tls_key: Annotated[str | None, typer.Option(help="TLS private key (PEM)")] = None,
    redis: Annotated[
        str | None, typer.Option(help="Share the count with gate workers [env ROSTRA_REDIS]")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Listener worker processes [env ROSTRA_WORKERS]"),
    ] = None,
    whip_port: Annotated[
        int | None,
        typer.Option(help="The origin's WHIP port; default: port + 1 [env ROSTRA_WHIP_PORT]"),
    ] = None,
    whip_public_url: Annotated[
        str | None,
        typer.Option(
            help="Base of printed whip_url values; default: the public URL (an edge routes "
            "/whip/ to the WHIP port), else the WHIP port [env ROSTRA_WHIP_PUBLIC_URL]"
        ),
    ] = None,
    speaker_bitrate_kbps: Annotated[
        int | None,
        typer.Option(
            min=MIN_SPEAKER_BITRATE_KBPS,
            max=MAX_SPEAKER_BITRATE_KBPS,
            help="Opus bitrate asked of browser speakers (mono, full band, in-band FEC), "
            "kbit/s; default 96 [env ROSTRA_SPEAKER_BITRATE_KBPS]",
        ),
    ] = None,
    captions: Annotated[
        bool | None,
        typer.Option(
            "--captions/--no-captions",
            help="Live captions (speech recognition, about 26 % of a core per space while "
            "people speak); default off [env ROSTRA_CAPTIONS]",
        ),
    ] = None,
    icecast: Annotated[
        str | None,
        typer.Option(
            help="Feed each live space to an Icecast 2.4 server as mounts /ID.aac and /ID.opus: "
            "icecast://source:PASSWORD@HOST:PORT (docs/relays.md) [env ROSTRA_ICECAST]"
        ),
    ] = None,
) -> None:
    """SIGTERM or Ctrl-C stops the server and leaves live spaces live: the next start puts them
    back on air. Only `rostra space end` ends a space."""
    try:
        settings = load_settings(
            {
                "host": host,
                "port": port,
                "data": data,
                "public_url": public_url,
                "tls_cert": tls_cert,
                "tls_key": tls_key,
                "redis": redis,
                "workers": workers,
                "whip_port": whip_port,
                "whip_public_url": whip_public_url,
                "speaker_bitrate_kbps": speaker_bitrate_kbps,
                "captions": captions,
                "icecast": icecast,
            }
        )
    except ValueError as exc:  # a setting out of its bounds, from the environment or rostra.toml
        raise typer.BadParameter(str(exc)) from exc
    settings, created = with_secrets(settings)
    setup_logging(settings.log_level)
    SqliteSpaceStore(settings.data / DATABASE_NAME).close()  # schema made once, up front
    supervisor = Supervisor(settings)
    for line in banner(settings, created, is_token_from_env="ROSTRA_ADMIN_TOKEN" in os.environ):
        typer.echo(line)
    raise typer.Exit(supervisor.run())
