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


@app.command()
def invite(
    space_id: str,
    name: Annotated[str | None, typer.Option(help="Speaker's name")] = None,
    uses: Annotated[int | None, typer.Option(help="How many times the link may be used")] = None,
    server: ServerOption = None,
) -> None:
    """Mint a speaker invite link."""
    body: dict[str, Any] = {}
    if name:
        body["name"] = name
    if uses is not None:
        body["uses"] = uses
    _print(_call("POST", server, f"/api/v1/spaces/{space_id}/invites", body))
