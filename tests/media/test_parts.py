"""LL-HLS parts from the packager: each 256 ms part an immutable fragment that decodes after the
init segment, timed where it belongs; the playlist lists them for the live edge only; parts of
segments that left the window are deleted while the segments stay recorded. The Opus rendition
cuts its 20 ms frames at the first boundary at or after each AAC part's end."""

from __future__ import annotations

import io
import os
import re
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from rostra.clock import ManualClock, iso_utc
from rostra.media.codecs import (
    AAC_FRAME_SAMPLES,
    FRAMES_PER_PART,
    FRAMES_PER_SEGMENT,
    PART_SAMPLES,
    PARTS_PER_SEGMENT,
    SEGMENT_SAMPLES,
    EncodedPacket,
)
from rostra.media.codecs import (
    OPUS_PRE_SKIP_SAMPLES as OPUS_PRE_SKIP,
)
from rostra.media.encode import AacEncoder, OpusEncoder
from rostra.media.hls.ll_playlist import live_edge
from rostra.media.hls.packager import HlsPackager
from rostra.media.hls.playlist import read_media_playlist
from rostra.media.hls.rendition import OPUS_RENDITION, frames_before_part, frames_before_segment
from rostra.media.record import (
    INIT_NAME,
    LIVE_PLAYLIST_NAME,
    OPUS_INIT_NAME,
    OPUS_PLAYLIST_NAME,
    PART_NAME_RE,
    part_name,
    recorded_segments,
    segment_name,
)

WINDOW = 6
RATE_HZ = 48_000
PACKET_S = AAC_FRAME_SAMPLES / RATE_HZ
TONE_HZ = 440


@pytest.fixture(scope="module")
def packets() -> list[EncodedPacket]:
    """Real AAC-LC frames of a 440 Hz tone: 3 s, more than two segments without repeating."""
    encoder = AacEncoder()
    t = np.arange(960) / RATE_HZ
    out: list[EncodedPacket] = []
    for n in range(150):
        frame = (0.3 * np.sin(2 * np.pi * TONE_HZ * (t + n * 0.02))).astype(np.float32)
        out += encoder.encode(frame)
    return out


def _feed(packager: HlsPackager, clock: ManualClock, packets: list[EncodedPacket], n: int) -> None:
    for i in range(n):
        packager.add(packets[i % len(packets)])
        clock.advance(PACKET_S)


def _decode(data: bytes) -> tuple[np.ndarray, list[int]]:
    """The samples PyAV decodes from one fMP4 byte string, and its packets' timestamps."""
    with av.open(io.BytesIO(data), format="mp4") as container:
        stream = container.streams.audio[0]
        pts: list[int] = []
        chunks = []
        for packet in container.demux(stream):
            if packet.pts is not None:
                pts.append(packet.pts)
            chunks += [frame.to_ndarray() for frame in packet.decode()]
    return np.concatenate(chunks, axis=1)[0], pts


def _parts_on_disk(directory: Path) -> set[str]:
    return {entry.name for entry in directory.iterdir() if PART_NAME_RE.fullmatch(entry.name)}


