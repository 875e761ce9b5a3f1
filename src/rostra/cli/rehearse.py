"""`rostra rehearse SCENARIO.toml`: rehearse an event against a deployment (speakers, a surge of
simulated listeners, attack traffic), live progress in the terminal, report.json and
report.html, and GO / NO-GO. Exit 0 GO, 1 NO-GO, 2 could not run.

CLI. The work lives in rostra.rehearse.run; this module gathers the flags and the admin token.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from rostra.config import ADMIN_TOKEN_FILE
from rostra.errors import ScenarioInvalid
from rostra.rehearse import scenario as scenario_file
from rostra.rehearse.generator import run_worker
from rostra.rehearse.run import rehearse as run_rehearsal
from rostra.rehearse.verdict import EXIT_COULD_NOT_RUN

DEFAULT_MASTER_PORT = 5557

log = logging.getLogger(__name__)


def _admin_token(from_file: str) -> str:
    """ROSTRA_ADMIN_TOKEN, else the scenario's `admin_token`, else the local data folder's."""
    token = os.environ.get("ROSTRA_ADMIN_TOKEN") or from_file
    if token:
        return token
    path = Path(os.environ.get("ROSTRA_DATA", "data")) / ADMIN_TOKEN_FILE
    return path.read_text().strip() if path.is_file() else ""


def rehearse(
    scenario: Annotated[
        Path | None, typer.Argument(help="The scenario (TOML); not with --worker")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Deployment URL: media and gate")
    ] = None,
    space: Annotated[
        str | None, typer.Option("--space", help="Rehearse in this live space")
    ] = None,
    listeners: Annotated[
        int | None, typer.Option("--listeners", help="Scale the arrival curve to this peak")
    ] = None,
    duration_s: Annotated[
        float | None, typer.Option("--duration-s", help="Scale the curve to last this long")
    ] = None,
    report: Annotated[
        str | None, typer.Option("--report", help="Folder for report.json and report.html")
    ] = None,
    processes: Annotated[
        int | None, typer.Option("--processes", help="Load-generating processes on this machine")
    ] = None,
    master: Annotated[
        bool, typer.Option("--master", help="Be the Locust master; workers run elsewhere")
    ] = False,
    expect_workers: Annotated[
        int, typer.Option("--expect-workers", help="With --master: workers to wait for", min=1)
    ] = 1,
    worker: Annotated[
        bool, typer.Option("--worker", help="Be a Locust worker of the master at --master-host")
    ] = False,
    master_host: Annotated[
        str | None, typer.Option("--master-host", help="With --worker: the master's address")
    ] = None,
    master_port: Annotated[
        int, typer.Option("--master-port", help="The master's port (Locust's)")
    ] = DEFAULT_MASTER_PORT,
) -> None:
    """Rehearse the event: exit 0 GO, 1 NO-GO, 2 could not run."""
    if worker:
        if master_host is None:
            typer.echo("--worker needs --master-host", err=True)
            raise typer.Exit(EXIT_COULD_NOT_RUN)
        raise typer.Exit(run_worker(master_host, master_port))
    if scenario is None:
        typer.echo("give the scenario file (or --worker --master-host H)", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    try:
        resolved = scenario_file.load(scenario).with_overrides(
            target=target,
            space=space,
            listeners=listeners,
            duration_s=duration_s,
            report_dir=report,
            processes=processes,
        )
    except ScenarioInvalid as error:
        typer.echo(f"could not run: {error.detail}", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from error
    try:
        code = run_rehearsal(
            resolved,
            admin_token=_admin_token(resolved.target.admin_token),
            write=typer.echo,
            is_master=master,
            expect_workers=expect_workers,
            master_port=master_port,
        )
    except Exception as error:
        # a failure of the rehearsal itself is no verdict on the deployment: exit 2, not 1
        log.exception("rehearsal failed")
        raise typer.Exit(EXIT_COULD_NOT_RUN) from error
    raise typer.Exit(code)
