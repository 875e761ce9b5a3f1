"""`rostra space …`: the spaces API from the command line; JSON on stdout.

CLI. Finds the admin token in ROSTRA_ADMIN_TOKEN or the local data folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from rostra.audience.defense import PowMode
from rostra.config import ADMIN_TOKEN_FILE, DEFAULT_HOST, DEFAULT_PORT

app = typer.Typer(no_args_is_help=True)

TIMEOUT_S = 30.0
ServerOption = Annotated[
    str | None, typer.Option("--server", help="Server URL [env ROSTRA_SERVER]")
]


def _server(server: str | None) -> str:
    return (
        server or os.environ.get("ROSTRA_SERVER") or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    ).rstrip("/")


def _admin_token() -> str:
    token = os.environ.get("ROSTRA_ADMIN_TOKEN")
    if token:
        return token
    path = Path(os.environ.get("ROSTRA_DATA", "data")) / ADMIN_TOKEN_FILE
    if path.is_file():
        return path.read_text().strip()
    typer.echo(f"no admin token: set ROSTRA_ADMIN_TOKEN or run where {path} exists", err=True)
    raise typer.Exit(2)


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
        str | None, typer.Option(help="Scheduled start, ISO 8601 with timezone")
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


@app.command("list")
def list_spaces(server: ServerOption = None) -> None:
    """List spaces."""
    _print(_call("GET", server, "/api/v1/spaces"))


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
    server: ServerOption = None,
) -> None:
    """Mint a speaker invite link."""
    body: dict[str, Any] = {}
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
