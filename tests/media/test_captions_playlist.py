"""The captions' text, compared exactly: the multivariant playlist's subtitles rendition, the live
subtitles playlist, WebVTT segments with their X-TIMESTAMP-MAP, and the document."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rostra.media.captions.playlist import subtitle_segment_name, subtitles_playlist
from rostra.media.captions.webvtt import Cue, timestamp, webvtt_document, webvtt_segment
from rostra.media.hls.playlist import SegmentRef
from rostra.media.hls.rendition import AAC_RENDITION as AAC
from rostra.media.hls.rendition import OPUS_RENDITION as OPUS
from rostra.media.hls.replay import master_text

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_multivariant_playlist_offers_the_subtitles_to_every_variant() -> None:
    assert master_text(has_captions=True) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",'
        'AUTOSELECT=YES,DEFAULT=NO,URI="captions.m3u8"\n'
        f"#EXT-X-STREAM-INF:BANDWIDTH={AAC.bandwidth_bps},"
        f'AVERAGE-BANDWIDTH={AAC.average_bandwidth_bps},CODECS="mp4a.40.2",SUBTITLES="subs"\n'
        "audio.m3u8\n"
        f"#EXT-X-STREAM-INF:BANDWIDTH={OPUS.bandwidth_bps},"
        f'AVERAGE-BANDWIDTH={OPUS.average_bandwidth_bps},CODECS="opus",SUBTITLES="subs"\n'
        "opus.m3u8\n"
    )
    assert "SUBTITLES" not in master_text()


def test_subtitles_playlist_lists_webvtt_segments_dated_as_the_audio() -> None:
    segments = [
        SegmentRef(subtitle_segment_name(41), 1.024, 41, program_date_time=START),
        SegmentRef(subtitle_segment_name(42), 1.024, 42),
        SegmentRef(subtitle_segment_name(43), 0.5, 43),
    ]
    assert subtitles_playlist(segments=segments, target_duration_s=1, is_ended=False) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:41\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:00.000Z\n"
        "#EXTINF:1.024,\n"
        "captions_000041.vtt\n"
        "#EXTINF:1.024,\n"
        "captions_000042.vtt\n"
        "#EXTINF:0.500,\n"
        "captions_000043.vtt\n"
    )
    ended = subtitles_playlist(segments=segments[:1], target_duration_s=1, is_ended=True)
    assert ended.endswith("captions_000041.vtt\n#EXT-X-ENDLIST\n")
    assert "EXT-X-MAP" not in ended


def test_webvtt_segment_maps_its_cues_to_the_audio_timestamps() -> None:
    cues = [
        Cue(40.0, 41.5, "before it, overlapping"),
        Cue(41.9, 42.6, "inside it"),
        Cue(43.0, 44.0, "after it"),
    ]
    # segment 41 of the AAC grid: 41 × 1.024 s = 41.984 s, 90 kHz: 3 778 560
    assert webvtt_segment(cues, start_s=41.984, end_s=43.008) == (
        "WEBVTT\n"
        "X-TIMESTAMP-MAP=MPEGTS:3778560,LOCAL:00:00:41.984\n"
        "\n"
        "00:00:41.900 --> 00:00:42.600\n"
        "inside it\n"
        "\n"
        "00:00:43.000 --> 00:00:44.000\n"
        "after it\n"
    )
    assert webvtt_segment([], start_s=0.0, end_s=1.024) == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"
    )


def test_mpegts_wraps_at_33_bits_while_local_time_goes_on() -> None:
    # 27 hours in: past 2^33 / 90 kHz (26.5 h)
    start_s = 27 * 3600.0
    header = webvtt_segment([], start_s=start_s, end_s=start_s + 1).splitlines()[1]
    assert header == f"X-TIMESTAMP-MAP=MPEGTS:{round(start_s * 90_000) % 2**33},LOCAL:27:00:00.000"


def test_webvtt_document_escapes_text_and_shifts_times() -> None:
    cues = [Cue(9.0, 10.5, "gone before the offset"), Cue(11.0, 12.25, "a <b> & c --> d\nnext")]
    assert webvtt_document(cues, offset_s=10.5) == (
        "WEBVTT\n\n00:00:00.500 --> 00:00:01.750\na &lt;b&gt; &amp; c --&gt; d next\n"
    )
    assert webvtt_document([]) == "WEBVTT\n"


def test_timestamps_and_cues_are_validated() -> None:
    assert timestamp(3723.4567) == "01:02:03.457"
    with pytest.raises(ValueError, match="before its end"):
        Cue(2.0, 2.0, "empty span")
    with pytest.raises(ValueError, match="some text"):
        Cue(1.0, 2.0, "  \n ")
    with pytest.raises(ValueError, match="finite"):
        timestamp(float("nan"))


def test_recognized_text_with_control_characters_stays_one_clean_cue() -> None:
    cue = Cue(1.0, 2.0, "bell\x07 nul\x00 escape\x1b[31m lone\ud800 line\u2028break\x1cend")
    document = webvtt_document([cue])
    assert (
        document
        == "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nbell nul escape[31m lone line break end\n"
    )
    document.encode("utf-8")  # writable as the file it becomes
    with pytest.raises(ValueError, match="some text"):
        Cue(1.0, 2.0, "\x00\x07 \ud800")
