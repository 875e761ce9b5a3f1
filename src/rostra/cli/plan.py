"""`rostra plan --listeners N`: the capacity plan for N listeners, from measured unit costs.

CLI. The arithmetic lives in rostra.rehearse.plan, the reading of bench/results and reports in
rostra.rehearse.plan_sources; this module only gathers the flags and prints the table or the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rostra.rehearse.plan import PlanInputs, make_plan, render_text
from rostra.rehearse.plan_sources import (
    DEFAULT_AAC_KBPS,
    UNIT_KEYS,
    PlanInputError,
    find_bench_results,
    load_bench_units,
    load_report_units,
    parse_unit_overrides,
)

UNIT_HELP = (
    "Override one unit cost, KEY=VALUE (repeatable); it wins over --from and bench/results. "
    "KEY: " + ", ".join(UNIT_KEYS)
)


def plan(
    listeners: Annotated[int, typer.Option("--listeners", help="Listeners to plan for", min=1)],
    heartbeat_s: Annotated[
        float, typer.Option("--heartbeat-s", help="Heartbeat interval the gate gives, seconds")
    ] = 20.0,
    segment_s: Annotated[
        float, typer.Option("--segment-s", help="HLS segment duration, seconds")
    ] = 1.024,
    bitrate_kbps: Annotated[
        float, typer.Option("--bitrate-kbps", help="Audio bitrate of the HLS rendition, kbit/s")
    ] = DEFAULT_AAC_KBPS,
    join_window_s: Annotated[
        float,
        typer.Option("--join-window-s", help="The surge: all listeners join within this, seconds"),
    ] = 300.0,
    busy_pct: Annotated[
        float, typer.Option("--busy-pct", help="Keep gate, edge, origin cores at most this % busy")
    ] = 70.0,
    gate_behind_edge: Annotated[
        bool,
        typer.Option(
            "--gate-behind-edge/--gate-apart",
            help="Heartbeats pass through the edge (as deploy/nginx routes /api/) or not",
        ),
    ] = True,
    hls_mode: Annotated[
        str,
        typer.Option(
            "--hls-mode",
            help="How listeners play HLS: ll (parts and blocking reloads, as the listener page) "
            "or legacy (a playlist per target duration, whole segments)",
        ),
    ] = "ll",
    report: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A rehearsal's report.json: its unit_costs win over bench/results",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    bench_results: Annotated[
        Path | None,
        typer.Option(
            "--bench-results",
            help="bench/results folder to read (default: found beside the checkout)",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    unit: Annotated[list[str] | None, typer.Option("--unit", help=UNIT_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON")] = False,
) -> None:
    """Turn measured unit costs into the gate cores, Redis nodes, edge egress and requests, origin
    requests and load-generator cores that N listeners need. Each line names its source: a
    bench/results file and key, the --from report's key, a --unit, an input or an assumption; a
    figure nobody measured is printed as unmeasured, never guessed."""
    try:
        inputs = PlanInputs(
            listeners=listeners,
            heartbeat_s=heartbeat_s,
            segment_s=segment_s,
            bitrate_kbps=bitrate_kbps,
            join_window_s=join_window_s,
            busy_pct=busy_pct,
            is_gate_behind_edge=gate_behind_edge,
            hls_mode=hls_mode,
        )
        units = load_bench_units(bench_results or find_bench_results(), hls_mode=hls_mode)
        if report is not None:
            units.update(load_report_units(report))
        units.update(parse_unit_overrides(unit or []))
    except PlanInputError as exc:
        raise typer.BadParameter(str(exc)) from exc
    result = make_plan(inputs, units)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        typer.echo(render_text(result), nl=False)
