"""The origin on a manual clock: spaces go on air, end with a closed playlist and a download made
afterwards, and a stop leaves the playlist open for the next origin to continue; nothing keyed by
a space outlives it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from rostra.clock import ManualClock
from rostra.errors import SpeakerNotFound
from rostra.media.audio import FRAME_DURATION_S
from rostra.media.hls.playlist import read_media_playlist
from rostra.media.origin import Origin
from rostra.media.record import DOWNLOAD_NAME, LIVE_PLAYLIST_NAME, REPLAY_PLAYLIST_NAME

SPACE = "origintest01"
WAIT_S = 60.0
# the ticks run ahead of the encoder by at most this many frames (its queue holds 100)
BACKLOG_FRAMES = 40


def manual_origin(root: Path, clock: ManualClock) -> Origin:
    return Origin(root, clock=clock, is_self_clocked=False)


async def on_air_for(origin: Origin, clock: ManualClock, segments: int) -> None:
    """Tick the space's mixer by hand until its playlist lists `segments` segments."""
    pipeline = origin.pipeline(SPACE)
    assert pipeline is not None
    deadline = time.monotonic() + WAIT_S
    while pipeline.listed_segment_count() < segments:
        assert time.monotonic() < deadline, "the encoder made no segment"
        if pipeline.encoder_backlog_frames < BACKLOG_FRAMES:  # faster than real time, not more
            for _ in range(10):
                pipeline.tick()
                clock.advance(FRAME_DURATION_S)
        await asyncio.sleep(0.001)  # the encoder thread takes the frames


async def test_end_closes_the_live_playlist_and_forgets_the_space(tmp_path: Path) -> None:
    clock = ManualClock()
    origin = manual_origin(tmp_path, clock)
    await origin.go_live(SPACE, clock.now())
    await on_air_for(origin, clock, 3)
    health = origin.health(SPACE)
    assert health is not None
    assert health.is_ok, health.problems
    assert origin.stage(SPACE) == []
    with pytest.raises(SpeakerNotFound):
        await origin.disconnect(SPACE, "nosuchsession")

    await origin.end(SPACE)
    assert origin.space_ids() == []
    assert origin.pipeline(SPACE) is None
    assert origin.health(SPACE) is None
    assert origin.ingest_totals(SPACE) == {}
    live = (tmp_path / SPACE / LIVE_PLAYLIST_NAME).read_text()
    assert live.rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-PLAYLIST-TYPE" not in live
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in (tmp_path / SPACE / REPLAY_PLAYLIST_NAME).read_text()
    await origin.shutdown()  # waits for the download made in the background
    assert (tmp_path / SPACE / DOWNLOAD_NAME).stat().st_size > 0


async def test_a_stop_leaves_the_playlist_open_and_the_next_origin_continues_it(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    first = manual_origin(tmp_path, clock)
    await first.go_live(SPACE, clock.now())
    await on_air_for(first, clock, 2)
    assert await first.shutdown() == [SPACE]
    stopped = (tmp_path / SPACE / LIVE_PLAYLIST_NAME).read_text()
    assert "#EXT-X-ENDLIST" not in stopped
    assert not (tmp_path / SPACE / REPLAY_PLAYLIST_NAME).exists()
    before = read_media_playlist(stopped)

    clock.advance(5.0)  # the restart took a while
    second = manual_origin(tmp_path, clock)
    await second.go_live(SPACE, clock.now())
    await on_air_for(second, clock, len(before.segments) + 2)
    after = read_media_playlist((tmp_path / SPACE / LIVE_PLAYLIST_NAME).read_text())
    assert after.segments[0].sequence_number >= before.segments[0].sequence_number
    new = [s for s in after.segments if s.sequence_number > before.segments[-1].sequence_number]
    assert new, "the second origin added no segment"
    assert new[0].is_discontinuity
    assert not any(s.is_discontinuity for s in new[1:])
    stamps = [s.program_date_time for s in after.segments if s.program_date_time is not None]
    assert stamps == sorted(stamps)
    await second.end(SPACE)
    await second.shutdown()
