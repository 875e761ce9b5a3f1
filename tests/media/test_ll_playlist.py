"""Low-Latency HLS playlist text: parts, the preload hint and server control in the order and
under the rules of RFC 8216bis §4.4.3.7–4.4.5.2 (and what Apple's validator checks of them),
and the live edge read back for blocking reloads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from rostra.media.hls.ll_playlist import (
    LiveEdge,
    PartRef,
    SegmentInProgress,
    ended_media_playlist,
    live_edge,
    ll_media_playlist,
)
from rostra.media.hls.playlist import SegmentRef, read_media_playlist

SEGMENT_S = 1.024
PART_S = 0.256
START = datetime(2026, 11, 29, 16, 0, 0, tzinfo=UTC)


def _segment(n: int, **changes: Any) -> SegmentRef:
    return replace(SegmentRef(f"seg_{n:06d}.m4s", SEGMENT_S, n), **changes)


def _parts(n: int, count: int = 4, duration_s: float = PART_S) -> tuple[PartRef, ...]:
    return tuple(PartRef(f"part_{n:06d}.{i}.m4s", duration_s) for i in range(count))


def _playlist(**changes: Any) -> str:
    arguments: dict[str, Any] = {
        "segments": [_segment(10, program_date_time=START), _segment(11), _segment(12)],
        "parts": {11: _parts(11), 12: _parts(12)},
        "in_progress": SegmentInProgress(13, _parts(13, 2)),
        "next_part_uri": "part_000013.2.m4s",
        "target_duration_s": 1,
        "part_target_s": PART_S,
        "part_hold_back_s": 3 * PART_S,
        "init_uri": "init.mp4",
    }
    arguments.update(changes)
    return ll_media_playlist(**arguments)


def test_live_playlist_lists_parts_of_the_last_segments_and_hints_the_next_part() -> None:
    assert _playlist() == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.768\n"
        "#EXT-X-PART-INF:PART-TARGET=0.256\n"
        "#EXT-X-MEDIA-SEQUENCE:10\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-29T16:00:00.000Z\n"
        "#EXTINF:1.024,\nseg_000010.m4s\n"
        '#EXT-X-PART:DURATION=0.256,URI="part_000011.0.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PART:DURATION=0.256,URI="part_000011.1.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PART:DURATION=0.256,URI="part_000011.2.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PART:DURATION=0.256,URI="part_000011.3.m4s",INDEPENDENT=YES\n'
        "#EXTINF:1.024,\nseg_000011.m4s\n"
        '#EXT-X-PART:DURATION=0.256,URI="part_000012.0.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PART:DURATION=0.256,URI="part_000012.1.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PART:DURATION=0.256,URI="part_000012.2.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PART:DURATION=0.256,URI="part_000012.3.m4s",INDEPENDENT=YES\n'
        "#EXTINF:1.024,\nseg_000012.m4s\n"
        '#EXT-X-PART:DURATION=0.256,URI="part_000013.0.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PART:DURATION=0.256,URI="part_000013.1.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_000013.2.m4s"\n'
    )


def test_discontinuity_after_a_restart_goes_before_the_parts_of_its_segment() -> None:
    restart = datetime(2026, 11, 29, 16, 0, 9, 500_000, tzinfo=UTC)
    text = _playlist(
        segments=[_segment(10, program_date_time=START), _segment(11), _segment(12)],
        parts={},
        in_progress=SegmentInProgress(
            13, _parts(13, 1), program_date_time=restart, is_discontinuity=True
        ),
        next_part_uri="part_000013.1.m4s",
        discontinuity_sequence=2,
    )

    assert text.endswith(
        "#EXT-X-DISCONTINUITY-SEQUENCE:2\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-29T16:00:00.000Z\n"
        "#EXTINF:1.024,\nseg_000010.m4s\n"
        "#EXTINF:1.024,\nseg_000011.m4s\n"
        "#EXTINF:1.024,\nseg_000012.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-29T16:00:09.500Z\n"
        '#EXT-X-PART:DURATION=0.256,URI="part_000013.0.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_000013.1.m4s"\n'
    )
    # the text reads back as the same window: a restart's resume sees no parts as segments
    assert read_media_playlist(text).segments == (
        _segment(10, program_date_time=START),
        _segment(11, program_date_time=START.replace(microsecond=24_000, second=1)),
        _segment(12, program_date_time=START.replace(microsecond=48_000, second=2)),
    )


def test_window_slides_with_its_parts() -> None:
    text = _playlist(
        segments=[_segment(n) for n in range(11, 17)],
        parts={14: _parts(14), 15: _parts(15), 16: _parts(16)},
        in_progress=SegmentInProgress(17),
        next_part_uri="part_000017.0.m4s",
    )
    lines = text.splitlines()

    assert "#EXT-X-MEDIA-SEQUENCE:11" in lines
    assert [line for line in lines if "seg_000013" in line] == ["seg_000013.m4s"]
    assert sum(line.startswith("#EXT-X-PART:") for line in lines) == 12
    # the segment in flight has no part yet: no tag for it, and the hint names its first
    assert lines[-3:] == [
        "#EXTINF:1.024,",
        "seg_000016.m4s",
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_000017.0.m4s"',
    ]


def test_ended_live_playlist_drops_parts_hint_and_server_control_and_ends() -> None:
    text = ended_media_playlist(
        segments=[_segment(10, program_date_time=START), _segment(11)],
        target_duration_s=1,
        init_uri="init.mp4",
    )

    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:10\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-29T16:00:00.000Z\n"
        "#EXTINF:1.024,\nseg_000010.m4s\n"
        "#EXTINF:1.024,\nseg_000011.m4s\n"
        "#EXT-X-ENDLIST\n"
    )


def test_last_part_of_a_short_segment_may_be_short() -> None:
    short = 10 * 1024 / 48_000
    text = _playlist(
        segments=[_segment(10), _segment(11), _segment(12, duration_s=short)],
        parts={11: _parts(11), 12: (PartRef("part_000012.0.m4s", short),)},
    )

    assert '#EXT-X-PART:DURATION=0.213,URI="part_000012.0.m4s",INDEPENDENT=YES\n' in text


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"part_hold_back_s": 2 * PART_S}, "under 3 part targets"),
        ({"part_target_s": 1.5}, "part target 1.5 s must be"),
        ({"in_progress": SegmentInProgress(13, _parts(13, 1, 0.3))}, "the target is 0.256"),
        ({"in_progress": SegmentInProgress(13, _parts(13, 2, 0.2))}, "under 85 %"),
        ({"in_progress": SegmentInProgress(14)}, "after the listed segments comes 13"),
        ({"parts": {9: _parts(9), 12: _parts(12)}}, "does not list"),
        ({"parts": {11: _parts(11)}}, "near the live edge but has no parts"),
        ({"parts": {12: _parts(12, 3)}}, "the segment lasts 1.024 s"),
        ({"next_part_uri": 'seg".m4s'}, "holds a quote"),
    ],
)
def test_playlist_that_breaks_a_rule_is_refused(changes: dict[str, Any], rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        _playlist(**changes)


def test_apple_validator_rules_hold_for_the_live_playlist() -> None:
    lines = _playlist().splitlines()
    tags = [line.partition(":")[0] for line in lines]
    part_target = float(lines[tags.index("#EXT-X-PART-INF")].split("=")[1])
    hold_back = float(lines[tags.index("#EXT-X-SERVER-CONTROL")].split("PART-HOLD-BACK=")[1])

    # every tag before the first segment appears once; exactly one hint, and it comes last
    for tag in ("#EXT-X-PART-INF", "#EXT-X-SERVER-CONTROL", "#EXT-X-MAP", "#EXT-X-VERSION"):
        assert tags.count(tag) == 1
    assert tags.count("#EXT-X-PRELOAD-HINT") == 1
    assert tags[-1] == "#EXT-X-PRELOAD-HINT"
    assert hold_back >= 3 * part_target
    assert "#EXT-X-PROGRAM-DATE-TIME" in tags
    durations = [
        float(line.split("DURATION=")[1].split(",")[0]) for line in lines if "PART:" in line
    ]
    assert all(d <= part_target for d in durations)


def test_live_edge_is_the_last_segment_and_the_last_part() -> None:
    edge = live_edge(_playlist())

    assert edge == LiveEdge(last_segment=12, last_part=(13, 1))
    assert edge.has(12, None)
    assert edge.has(13, 1)
    assert edge.has(12, 3)
    assert not edge.has(13, 2)
    assert not edge.has(13, None)
    assert not edge.has(14, 0)


def test_live_edge_of_the_opus_playlist_reads_its_prefixed_part_names() -> None:
    text = _playlist().replace('URI="part_', 'URI="opus_part_').replace("seg_", "opus_seg_")

    assert live_edge(text) == LiveEdge(last_segment=12, last_part=(13, 1))


def test_ended_playlist_holds_every_request() -> None:
    text = ended_media_playlist(segments=[_segment(3)], target_duration_s=1, init_uri="init.mp4")
    edge = live_edge(text)

    assert edge == LiveEdge(last_segment=3, last_part=None, is_ended=True)
    assert edge.has(99, 0)
