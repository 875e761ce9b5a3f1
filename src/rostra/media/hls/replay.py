"""The playlists a listener worker serves from the data folder without the origin: the master
playlist and the replay (VOD) playlist of a recording. The replay is the AAC rendition alone:
the Opus segments leave the disk with the live window.

Media plane. Imports no codec library (no PyAV, no aiortc): listener workers load it.
"""

from __future__ import annotations

from pathlib import Path

from rostra.media.audio import SAMPLE_RATE_HZ
from rostra.media.captions.playlist import CAPTIONS_PLAYLIST_NAME
from rostra.media.codecs import (
    AAC_FRAME_SAMPLES,
    SEGMENT_DURATION_S,
    TARGET_DURATION_S,
)
from rostra.media.hls.playlist import (
    SegmentRef,
    SubtitlesRendition,
    Variant,
    media_playlist,
    multivariant_playlist,
)
from rostra.media.hls.rendition import RENDITIONS
from rostra.media.record import (
    INIT_NAME,
    recorded_segments,
    segment_name,
)

# the bytes after a box type that hold a trun's sample count: version+flags (4), count (4)
_TRUN_COUNT_OFFSET = 8
_TRUN_COUNT_BYTES = 4
# moof, mfhd, traf, tfhd, tfdt and the trun's head fit well within this
_HEAD_BYTES = 512
CAPTIONS_RENDITION = SubtitlesRendition(CAPTIONS_PLAYLIST_NAME, name="English", language="en")


def master_text(*, has_captions: bool = False) -> str:
    """The live multivariant playlist: AAC-LC first, where Safari's native player, other players
    and ffmpeg start; then Opus, which the listener page picks where Media Source plays it. With
    `has_captions`, the English WebVTT subtitles rendition beside them."""
    return multivariant_playlist(
        [
            Variant(
                rendition.playlist_name,
                rendition.codecs,
                rendition.bandwidth_bps,
                rendition.average_bandwidth_bps,
            )
            for rendition in RENDITIONS
        ],
        CAPTIONS_RENDITION if has_captions else None,
    )


def replay_text(directory: Path) -> str | None:
    """A VOD playlist of every segment recorded in `directory`, or None if there are none."""
    # a segment a power cut caught before its fsync may be left empty: it holds no audio
    numbers = [n for n in recorded_segments(directory) if _has_bytes(directory / segment_name(n))]
    if not numbers:
        return None
    # positions, not file numbers: a segment lost in a crash leaves no hole in the playlist; each
    # one's true length, since a stop or restart cuts the segment in flight short
    refs = [
        SegmentRef(segment_name(n), segment_duration_s(directory / segment_name(n)), i)
        for i, n in enumerate(numbers)
    ]
    return media_playlist(
        segments=refs,
        target_duration_s=TARGET_DURATION_S,
        init_uri=INIT_NAME,
        is_ended=True,
        is_vod=True,
    )


def _has_bytes(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def segment_duration_s(path: Path, *, frame_samples: int = AAC_FRAME_SAMPLES) -> float:
    """A segment may be short (the last, or one cut by a restart); its true length is the sample
    count of its trun, every sample one frame (AAC unless `frame_samples` says otherwise)."""
    with path.open("rb") as handle:
        data = handle.read(_HEAD_BYTES)
    index = data.find(b"trun")
    start = index + _TRUN_COUNT_OFFSET
    if index < 0 or len(data) < start + _TRUN_COUNT_BYTES:
        return SEGMENT_DURATION_S
    count = int.from_bytes(data[start : start + _TRUN_COUNT_BYTES], "big")
    return count * frame_samples / SAMPLE_RATE_HZ if count else SEGMENT_DURATION_S
