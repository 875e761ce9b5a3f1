"""`rostra incident report ID --html OUT.html --json OUT.json`: a space's incident log, fetched
from the server and written as JSON and as one self-contained HTML page an operator can publish.

CLI. Uses the admin token and `--server` as every `rostra space` command does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rostra.audience.incident_report_html import render_html
from rostra.cli.space import ServerOption, _call, _print

app = typer.Typer(no_args_is_help=True)


@app.command("report")
def report(
    space_id: str,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report's JSON here")
    ] = None,
    server: ServerOption = None,
) -> None:
    """The incident report of a space: requests by verdict over time, what was rejected and why,
    the top source prefixes, admission and difficulty, and whether the broadcast was affected."""
    summary = _call("GET", server, f"/api/v1/spaces/{space_id}/incident")
    if json_out is not None:
        json_out.write_text(json.dumps(summary, indent=2) + "\n")
    if html is not None:
        html.write_text(render_html(summary))
    if html is None and json_out is None:
        _print(summary)
        return
    for line in summary["findings"]["lines"]:
        typer.echo(line)
