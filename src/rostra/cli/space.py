"""`rostra space …`: the spaces API from the command line; JSON on stdout.

CLI. Finds the admin token in ROSTRA_ADMIN_TOKEN or the local data folder.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer

from rostra.audience.defense import PowMode
from rostra.config import ADMIN_TOKEN_FILE, DEFAULT_HOST, DEFAULT_PORT, SIGNING_SECRET_FILE
from rostra.stage.sources import SOURCE_USER, source_password

app = typer.Typer(no_args_is_help=True)

TIMEOUT_S = 30.0
ServerOption = Annotated[
    str | None, typer.Option("--server", help="Server URL [env ROSTRA_SERVER]")
]


def _server(server: str | None) -> str:
    return (
        server or os.environ.get("ROSTRA_SERVER") or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    ).rstrip("/")


def _data_secret(env_name: str, file_name: str, what: str) -> str:
    """A secret from its environment variable, else from the data folder's file of it."""
    value = os.environ.get(env_name)
    if value:
        return value
    path = Path(os.environ.get("ROSTRA_DATA", "data")) / file_name
    if path.is_file():
        return path.read_text().strip()
    typer.echo(f"no {what}: set {env_name} or run where {path} exists", err=True)
    raise typer.Exit(2)


def _admin_token() -> str:
    return _data_secret("ROSTRA_ADMIN_TOKEN", ADMIN_TOKEN_FILE, "admin token")


def _call(method: str, server: str | None, path: str, body: dict[str, Any] | None = None) -> Any:
    url = _server(server) + path
    try:
        response = httpx.request(
            method,
            url,
            json=body,
            headers={"Authorization": f"Bearer {_admin_token()}"},
            timeout=TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        typer.echo(f"{response.status_code}: {detail}", err=True)
        raise typer.Exit(1)
    return response.json()


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@app.command()
def create(
    title: Annotated[str, typer.Option(help="The space's title")],
    scheduled_at: Annotated[
        str | None,
        typer.Option(
            help="Scheduled start, ISO 8601 with timezone: after now, at most a year ahead"
        ),
    ] = None,
    live: Annotated[bool, typer.Option("--live", help="Go live at once")] = False,
    server: ServerOption = None,
) -> None:
    """Create a space; prints its URLs."""
    body: dict[str, Any] = {"title": title, "live": live}
    if scheduled_at:
        body["scheduled_at"] = scheduled_at
    _print(_call("POST", server, "/api/v1/spaces", body))


@app.command()
def start(space_id: str, server: ServerOption = None) -> None:
    """Go live."""
    _print(_call("POST", server, f"/api/v1/spaces/{space_id}/start"))


@app.command()
def end(space_id: str, server: ServerOption = None) -> None:
    """End the space; its recording becomes the replay."""
    _print(_call("POST", server, f"/api/v1/spaces/{space_id}/end"))


def upcoming(spaces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spaces not started yet that have a start time, soonest first; the server gives
    each its calendar's `event_url` (times are ISO 8601 UTC with a Z: text sorts as time)."""
    scheduled = [
        space
        for space in spaces
        if space.get("status") == "scheduled" and space.get("scheduled_at")
    ]
    return sorted(scheduled, key=lambda space: (space["scheduled_at"], space["id"]))


@app.command("list")
def list_spaces(
    is_upcoming: Annotated[
        bool,
        typer.Option("--upcoming", help="Only spaces scheduled and not started yet, soonest first"),
    ] = False,
    server: ServerOption = None,
) -> None:
    """List spaces."""
    listed = _call("GET", server, "/api/v1/spaces")
    if is_upcoming:
        listed = {"spaces": upcoming(listed["spaces"])}
    _print(listed)


@app.command("host-link")
def host_link(
    space_id: str,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="End every older host link of the space")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Print a fresh host link (it expires); --rotate makes every older one stop working."""
    _print(_call("POST", server, f"/api/v1/spaces/{space_id}/host-link", {"rotate": rotate}))


class InviteRole(StrEnum):
    SPEAKER = "speaker"
    COHOST = "cohost"


@app.command()
def invite(
    space_id: str,
    name: Annotated[str | None, typer.Option(help="Speaker's name")] = None,
    uses: Annotated[int | None, typer.Option(help="How many times the link may be used")] = None,
    seats: Annotated[
        int | None,
        typer.Option(
            help="Stage seats a link without a name holds at once (default 4; a named invite"
            " holds one, and a new connection with it replaces the old)"
        ),
    ] = None,
    studio: Annotated[
        bool,
        typer.Option(
            "--studio",
            help="Open the speak page in studio mode: no noise suppression or automatic gain,"
            " for a guest on headphones (the guest may still turn it off)",
        ),
    ] = False,
    role: Annotated[
        InviteRole,
        typer.Option(
            help="speaker, or cohost: a personal invite that runs the stage with the host"
            " (invites raised hands, removes speakers); at most 2 co-hosts per space",
        ),
    ] = InviteRole.SPEAKER,
    server: ServerOption = None,
) -> None:
    """Mint a speaker (or co-host) invite link."""
    body: dict[str, Any] = {"role": role.value}
    if studio:
        body["studio"] = True
    if name:
        body["name"] = name
    if uses is not None:
        body["uses"] = uses
    if seats is not None:
        body["seats"] = seats
    _print(_call("POST", server, f"/api/v1/spaces/{space_id}/invites", body))


@app.command()
def defend(
    space_id: str,
    pow: Annotated[
        PowMode | None,
        typer.Option("--pow", help="Proof-of-work for joins: on, off, or auto (under attack)"),
    ] = None,
    admission_rate: Annotated[
        float | None,
        typer.Option("--admission-rate", min=0.001, help="Joins admitted per second"),
    ] = None,
    admission_burst: Annotated[
        int | None,
        typer.Option("--admission-burst", min=1, help="Joins admitted at once after a lull"),
    ] = None,
    server: ServerOption = None,
) -> None:
    """Set the space's defence (prints it; with no option, just prints it)."""
    body: dict[str, Any] = {}
    if pow is not None:
        body["pow"] = pow.value
    if admission_rate is not None:
        body["admission_rate"] = admission_rate
    if admission_burst is not None:
        body["admission_burst"] = admission_burst
    path = f"/api/v1/spaces/{space_id}/defense"
    _print(_call("PUT", server, path, body) if body else _call("GET", server, path))


# the port a whip_url without one names: the source URL always spells it out
_DEFAULT_PORTS = {"http": 80, "https": 443}


@app.command()
def source(space_id: str, server: ServerOption = None) -> None:
    """Print the Icecast source URL and password for broadcast software (ffmpeg, butt,
    Liquidsoap): it feeds one voice on the stage."""
    whip = urlsplit(str(_call("GET", server, f"/api/v1/spaces/{space_id}")["whip_url"]))
    secret = _data_secret("ROSTRA_SIGNING_SECRET", SIGNING_SECRET_FILE, "signing secret")
    password = source_password(secret, space_id)
    port = whip.port or _DEFAULT_PORTS.get(whip.scheme, 80)
    host = f"[{whip.hostname}]" if ":" in (whip.hostname or "") else whip.hostname
    netloc = f"{SOURCE_USER}:{password}@{host}:{port}"
    _print({"source_url": f"icecast://{netloc}/ingest/{space_id}", "password": password})
