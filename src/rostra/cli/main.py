"""The `rostra` command: serve, space, speak.

CLI (composition root).
"""

from __future__ import annotations

import typer

from rostra.cli import edge, gate, incident, plan, rehearse, serve, space, speak

app = typer.Typer(
    help="Rostra: large live audio conversations, self-hosted.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("serve", help="Run the server: origin, API and pages on one machine.")(serve.serve)
app.command("gate", help="Run the listener-write API alone, on Redis (scale-out).")(gate.gate)
app.add_typer(space.app, name="space", help="Create, start, end, list spaces; mint invites.")
app.command("speak", help="Publish a file or a tone to a space over WHIP.")(speak.speak)
app.command("edge", help="Run the nginx edge (HTTP cache) in front of the origin.")(edge.edge)
app.add_typer(incident.app, name="incident", help="The incident report of a space.")
app.command("plan", short_help="Capacity plan for N listeners from measured costs.")(plan.plan)
app.command("rehearse", short_help="Rehearse an event against a deployment: GO / NO-GO.")(
    rehearse.rehearse
)


def main() -> None:
    app()
