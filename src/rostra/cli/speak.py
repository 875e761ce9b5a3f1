"""`rostra speak`: publish a file or a tone to a space over WHIP; optionally record the return.
Streams in constant memory and re-publishes by itself when the origin restarts.

CLI.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from rostra.rehearse.frames import FileSource, FrameSource, ToneSource
from rostra.rehearse.speaker import SpeakError
from rostra.rehearse.speaker import speak as speak_source

DEFAULT_TONE_S = 10.0


def speak(
    invite_url: Annotated[
        str, typer.Argument(help="The speaker invite link (…/speak/ID?invite=…)")
    ],
    file: Annotated[Path | None, typer.Option(help="Audio file to send (wav, mp3, …)")] = None,
    tone_hz: Annotated[float | None, typer.Option("--tone", help="Send a sine tone (Hz)")] = None,
    name: Annotated[str, typer.Option(help="Name shown on stage")] = "",
    seconds: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (re-publishing after a lost origin too)"),
    ] = None,
    record_return: Annotated[
        Path | None, typer.Option(help="Save the mix-minus heard back to this WAV file")
    ] = None,
) -> None:
    if (file is None) == (tone_hz is None):
        typer.echo("give exactly one of --file F or --tone HZ", err=True)
        raise typer.Exit(2)
    source: FrameSource
    if file is not None:
        if not file.is_file():
            typer.echo(f"no such file: {file}", err=True)
            raise typer.Exit(2)
        source = FileSource(file, duration_s=seconds)
    else:
        assert tone_hz is not None
        seconds = seconds or DEFAULT_TONE_S
        source = ToneSource(tone_hz, seconds)
    try:
        result = asyncio.run(
            speak_source(invite_url, source, name=name, record_return=record_return, run_s=seconds)
        )
    except SpeakError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if result["ended"] == "closed-by-server":
        typer.echo(
            "the server ended this speaker's session (removed, or the space ended)", err=True
        )
    typer.echo(json.dumps(result))
