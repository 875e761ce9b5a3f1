"""The live HLS packager: segments on disk, the live window, continuity across restarts of the
origin (RFC 8216 §6.2.2), the end of a space, a full disk, and memory over a two-hour event."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from rostra.clock import ManualClock, iso_utc
from rostra.media import record
from rostra.media.codecs import AAC_FRAME_SAMPLES, FRAMES_PER_SEGMENT, EncodedPacket
from rostra.media.encode import AacEncoder
from rostra.media.hls.packager import HlsPackager
from rostra.media.hls.playlist import MediaPlaylist, read_media_playlist
from rostra.media.hls.replay import replay_text
from rostra.media.record import LIVE_PLAYLIST_NAME, REPLAY_PLAYLIST_NAME, segment_name

WINDOW = 6
PACKET_S = AAC_FRAME_SAMPLES / 48_000
SEGMENT_S = FRAMES_PER_SEGMENT * PACKET_S
RESTART_S = 3.0


@pytest.fixture(scope="module")
def packets() -> list[EncodedPacket]:
    """Real AAC-LC frames of a 440 Hz tone, encoded once and fed round and round."""
    encoder = AacEncoder()
    t = np.arange(960) / 48_000
    out: list[EncodedPacket] = []
    for n in range(120):
        frame = (0.3 * np.sin(2 * np.pi * 440 * (t + n * 0.02))).astype(np.float32)
        out += encoder.encode(frame)
    return out


@pytest.fixture
def ram_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder in RAM when the machine has /dev/shm: 7,000 fsyncs on a disk take half a minute,
    on tmpfs they cost nothing, and the packager's code path is the same."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="rostra-packager-", dir=shm))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Faults:
    """A fault sink that keeps what it is told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, BaseException]] = []

    def __call__(self, part: str, error: BaseException) -> None:
        self.seen.append((part, error))


def _feed(packager: HlsPackager, clock: ManualClock, packets: list[EncodedPacket], n: int) -> None:
    for i in range(n):
        packager.add(packets[i % len(packets)])
        clock.advance(PACKET_S)


def _live(directory: Path) -> MediaPlaylist:
    return read_media_playlist((directory / LIVE_PLAYLIST_NAME).read_text())


def _new(directory: Path, clock: ManualClock, faults: Faults | None = None) -> HlsPackager:
    return HlsPackager(directory, window_segments=WINDOW, clock=clock, on_fault=faults)


