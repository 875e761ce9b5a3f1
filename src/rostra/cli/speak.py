"""`rostra speak`: publish a file or a tone to a space over WHIP; optionally record the return.

CLI.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from rostra.rehearse.speaker import SpeakError, load_pcm, tone
from rostra.rehearse.speaker import speak as speak_pcm

DEFAULT_TONE_S = 10.0


def speak(
    invite_url: Annotated[
        str, typer.Argument(help="The speaker invite link (…/speak/ID?invite=…)")
    ],
    file: Annotated[Path | None, typer.Option(help="Audio file to send (wav, mp3, …)")] = None,
    tone_hz: Annotated[float | None, typer.Option("--tone", help="Send a sine tone (Hz)")] = None,
    name: Annotated[str, typer.Option(help="Name shown on stage")] = "",
    seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
    record_return: Annotated[
        Path | None, typer.Option(help="Save the mix-minus heard back to this WAV file")
    ] = None,
) -> None:
    if (file is None) == (tone_hz is None):
        typer.echo("give exactly one of --file F or --tone HZ", err=True)
        raise typer.Exit(2)
    if file is not None:
        if not file.is_file():
            typer.echo(f"no such file: {file}", err=True)
            raise typer.Exit(2)
        pcm = load_pcm(file)
        if seconds is not None:
            pcm = pcm[: int(seconds * 48_000)]
    else:
        assert tone_hz is not None
        pcm = tone(tone_hz, seconds or DEFAULT_TONE_S)
    try:
        result = asyncio.run(speak_pcm(invite_url, pcm, name=name, record_return=record_return))
    except SpeakError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result))
