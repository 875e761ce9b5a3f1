"""HLS playlist text: the tags RFC 8216 requires, in order, and the rules it sets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rostra.media.hls.playlist import (
    SegmentRef,
    Variant,
    master_playlist,
    media_playlist,
    multivariant_playlist,
    read_media_playlist,
)
from rostra.media.hls.replay import master_text

SEGMENT_DURATION_S = 1.024


def _segments(first: int, count: int) -> list[SegmentRef]:
    return [
        SegmentRef(f"seg_{number}.m4s", SEGMENT_DURATION_S, number)
        for number in range(first, first + count)
    ]


def _dated(segments: list[SegmentRef], start: datetime) -> list[SegmentRef]:
    """Each segment with its wall-clock start: `start` plus the durations before it."""
    return [
        replace(segment, program_date_time=start + timedelta(seconds=SEGMENT_DURATION_S * i))
        for i, segment in enumerate(segments)
    ]


def test_master_playlist_names_one_fmp4_variant_with_codecs() -> None:
    text = master_playlist(media_uri="live.m3u8", bandwidth_bps=104_000, codecs="mp4a.40.2")

    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=104000,CODECS="mp4a.40.2"\n'
        "live.m3u8\n"
    )


def test_live_multivariant_playlist_lists_aac_first_then_opus_with_their_bandwidths() -> None:
    # AAC-LC first: Safari's native player, other players and ffmpeg start on the first variant
    # they can play; the listener page picks the Opus one where Media Source plays Opus in MP4
    assert master_text() == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=200000,AVERAGE-BANDWIDTH=160000,CODECS="mp4a.40.2"\n'
        "audio.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=168000,AVERAGE-BANDWIDTH=132000,CODECS="opus"\n'
        "opus.m3u8\n"
    )


def test_variant_whose_average_exceeds_its_peak_bandwidth_is_rejected() -> None:
    with pytest.raises(ValueError, match="average bandwidth"):
        Variant("opus.m3u8", "opus", 100_000, 120_000)
    with pytest.raises(ValueError, match="at least one variant"):
        multivariant_playlist([])
    assert multivariant_playlist([Variant("a.m3u8", "opus", 9)]).endswith(
        '#EXT-X-STREAM-INF:BANDWIDTH=9,CODECS="opus"\na.m3u8\n'
    )


def test_live_playlist_starts_its_media_sequence_at_the_first_listed_segment() -> None:
    text = media_playlist(
        segments=_segments(41, 3), target_duration_s=1, init_uri="init.mp4", is_ended=False
    )

    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:41\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXTINF:1.024,\nseg_41.m4s\n"
        "#EXTINF:1.024,\nseg_42.m4s\n"
        "#EXTINF:1.024,\nseg_43.m4s\n"
    )


def test_vod_playlist_is_typed_vod_and_ends_with_endlist() -> None:
    text = media_playlist(
        segments=_segments(0, 2),
        target_duration_s=1,
        init_uri="init.mp4",
        is_ended=True,
        is_vod=True,
    )
    lines = text.splitlines()

    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines
    assert lines[-1] == "#EXT-X-ENDLIST"
    assert lines.index('#EXT-X-MAP:URI="init.mp4"') < lines.index("#EXTINF:1.024,")


def test_ended_live_playlist_has_endlist_but_no_playlist_type() -> None:
    text = media_playlist(
        segments=_segments(7, 1), target_duration_s=1, init_uri="init.mp4", is_ended=True
    )

    assert text.endswith("seg_7.m4s\n#EXT-X-ENDLIST\n")
    assert "PLAYLIST-TYPE" not in text


def test_program_date_time_is_utc_with_milliseconds_before_the_first_segment() -> None:
    start = datetime(2024, 5, 1, 14, 0, 0, 123_987, tzinfo=timezone(timedelta(hours=2)))
    text = media_playlist(
        segments=_dated(_segments(3, 2), start),
        target_duration_s=1,
        init_uri="init.mp4",
        is_ended=False,
    )
    lines = text.splitlines()

    date_line = "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.123Z"
    assert lines.count(date_line) == 1
    assert lines[lines.index(date_line) + 1] == "#EXTINF:1.024,"
    assert lines[lines.index(date_line) + 2] == "seg_3.m4s"


def test_extinf_has_three_decimals_rounded_half_up() -> None:
    segments = [SegmentRef("a.m4s", 1.0, 0), SegmentRef("b.m4s", 0.0215, 1)]
    text = media_playlist(segments=segments, target_duration_s=1, init_uri="i.mp4", is_ended=True)

    assert "#EXTINF:1.000,\na.m4s\n#EXTINF:0.022,\nb.m4s\n" in text


@pytest.mark.parametrize(
    ("duration_s", "target_duration_s"),
    [(1.5, 1), (2.4995, 2), (6.0, 5)],
)
def test_segment_longer_than_target_duration_after_rounding_is_rejected(
    duration_s: float, target_duration_s: int
) -> None:
    with pytest.raises(ValueError, match="target duration"):
        media_playlist(
            segments=[SegmentRef("long.m4s", duration_s, 0)],
            target_duration_s=target_duration_s,
            init_uri="init.mp4",
            is_ended=False,
        )


@pytest.mark.parametrize(("duration_s", "target_duration_s"), [(1.499, 1), (2.4994, 2)])
def test_segment_that_rounds_down_to_target_duration_is_accepted(
    duration_s: float, target_duration_s: int
) -> None:
    text = media_playlist(
        segments=[SegmentRef("ok.m4s", duration_s, 0)],
        target_duration_s=target_duration_s,
        init_uri="init.mp4",
        is_ended=False,
    )

    assert f"#EXT-X-TARGETDURATION:{target_duration_s}\n" in text


def test_gap_in_sequence_numbers_is_rejected() -> None:
    segments = [*_segments(0, 2), *_segments(3, 1)]

    with pytest.raises(ValueError, match="consecutive"):
        media_playlist(segments=segments, target_duration_s=1, init_uri="i.mp4", is_ended=False)


def test_vod_playlist_that_is_not_ended_is_rejected() -> None:
    with pytest.raises(ValueError, match="VOD"):
        media_playlist(
            segments=_segments(0, 1),
            target_duration_s=1,
            init_uri="init.mp4",
            is_ended=False,
            is_vod=True,
        )


def test_program_date_time_without_time_zone_is_rejected() -> None:
    with pytest.raises(ValueError, match="time zone"):
        SegmentRef("a.m4s", SEGMENT_DURATION_S, 0, program_date_time=datetime(2024, 5, 1, 12))


@pytest.mark.parametrize("uri", ["", "#seg.m4s", "seg\n.m4s"])
def test_segment_uri_that_would_break_the_playlist_is_rejected(uri: str) -> None:
    with pytest.raises(ValueError, match="URI"):
        SegmentRef(uri, SEGMENT_DURATION_S, 0)


def test_init_uri_with_a_quote_is_rejected() -> None:
    with pytest.raises(ValueError, match="URI"):
        media_playlist(
            segments=_segments(0, 1), target_duration_s=1, init_uri='in"it.mp4', is_ended=False
        )


START = datetime(2026, 3, 1, 18, 0, 0, tzinfo=UTC)


def test_discontinuity_is_tagged_and_dated_again_after_a_restart() -> None:
    before = _dated(_segments(10, 2), START)
    after = _dated(_segments(12, 2), START + timedelta(seconds=30))
    after[0] = replace(after[0], is_discontinuity=True)

    text = media_playlist(
        segments=[*before, *after], target_duration_s=1, init_uri="init.mp4", is_ended=False
    )

    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:10\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T18:00:00.000Z\n"
        "#EXTINF:1.024,\nseg_10.m4s\n"
        "#EXTINF:1.024,\nseg_11.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T18:00:30.000Z\n"
        "#EXTINF:1.024,\nseg_12.m4s\n"
        "#EXTINF:1.024,\nseg_13.m4s\n"
    )


def test_discontinuities_that_slid_out_are_counted_in_discontinuity_sequence() -> None:
    segments = _dated(_segments(40, 2), START)
    segments[1] = replace(segments[1], is_discontinuity=True)

    text = media_playlist(
        segments=segments,
        target_duration_s=1,
        init_uri="init.mp4",
        is_ended=True,
        discontinuity_sequence=3,
    )

    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:40\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:3\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T18:00:00.000Z\n"
        "#EXTINF:1.024,\nseg_40.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T18:00:01.024Z\n"
        "#EXTINF:1.024,\nseg_41.m4s\n"
        "#EXT-X-ENDLIST\n"
    )


def test_a_written_playlist_reads_back_to_the_same_segments() -> None:
    segments = _dated(_segments(7, 4), START)
    segments[2] = replace(segments[2], is_discontinuity=True)
    text = media_playlist(
        segments=segments,
        target_duration_s=1,
        init_uri="init.mp4",
        is_ended=False,
        discontinuity_sequence=2,
    )

    playlist = read_media_playlist(text)

    assert playlist.segments == tuple(segments)
    assert playlist.discontinuity_sequence == 2
    assert not playlist.is_ended


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a playlist\n",
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n",
        "#EXTM3U\nseg_1.m4s\n",
        "#EXTM3U\n#EXTINF:abc,\nseg_1.m4s\n",
        "#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:2026-03-01T18:00:00\n#EXTINF:1.024,\nseg_1.m4s\n",
    ],
)
def test_a_broken_playlist_is_refused_when_read_back(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        read_media_playlist(text)