def test_restarted_packager_continues_the_live_playlist_after_a_discontinuity(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    first_run = _new(tmp_path, clock)
    _feed(first_run, clock, packets, 4 * FRAMES_PER_SEGMENT + 5)  # killed mid-segment
    before = _live(tmp_path)
    before_text = (tmp_path / LIVE_PLAYLIST_NAME).read_text()
    clock.advance(RESTART_S)
    restart_at = clock.now()

    second_run = _new(tmp_path, clock)
    resumed_text = second_run.live_text
    _feed(second_run, clock, packets, 3 * FRAMES_PER_SEGMENT)
    after = _live(tmp_path)

    # the same window; its parts were the previous run's, so the resumed text lists none
    assert resumed_text is not None
    assert read_media_playlist(resumed_text).segments == before.segments
    assert "#EXT-X-PART:" in before_text
    assert "#EXT-X-PART:" not in resumed_text
    assert [s.sequence_number for s in before.segments] == [0, 1, 2, 3]
    assert [s.sequence_number for s in after.segments] == [1, 2, 3, 4, 5, 6]
    assert [s.is_discontinuity for s in after.segments] == [False] * 3 + [True, False, False]
    assert after.segments[:3] == before.segments[1:]
    dates = [s.program_date_time for s in after.segments]
    assert all(a is not None and b is not None and a < b for a, b in pairwise(dates))
    # as written: milliseconds (RFC 8216 §4.3.2.6)
    assert after.segments[3].program_date_time == restart_at.replace(
        microsecond=restart_at.microsecond // 1000 * 1000
    )
    text = (tmp_path / LIVE_PLAYLIST_NAME).read_text()
    assert f"#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:{iso_utc(restart_at)}\n" in text
    assert "#EXT-X-ENDLIST" not in text


def test_discontinuity_that_slid_out_is_counted_in_the_discontinuity_sequence(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    _feed(_new(tmp_path, clock), clock, packets, 3 * FRAMES_PER_SEGMENT)
    second_run = _new(tmp_path, clock)
    _feed(second_run, clock, packets, (WINDOW + 1) * FRAMES_PER_SEGMENT)
    slid_out = (tmp_path / LIVE_PLAYLIST_NAME).read_text()

    third_run = _new(tmp_path, clock)  # and the count survives a restart
    _feed(third_run, clock, packets, FRAMES_PER_SEGMENT)
    continued = _live(tmp_path)

    assert "#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in slid_out
    assert "#EXT-X-DISCONTINUITY\n" not in slid_out
    assert continued.discontinuity_sequence == 1
    assert [s.is_discontinuity for s in continued.segments] == [False] * (WINDOW - 1) + [True]


def test_resumed_window_is_what_the_previous_run_listed(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    _feed(_new(tmp_path, clock), clock, packets, 8 * FRAMES_PER_SEGMENT)
    listed = (tmp_path / LIVE_PLAYLIST_NAME).read_text()

    resumed = _new(tmp_path, clock)

    assert resumed.live_text is not None
    assert read_media_playlist(resumed.live_text) == read_media_playlist(listed)


def test_restart_before_the_wall_clock_caught_up_still_dates_forward(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    _feed(_new(tmp_path, clock), clock, packets, 2 * FRAMES_PER_SEGMENT)
    clock.advance(-10.0)  # the wall clock was stepped back (NTP) across the restart

    second_run = _new(tmp_path, clock)
    _feed(second_run, clock, packets, FRAMES_PER_SEGMENT)
    segments = _live(tmp_path).segments

    assert segments[2].program_date_time == segments[1].end_date_time


def test_segment_written_after_the_last_playlist_is_listed_on_restart(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    first_run = _new(tmp_path, clock)
    _feed(first_run, clock, packets, 2 * FRAMES_PER_SEGMENT)
    playlist_before_crash = (tmp_path / LIVE_PLAYLIST_NAME).read_text()
    _feed(first_run, clock, packets, FRAMES_PER_SEGMENT)
    # killed between writing segment 2 and writing the playlist that lists it
    (tmp_path / LIVE_PLAYLIST_NAME).write_text(playlist_before_crash)

    second_run = _new(tmp_path, clock)
    _feed(second_run, clock, packets, FRAMES_PER_SEGMENT)
    segments = _live(tmp_path).segments

    assert [s.uri for s in segments] == [segment_name(n) for n in range(4)]
    assert [s.is_discontinuity for s in segments] == [False, False, False, True]
    assert segments[2].program_date_time == segments[1].end_date_time


@pytest.mark.parametrize(
    "previous",
    ["#EXTM3U\n#EXTINF:banana,\nseg_000000.m4s\n", "\x00\xff garbage", "#EXTM3U\nother.m4s\n"],
)
def test_unreadable_previous_playlist_starts_a_fresh_window_after_the_last_segment(
    tmp_path: Path,
    packets: list[EncodedPacket],
    previous: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    _feed(_new(tmp_path, clock), clock, packets, 2 * FRAMES_PER_SEGMENT)
    (tmp_path / LIVE_PLAYLIST_NAME).write_bytes(previous.encode("latin-1"))

    with caplog.at_level(logging.WARNING):
        second_run = _new(tmp_path, clock)
    _feed(second_run, clock, packets, FRAMES_PER_SEGMENT)
    segments = _live(tmp_path).segments

    assert [s.sequence_number for s in segments] == [2]
    assert not segments[0].is_discontinuity
    assert any("live playlist" in record.message for record in caplog.records)


def test_ended_live_playlist_keeps_its_window_and_media_sequence_with_endlist(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    packager = _new(tmp_path, clock)
    _feed(packager, clock, packets, 10 * FRAMES_PER_SEGMENT)
    live = (tmp_path / LIVE_PLAYLIST_NAME).read_text()

    packager.finish(is_ending=True)
    ended = (tmp_path / LIVE_PLAYLIST_NAME).read_text()
    replay = (tmp_path / REPLAY_PLAYLIST_NAME).read_text()

    # the same window, closed: parts, the preload hint and blocking reload are for live edges
    assert read_media_playlist(ended).segments == read_media_playlist(live).segments
    assert ended.endswith("#EXT-X-ENDLIST\n")
    assert "#EXT-X-PART" in live
    for tag in ("#EXT-X-PART", "#EXT-X-PRELOAD-HINT", "#EXT-X-SERVER-CONTROL"):
        assert tag not in ended
    assert "#EXT-X-MEDIA-SEQUENCE:4\n" in ended
    assert "PLAYLIST-TYPE" not in ended
    assert "#EXT-X-PLAYLIST-TYPE:VOD\n" in replay
    assert "#EXT-X-MEDIA-SEQUENCE:0\n" in replay
    assert replay.count("#EXTINF:") == 10
    assert packager.live_text == ended


def test_suspend_cuts_the_segment_in_flight_and_leaves_the_live_playlist_open(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    packager = _new(tmp_path, clock)
    _feed(packager, clock, packets, 2 * FRAMES_PER_SEGMENT + 10)

    packager.finish(is_ending=False)
    playlist = _live(tmp_path)

    assert not playlist.is_ended
    assert [s.duration_s for s in playlist.segments] == [1.024, 1.024, 0.213]
    assert not (tmp_path / REPLAY_PLAYLIST_NAME).exists()


def test_full_disk_loses_one_segment_and_the_next_is_written(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    faults = Faults()
    packager = _new(tmp_path, clock, faults)
    # the kernel's always-full device stands in for a full disk: writing it fails with ENOSPC
    os.symlink("/dev/full", tmp_path / f".{segment_name(2)}.tmp")

    _feed(packager, clock, packets, 4 * FRAMES_PER_SEGMENT)
    segments = _live(tmp_path).segments

    assert [(part, getattr(e, "errno", None)) for part, e in faults.seen] == [
        ("recorder", errno.ENOSPC)
    ]
    assert packager.segments_lost == 1
    assert [s.uri for s in segments] == [segment_name(n) for n in range(3)]
    assert [s.is_discontinuity for s in segments] == [False, False, True]
    start_2 = segments[1].program_date_time
    assert start_2 is not None
    assert segments[2].program_date_time == start_2 + timedelta(seconds=2 * SEGMENT_S)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_two_hours_of_segments_keep_only_the_window_in_memory(
    ram_dir: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    start = clock.now()
    packager = _new(ram_dir, clock)
    segments = 7_000  # 2 h of 1.024 s segments

    _feed(packager, clock, packets, segments * FRAMES_PER_SEGMENT)
    playlist = _live(ram_dir)

    assert len(packager.listed_segments) == WINDOW
    assert playlist.segments[0].sequence_number == segments - WINDOW
    last = playlist.segments[-1].program_date_time
    assert last == start + timedelta(seconds=(segments - 1) * SEGMENT_S)


def test_a_slow_disk_delays_the_recordings_fsync_never_the_live_playlist(
    tmp_path: Path, packets: list[EncodedPacket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk is held (every fsync waits for the test): the live playlist lists each segment
    all the same. Once the disk goes on, every segment is synced, in order, before `finish`
    returns; one fsync that fails is reported and the next ones are made."""
    disk_goes_on = threading.Event()
    synced: list[str] = []

    def held_fsync(path: Path) -> None:
        disk_goes_on.wait(timeout=30)
        if path.name == segment_name(1):
            raise OSError(errno.EIO, "I/O error")
        synced.append(path.name)

    monkeypatch.setattr(record, "fsync_file", held_fsync)
    clock = ManualClock()
    faults = Faults()
    packager = _new(tmp_path, clock, faults)

    _feed(packager, clock, packets, 4 * FRAMES_PER_SEGMENT)

    assert [s.uri for s in _live(tmp_path).segments] == [segment_name(n) for n in range(4)]
    assert synced == []
    disk_goes_on.set()
    packager.finish(is_ending=True)
    assert synced == [segment_name(n) for n in (0, 2, 3)]
    assert [(part, getattr(e, "errno", None)) for part, e in faults.seen] == [
        ("recorder", errno.EIO)
    ]


def test_a_segment_a_power_cut_left_empty_is_not_in_the_replay(
    tmp_path: Path, packets: list[EncodedPacket]
) -> None:
    clock = ManualClock()
    packager = _new(tmp_path, clock)
    _feed(packager, clock, packets, 4 * FRAMES_PER_SEGMENT)
    packager.finish(is_ending=True)
    (tmp_path / segment_name(2)).write_bytes(b"")  # renamed into place, its data never synced

    replay = read_media_playlist(replay_text(tmp_path) or "")

    assert [s.uri for s in replay.segments] == [segment_name(n) for n in (0, 1, 3)]
