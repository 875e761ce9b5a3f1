"""WebVTT text (W3C WebVTT) for captions: a cue, a whole document, and an HLS subtitles segment
whose X-TIMESTAMP-MAP ties its cue times to the audio's media timeline (RFC 8216 §3.5).

Media plane. Pure text. Cue times are seconds of the program's media timeline: the audio's decode
time, where segment n starts at n × 1.024 s.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

MPEGTS_HZ = 90_000
# MPEG-2 timestamps are 33 bits: a program longer than 26.5 h wraps, as the RFC expects
MPEGTS_MODULUS = 2**33
MAX_CUE_CHARS = 200
_SECONDS_PER_HOUR = 3600
_SECONDS_PER_MINUTE = 60
_MS_PER_S = 1000
# control characters (those that are whitespace part words first) and lone surrogates
_UNPRINTABLE = frozenset({"Cc", "Cs"})


@dataclass(frozen=True, slots=True)
class Cue:
    """One caption line: shown from `start_s` to `end_s` on the media timeline."""

    start_s: float
    end_s: float
    text: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)):
            raise ValueError(f"cue times {self.start_s}..{self.end_s} must be finite")
        if not 0 <= self.start_s < self.end_s:
            raise ValueError(f"cue {self.start_s}..{self.end_s} must start at >= 0, before its end")
        if not cue_text(self.text):
            raise ValueError("a cue needs some text")


def timestamp(seconds: float) -> str:
    """`HH:MM:SS.mmm`, hours as wide as they need (WebVTT §4.5)."""
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"time {seconds} s must be finite and >= 0")
    total_ms = round(seconds * _MS_PER_S)
    whole_s, ms = divmod(total_ms, _MS_PER_S)
    hours, rest = divmod(whole_s, _SECONDS_PER_HOUR)
    minutes, secs = divmod(rest, _SECONDS_PER_MINUTE)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def cue_text(text: str) -> str:
    """One line of plain text: whitespace collapsed, control characters and lone surrogates
    dropped, bounded, and `&`, `<`, `>` escaped, so no recognized word can open a tag, end the
    cue (`-->` cannot survive) or make the file unwritable."""
    words = (
        "".join(c for c in word if unicodedata.category(c) not in _UNPRINTABLE)
        for word in text.split()
    )
    line = " ".join(word for word in words if word)[:MAX_CUE_CHARS]
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _blocks(cues: Iterable[Cue], offset_s: float) -> list[str]:
    blocks = []
    for cue in cues:
        start_s = max(cue.start_s - offset_s, 0.0)
        end_s = cue.end_s - offset_s
        if end_s <= start_s:
            continue
        blocks.append(f"{timestamp(start_s)} --> {timestamp(end_s)}\n{cue_text(cue.text)}")
    return blocks


def webvtt_document(cues: Iterable[Cue], *, offset_s: float = 0.0) -> str:
    """A WebVTT file of `cues`, their times less `offset_s` (a cue that ended before it is left
    out; one that started before it starts at 0)."""
    return "\n\n".join(["WEBVTT", *_blocks(cues, offset_s)]) + "\n"


def webvtt_segment(cues: Iterable[Cue], *, start_s: float, end_s: float) -> str:
    """The subtitles segment for the audio segment at `start_s`..`end_s` of the media timeline:
    the cues that overlap it, and the map from its cue times to the audio's 90 kHz timestamps (a
    cue at LOCAL plays with the audio sample at MPEGTS)."""
    if not 0 <= start_s < end_s:
        raise ValueError(f"segment {start_s}..{end_s} must start at >= 0, before its end")
    mpegts = round(start_s * MPEGTS_HZ) % MPEGTS_MODULUS
    header = f"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:{timestamp(start_s)}"
    overlapping = [cue for cue in cues if cue.start_s < end_s and cue.end_s > start_s]
    return "\n\n".join([header, *_blocks(overlapping, 0.0)]) + "\n"