def test_each_part_decodes_after_the_init_segment_as_twelve_frames_in_place(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    packager = HlsPackager(tmp_path, window_segments=WINDOW, clock=clock)
    _feed(packager, clock, packets, 2 * FRAMES_PER_SEGMENT)
    init = (tmp_path / INIT_NAME).read_bytes()
    sequence = 1
    parts = [(tmp_path / part_name(sequence, i)).read_bytes() for i in range(PARTS_PER_SEGMENT)]

    whole, whole_pts = _decode(init + (tmp_path / segment_name(sequence)).read_bytes())
    joined, joined_pts = _decode(init + b"".join(parts))

    for index, part in enumerate(parts):
        assert part[4:8] == b"moof"  # a CMAF chunk: moof + mdat, no styp
        samples, pts = _decode(init + part)
        assert samples.size == FRAMES_PER_PART * AAC_FRAME_SAMPLES
        first = sequence * SEGMENT_SAMPLES + index * PART_SAMPLES
        assert pts == [first + k * AAC_FRAME_SAMPLES for k in range(FRAMES_PER_PART)]
        # the tone, not silence: its period is in the decoded part
        spectrum = np.abs(np.fft.rfft(samples))
        peak_hz = np.argmax(spectrum) * RATE_HZ / samples.size
        assert abs(peak_hz - TONE_HZ) < 10
    # the parts joined are the segment, sample for sample
    assert joined_pts == whole_pts
    np.testing.assert_array_equal(joined, whole)


def test_playlist_lists_parts_for_the_live_edge_and_hints_the_next_one(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    packager = HlsPackager(tmp_path, window_segments=WINDOW, clock=clock)
    _feed(packager, clock, packets, 9 * FRAMES_PER_SEGMENT + 2 * FRAMES_PER_PART)
    text = (tmp_path / LIVE_PLAYLIST_NAME).read_text()
    lines = text.splitlines()
    playlist = read_media_playlist(text)

    assert [s.sequence_number for s in playlist.segments] == list(range(3, 9))
    listed_parts = [line.split('URI="')[1][:-1] for line in lines if "#EXT-X-PART:" in line]
    listed_parts = [uri.split('"')[0] for uri in listed_parts]
    assert listed_parts == [
        part_name(n, i) for n in range(6, 9) for i in range(PARTS_PER_SEGMENT)
    ] + [part_name(9, 0), part_name(9, 1)]
    assert lines[-1] == f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_name(9, 2)}"'
    assert live_edge(text).last_part == (9, 1)
    assert all((tmp_path / uri).is_file() for uri in listed_parts)
    # the parts of each listed segment add up to it (Apple's validator checks this)
    assert text.count("#EXT-X-PART:DURATION=0.256,") == len(listed_parts)


def test_parts_of_segments_that_left_the_window_are_deleted_and_segments_kept(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    packager = HlsPackager(tmp_path, window_segments=WINDOW, clock=clock)
    _feed(packager, clock, packets, 20 * FRAMES_PER_SEGMENT + FRAMES_PER_PART)

    assert recorded_segments(tmp_path) == list(range(20))
    assert _parts_on_disk(tmp_path) == {
        part_name(n, i) for n in range(14, 20) for i in range(PARTS_PER_SEGMENT)
    } | {part_name(20, 0)}


def test_restart_lists_new_parts_after_a_discontinuity_and_clears_old_ones(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    first_run = HlsPackager(tmp_path, window_segments=WINDOW, clock=clock)
    _feed(first_run, clock, packets, 8 * FRAMES_PER_SEGMENT + 2 * FRAMES_PER_PART + 3)
    # a part a crash left behind of a segment the resumed window (2..7) does not list
    (tmp_path / part_name(1, 3)).write_bytes(b"left over")
    clock.advance(3.0)
    restart_at = clock.now()

    second_run = HlsPackager(tmp_path, window_segments=WINDOW, clock=clock)
    in_flight_part = (tmp_path / part_name(8, 0)).read_bytes()
    _feed(second_run, clock, packets, FRAMES_PER_SEGMENT + FRAMES_PER_PART)
    text = (tmp_path / LIVE_PLAYLIST_NAME).read_text()

    # segment 8 was in flight: its parts' names were listed with the first run's audio, so the
    # new segment 8 comes without parts (a name never holds two contents); parts go on after it
    assert text.endswith(
        "#EXTINF:1.024,\nseg_000007.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        f"#EXT-X-PROGRAM-DATE-TIME:{iso_utc(restart_at)}\n"
        "#EXTINF:1.024,\nseg_000008.m4s\n"
        f'#EXT-X-PART:DURATION=0.256,URI="{part_name(9, 0)}",INDEPENDENT=YES\n'
        f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_name(9, 1)}"\n'
    )
    assert "#EXT-X-PART:" not in text.split("seg_000008.m4s")[0]
    assert (tmp_path / part_name(8, 0)).read_bytes() == in_flight_part
    # the leftover went at start; the window is now 3..8, and parts older than it too
    on_disk = _parts_on_disk(tmp_path)
    assert part_name(1, 3) not in on_disk
    assert min(name for name in on_disk) == part_name(3, 0)


def test_a_part_that_cannot_be_written_drops_parts_not_segments(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    seen: list[tuple[str, BaseException]] = []
    packager = HlsPackager(
        tmp_path, window_segments=WINDOW, clock=clock, on_fault=lambda p, e: seen.append((p, e))
    )
    # the kernel's always-full device stands in for a full disk for this one part
    os.symlink("/dev/full", tmp_path / f".{part_name(2, 1)}.tmp")

    _feed(packager, clock, packets, 4 * FRAMES_PER_SEGMENT + FRAMES_PER_PART)
    text = (tmp_path / LIVE_PLAYLIST_NAME).read_text()
    listed = [line for line in text.splitlines() if line.startswith("#EXT-X-PART:")]

    assert [part for part, _ in seen] == ["packager"]
    assert [s.sequence_number for s in read_media_playlist(text).segments] == [0, 1, 2, 3]
    # parts start again after the failed segment, never with a hole before the live edge
    assert [line.split('URI="')[1].split('"')[0] for line in listed] == [
        part_name(3, i) for i in range(PARTS_PER_SEGMENT)
    ] + [part_name(4, 0)]


# --- the Opus rendition, cut on the AAC timeline ---------------------------------------------
OPUS_FRAME_SAMPLES = 960
OPUS_PACKET_S = OPUS_FRAME_SAMPLES / RATE_HZ
TEN_HOURS_OF_PARTS = 10 * 3600 * RATE_HZ // PART_SAMPLES


@pytest.fixture(scope="module")
def opus_packets() -> list[EncodedPacket]:
    """Real 20 ms Opus packets of the tone, from the encoder the program uses."""
    encoder = OpusEncoder()
    t = np.arange(960) / RATE_HZ
    out: list[EncodedPacket] = []
    for n in range(150):
        out += encoder.encode(
            (0.3 * np.sin(2 * np.pi * TONE_HZ * (t + n * 0.02))).astype(np.float32)
        )
    return out


def _tfdt(data: bytes) -> int:
    """The base media decode time of a fragment (tfdt version 1)."""
    index = data.index(b"tfdt")
    return int.from_bytes(data[index + 8 : index + 16], "big")


def test_opus_boundaries_are_the_first_20_ms_frame_at_or_after_each_aac_part() -> None:
    # 0.256 s is 12.8 frames of 20 ms: parts of 13 frames and now and then 12, five segments
    # (5.12 s, 256 frames) make one whole cycle
    assert [frames_before_part(m, OPUS_FRAME_SAMPLES) for m in range(9)] == [
        0, 13, 26, 39, 52, 64, 77, 90, 103,
    ]  # fmt: skip
    segments = [frames_before_segment(n, OPUS_FRAME_SAMPLES) for n in range(7)]
    assert [b - a for a, b in pairwise(segments)] == [52, 51, 51, 51, 51, 52]
    # the AAC rendition's own rule is unchanged: 12 frames a part, 48 a segment
    assert [frames_before_part(m, AAC_FRAME_SAMPLES) for m in range(5)] == [0, 12, 24, 36, 48]


def test_ten_hours_in_opus_boundaries_are_still_within_one_frame_after_the_aac_ones() -> None:
    for m in range(TEN_HOURS_OF_PARTS - 5, TEN_HOURS_OF_PARTS + 5):
        past_s = frames_before_part(m, OPUS_FRAME_SAMPLES) * OPUS_FRAME_SAMPLES - m * PART_SAMPLES
        assert 0 <= past_s < OPUS_FRAME_SAMPLES, m
    lead = [
        frames_before_part(m, OPUS_FRAME_SAMPLES) * OPUS_FRAME_SAMPLES - m * PART_SAMPLES
        for m in range(TEN_HOURS_OF_PARTS)
    ]
    assert min(lead) == 0
    assert max(lead) < OPUS_FRAME_SAMPLES


def test_opus_packager_writes_aligned_parts_and_segments_with_their_true_durations(
    tmp_path: Path, packets: list[EncodedPacket], opus_packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    aac = HlsPackager(tmp_path, window_segments=WINDOW, clock=clock)
    opus = HlsPackager(
        tmp_path, window_segments=WINDOW, clock=clock, rendition=OPUS_RENDITION, first_sequence=0
    )
    seconds = 8 * SEGMENT_SAMPLES / RATE_HZ + 0.3
    for i in range(round(seconds / OPUS_PACKET_S)):
        opus.add(opus_packets[i % len(opus_packets)])
    _feed(aac, clock, packets, round(seconds / PACKET_S))
    text = (tmp_path / OPUS_PLAYLIST_NAME).read_text()

    assert "#EXT-X-TARGETDURATION:1\n" in text
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.780\n" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.260\n" in text
    assert '#EXT-X-MAP:URI="opus_init.mp4"\n' in text
    listed = read_media_playlist(text).segments
    aac_listed = read_media_playlist((tmp_path / LIVE_PLAYLIST_NAME).read_text()).segments
    assert [s.sequence_number for s in listed] == [s.sequence_number for s in aac_listed]
    assert [s.uri for s in listed] == [f"opus_seg_{n:06d}.m4s" for n in range(2, 8)]
    # segment n holds frames 51.2·n rounded up to 51.2·(n+1) rounded up
    assert [s.duration_s for s in listed] == [1.02, 1.02, 1.02, 1.04, 1.02, 1.02]
    # 12.8 frames a part: 13, and one part in five 12 (12 · 0.02 s ≥ 85 % of the 0.26 s target)
    part_durations = re.findall(r"#EXT-X-PART:DURATION=([\d.]+),", text)
    assert set(part_durations) == {"0.260", "0.240"}, text
    assert text.endswith(
        '#EXT-X-PART:DURATION=0.260,URI="opus_part_000008.0.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="opus_part_000008.1.m4s"\n'
    )
    for segment in listed:
        n = segment.sequence_number
        data = (tmp_path / segment.uri).read_bytes()
        aac_start = _tfdt((tmp_path / segment_name(n)).read_bytes())
        assert aac_start == n * SEGMENT_SAMPLES
        assert 0 <= _tfdt(data) - aac_start < OPUS_FRAME_SAMPLES
        # the parts are the segment, cut in four, each decodable after the init segment
        parts = [(tmp_path / f"opus_part_{n:06d}.{k}.m4s").read_bytes() for k in range(4)]
        assert _tfdt(parts[0]) == _tfdt(data)
        init = (tmp_path / OPUS_INIT_NAME).read_bytes()
        whole, _ = _decode(init + data)
        pieces = [_decode(init + part)[0].size for part in parts]
        # (a decoder starting afresh warms up over the pre-skip of each)
        expected = round(segment.duration_s * RATE_HZ) - OPUS_PRE_SKIP
        assert whole.size == expected
        assert sum(pieces) == expected - (len(parts) - 1) * OPUS_PRE_SKIP
    # Opus is no recording: only the live window's segments stay; the AAC ones all do
    assert sorted(p.name for p in tmp_path.glob("opus_seg_*")) == [s.uri for s in listed]
    assert recorded_segments(tmp_path) == list(range(8))


def test_opus_packager_resumes_its_window_with_the_aac_sequence_numbers(
    tmp_path: Path, opus_packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    first = HlsPackager(
        tmp_path, window_segments=WINDOW, clock=clock, rendition=OPUS_RENDITION, first_sequence=0
    )
    for i in range(round(4.3 / OPUS_PACKET_S)):
        first.add(opus_packets[i % len(opus_packets)])
        clock.advance(OPUS_PACKET_S)
    first.finish(is_ending=False)
    before = read_media_playlist((tmp_path / OPUS_PLAYLIST_NAME).read_text())
    assert [s.sequence_number for s in before.segments] == [0, 1, 2, 3, 4]
    clock.advance(3.0)

    # the AAC packager of the new run says where to go on: segment 5
    second = HlsPackager(
        tmp_path, window_segments=WINDOW, clock=clock, rendition=OPUS_RENDITION, first_sequence=5
    )
    for i in range(round(2.1 / OPUS_PACKET_S)):
        second.add(opus_packets[i % len(opus_packets)])
        clock.advance(OPUS_PACKET_S)
    after = read_media_playlist((tmp_path / OPUS_PLAYLIST_NAME).read_text())
    assert [s.sequence_number for s in after.segments] == [1, 2, 3, 4, 5, 6]
    assert [s.is_discontinuity for s in after.segments] == [False] * 4 + [True, False]
    # the new run's segment 5 starts again on the AAC grid (5 × 1.024 s), not after the cut one
    assert _tfdt((tmp_path / "opus_seg_000005.m4s").read_bytes()) == 5 * SEGMENT_SAMPLES
    assert not (tmp_path / "opus_seg_000000.m4s").exists()
