"""The simulated low-latency player reads a Low-Latency HLS playlist as the packager writes it
(ll_playlist.py): every part with its segment, index and date-time, the server control, the
preload hint; it starts PART-HOLD-BACK behind the live edge and steps part by part across
segment boundaries, asking for each part once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rostra.media.codecs import PART_HOLD_BACK_S, PART_TARGET_S, PARTS_PER_SEGMENT
from rostra.media.hls.ll_playlist import PartRef, SegmentInProgress, ll_media_playlist
from rostra.media.hls.playlist import SegmentRef
from rostra.media.record import part_name
from rostra.rehearse.hls_player import (
    PlayerBuffer,
    next_position,
    parse_live_playlist,
    parts_after,
    start_part,
)

SEGMENT_S = PART_TARGET_S * PARTS_PER_SEGMENT
START = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def playlist_text(first: int, whole: int, in_progress_parts: int) -> str:
    """`whole` segments from `first`, all with parts, and `in_progress_parts` parts of the next."""
    segments = [
        SegmentRef(
            f"seg_{n:06d}.m4s",
            SEGMENT_S,
            n,
            program_date_time=START + timedelta(seconds=(n - first) * SEGMENT_S),
        )
        for n in range(first, first + whole)
    ]
    parts = {
        n: [PartRef(part_name(n, k), PART_TARGET_S) for k in range(PARTS_PER_SEGMENT)]
        for n in range(first, first + whole)
    }
    current = first + whole
    in_progress = SegmentInProgress(
        current,
        tuple(PartRef(part_name(current, k), PART_TARGET_S) for k in range(in_progress_parts)),
    )
    return ll_media_playlist(
        segments=segments,
        parts=parts,
        in_progress=in_progress,
        next_part_uri=part_name(current, in_progress_parts),
        target_duration_s=1,
        part_target_s=PART_TARGET_S,
        part_hold_back_s=PART_HOLD_BACK_S,
        init_uri="init.mp4",
    )


def test_parse_reads_every_part_with_its_segment_and_date_time() -> None:
    text = playlist_text(first=7, whole=3, in_progress_parts=2)
    playlist = parse_live_playlist(text)

    assert playlist.can_block_reload
    assert playlist.part_target_s == pytest.approx(0.256)
    assert playlist.part_hold_back_s == pytest.approx(0.768)
    assert playlist.preload_hint_uri == "part_000010.2.m4s"
    assert playlist.init_uri == "init.mp4"
    assert [s.sequence_number for s in playlist.segments] == [7, 8, 9]
    assert playlist.complete_through == 9
    positions = [part.position for part in playlist.parts]
    assert positions == [(n, k) for n in (7, 8, 9) for k in range(4)] + [(10, 0), (10, 1)]
    assert [part.uri for part in playlist.parts] == [part_name(*p) for p in positions]
    start_s = START.timestamp()
    for part in playlist.parts:
        expected_s = start_s + (part.sequence_number - 7) * SEGMENT_S + part.index * PART_TARGET_S
        assert part.program_date_time_s == pytest.approx(expected_s, abs=1e-6)
        assert part.duration_s == pytest.approx(PART_TARGET_S)


def test_a_legacy_playlist_has_no_parts() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.024,\nseg_000003.m4s\n"
    playlist = parse_live_playlist(text)
    assert playlist.parts == ()
    assert not playlist.can_block_reload
    assert start_part(playlist) is None


def test_player_starts_part_hold_back_behind_the_live_edge() -> None:
    playlist = parse_live_playlist(playlist_text(first=7, whole=3, in_progress_parts=2))
    start = start_part(playlist)
    assert start is not None
    # the last three parts span the hold-back (0.768 s): 9.3, 10.0, 10.1
    assert start.position == (9, 3)
    assert [part.position for part in parts_after(playlist, (9, 2))] == [(9, 3), (10, 0), (10, 1)]


def test_part_sequence_steps_across_segment_boundaries_once_each() -> None:
    """Replay the live edge growing one part at a time: the player asks for the next part,
    receives the playlist that lists it, fetches the new parts; every part exactly once."""
    last = (9, 3)
    fetched: list[tuple[int, int]] = []
    for step in range(1, 11):
        whole, parts = divmod(4 * 3 + step, PARTS_PER_SEGMENT)  # the edge one part further
        playlist = parse_live_playlist(playlist_text(first=7, whole=whole, in_progress_parts=parts))
        asked = next_position(playlist, last)
        new = parts_after(playlist, last)
        assert [part.position for part in new] == [asked]
        fetched += [part.position for part in new]
        last = new[-1].position
    expected = [(n, k) for n in (10, 11) for k in range(4)] + [(12, 0), (12, 1)]
    assert fetched == expected


def test_asking_after_a_segments_last_part_before_it_is_whole_names_the_next_index() -> None:
    # part 3 of segment 10 is out, but segment 10 is not listed whole yet
    playlist = parse_live_playlist(playlist_text(first=7, whole=3, in_progress_parts=4)[:-1])
    assert playlist.complete_through == 9
    assert next_position(playlist, (10, 3)) == (10, 4)  # the server reads it as (11, 0)
    whole = parse_live_playlist(playlist_text(first=7, whole=4, in_progress_parts=0))
    assert next_position(whole, (10, 3)) == (11, 0)


def test_parts_keep_a_player_fed_without_a_stall() -> None:
    playlist = parse_live_playlist(playlist_text(first=7, whole=3, in_progress_parts=2))
    start = start_part(playlist)
    assert start is not None
    player = PlayerBuffer(PART_HOLD_BACK_S - PART_TARGET_S / 2, now_s=0.0)
    now_s = 0.0
    for part in parts_after(playlist, (9, 2)):
        player.add(part.duration_s, part.program_date_time_s, now_s=now_s)
    for step in range(1, 40):  # a part each part target, as the blocking reload answers
        player.add(PART_TARGET_S, None, now_s=step * PART_TARGET_S)
    tally = player.take()
    assert tally.stalls == 0
    assert tally.played_s == pytest.approx(39 * PART_TARGET_S)
