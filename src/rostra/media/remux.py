"""The single-file download of a recording: the CMAF segments remuxed (not re-encoded) into one
seekable MP4 audio file with its index at the front.

Media plane. The origin runs it in a background thread after the end of a space, never on the
event loop and never inside a request.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av

from rostra.media.record import DOWNLOAD_NAME, INIT_NAME, recorded_segments, segment_name


def remux_recording(directory: Path) -> Path | None:
    numbers = recorded_segments(directory)
    init = directory / INIT_NAME
    if not numbers or not init.is_file():
        return None
    joined = directory / ".recording.mp4"
    with joined.open("wb") as out:
        for path in [init, *(directory / segment_name(n) for n in numbers)]:
            with path.open("rb") as part:
                shutil.copyfileobj(part, out)
    target = directory / DOWNLOAD_NAME
    partial = directory / f".{DOWNLOAD_NAME}.tmp"
    with (
        av.open(str(joined)) as source,
        av.open(str(partial), "w", format="mp4", options={"movflags": "+faststart"}) as sink,
    ):
        in_stream = source.streams.audio[0]
        out_stream = sink.add_stream_from_template(in_stream)
        for packet in source.demux(in_stream):
            if packet.dts is None:
                continue
            packet.stream = out_stream
            sink.mux(packet)
    partial.replace(target)
    joined.unlink(missing_ok=True)
    return target
