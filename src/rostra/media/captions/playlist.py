"""The live subtitles media playlist (RFC 8216): WebVTT segments numbered, timed and dated as the
audio segments they caption, and the names of the captions' files in a space's folder.

Media plane. Pure text and names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rostra.media.hls.playlist import SegmentRef, media_playlist

# the subtitles rendition's media playlist, which the live multivariant playlist names
CAPTIONS_PLAYLIST_NAME = "captions.m3u8"
SUBTITLE_SEGMENT_NAME_RE = re.compile(r"^captions_(\d{6})\.vtt$")
# the last minutes as one document, every cue of the space (one JSON line each), and the
# replay's document, made from those lines when the space ends
LIVE_DOCUMENT_NAME = "captions.vtt"
CUES_LOG_NAME = "captions.jsonl"
REPLAY_DOCUMENT_NAME = "replay_captions.vtt"


def subtitle_segment_name(sequence_number: int) -> str:
    """The WebVTT segment that captions audio segment `sequence_number`."""
    return f"captions_{sequence_number:06d}.vtt"


def subtitles_playlist(
    *,
    segments: Sequence[SegmentRef],
    target_duration_s: int,
    is_ended: bool,
    discontinuity_sequence: int = 0,
) -> str:
    """A subtitles media playlist: as the audio's, without an init segment (WebVTT needs none)."""
    return media_playlist(
        segments=segments,
        target_duration_s=target_duration_s,
        init_uri=None,
        is_ended=is_ended,
        discontinuity_sequence=discontinuity_sequence,
    )
