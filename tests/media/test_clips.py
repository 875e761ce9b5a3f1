"""Clips of the recording: which frames a window takes at the segments' edges, and the m4a cut
from a real recording (the packager's own segments of real AAC frames) copies them unchanged."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from rostra.clock import ManualClock
from rostra.errors import ClipNoRecording, ClipOutsideRecording
from rostra.media.clips import Piece, cut, frames_covering, frames_for, window
from rostra.media.codecs import AAC_FRAME_SAMPLES, FRAMES_PER_SEGMENT
from rostra.media.encode import AacEncoder
from rostra.media.hls.packager import HlsPackager
from rostra.media.record import INIT_NAME, segment_name

RATE_HZ = 48_000
FRAME_S = AAC_FRAME_SAMPLES / RATE_HZ
SEGMENTS = 8
# the last segment of the recording is cut short at the end of the space
SHORT_LAST_FRAMES = 20


def test_window_ending_now_takes_the_last_frames_of_the_last_segments() -> None:
    assert window([48, 48, 20], end_frames_ago=0, frame_count=30) == [
        Piece(index=1, first=38, stop=48),
        Piece(index=2, first=0, stop=20),
    ]


def test_window_on_segment_boundaries_leaves_no_empty_piece() -> None:
    assert window([48, 48, 48], end_frames_ago=48, frame_count=48) == [Piece(1, 0, 48)]
    assert window([48, 48, 48], end_frames_ago=0, frame_count=144) == [
        Piece(0, 0, 48),
        Piece(1, 0, 48),
        Piece(2, 0, 48),
    ]


def test_window_inside_one_segment_and_refused_before_the_recording() -> None:
    assert window([48, 48], end_frames_ago=10, frame_count=5) == [Piece(1, 33, 38)]
    with pytest.raises(ValueError, match="1 frames before the recording"):
        window([48, 48], end_frames_ago=0, frame_count=97)
    with pytest.raises(ValueError, match="a window of 0 frames"):
        window([48, 48], end_frames_ago=0, frame_count=0)


def test_frames_for_rounds_to_the_nearest_whole_frame() -> None:
    assert frames_for(5, timescale_hz=RATE_HZ, frame_samples=AAC_FRAME_SAMPLES) == 234
    assert frames_for(1.024, timescale_hz=RATE_HZ, frame_samples=AAC_FRAME_SAMPLES) == 48
    for seconds in (5, 7.3, 60, 0.011):
        frames = frames_for(seconds, timescale_hz=RATE_HZ, frame_samples=AAC_FRAME_SAMPLES)
        assert abs(frames * FRAME_S - seconds) <= FRAME_S / 2


def test_a_clip_lasts_at_least_its_duration_and_less_than_a_frame_more() -> None:
    assert frames_covering(5, timescale_hz=RATE_HZ, frame_samples=AAC_FRAME_SAMPLES) == 235
    # exactly whole: no frame added for a rounding error (1.024 * 48000 / 1024 = 48.000…01)
    assert frames_covering(1.024, timescale_hz=RATE_HZ, frame_samples=AAC_FRAME_SAMPLES) == 48
    for seconds in (5, 7.3, 60, 0.011):
        frames = frames_covering(seconds, timescale_hz=RATE_HZ, frame_samples=AAC_FRAME_SAMPLES)
        assert 0 <= frames * FRAME_S - seconds < FRAME_S


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    """A recording written by the packager: real AAC frames of a rising tone (so every frame
    differs), the last segment short; and the frames in order."""
    directory = tmp_path_factory.mktemp("recording")
    encoder = AacEncoder()
    packager = HlsPackager(directory, window_segments=6, clock=ManualClock())
    frames: list[bytes] = []
    t = np.arange(960) / RATE_HZ
    n = 0
    while len(frames) < (SEGMENTS - 1) * FRAMES_PER_SEGMENT + SHORT_LAST_FRAMES:
        pcm = (0.3 * np.sin(2 * np.pi * (200 + n) * (t + n * 0.02))).astype(np.float32)
        n += 1
        for packet in encoder.encode(pcm):
            packager.add(packet)
            frames.append(packet.data)
    packager.finish(is_ending=True)
    return directory, frames


def _packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def ffprobe_fields(path: Path) -> dict[str, str]:
    """ffprobe's format and first stream of the file, in one dict."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    data = json.loads(out.stdout)
    return {**data["format"], **data["streams"][0]}


def test_clip_copies_the_recorded_frames_unchanged_into_a_valid_m4a(
    recording: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    directory, frames = recording
    clip = tmp_path / "clip.m4a"
    clip.write_bytes(cut(directory, end_s_ago=1.5, duration_s=5))
    probe = ffprobe_fields(clip)
    assert probe["codec_name"] == "aac"
    assert probe["format_name"].startswith("mov,mp4,m4a")
    assert int(probe["sample_rate"]) == RATE_HZ
    assert abs(float(probe["duration"]) - 5) <= FRAME_S
    copied = _packets(clip)
    end = len(frames) - round(1.5 / FRAME_S)
    assert copied == frames[end - len(copied) : end]
    assert len(copied) == 235
    # and it decodes from the first frame to the last
    with av.open(str(clip)) as container:
        decoded = sum(f.samples for f in container.decode(audio=0))
    assert decoded == 235 * AAC_FRAME_SAMPLES


def test_clip_ending_now_ends_with_the_last_recorded_frame(
    recording: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    directory, frames = recording
    clip = tmp_path / "now.m4a"
    clip.write_bytes(cut(directory, end_s_ago=0, duration_s=2))
    assert _packets(clip) == frames[-math.ceil(2 / FRAME_S) :]


def test_clip_reaching_before_the_recording_is_refused_with_what_it_holds(
    recording: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    directory, frames = recording
    held_s = len(frames) * FRAME_S
    # the whole recording is one clip; a frame more is not
    whole = tmp_path / "whole.m4a"
    whole.write_bytes(cut(directory, end_s_ago=0, duration_s=held_s))
    assert _packets(whole) == frames
    with pytest.raises(ClipOutsideRecording, match=f"holds {held_s:.3f} s"):
        cut(directory, end_s_ago=FRAME_S, duration_s=held_s)
    with pytest.raises(ClipNoRecording):
        cut(tmp_path / "empty", end_s_ago=0, duration_s=5)


def test_clip_far_past_the_recording_is_refused_before_a_segment_is_read(
    recording: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    """The refusal counts toward no limit, so it must cost no more than listing the folder: here
    every segment is junk, and reading any one would fail otherwise."""
    directory, _ = recording
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / INIT_NAME).write_bytes((directory / INIT_NAME).read_bytes())
    for number in range(SEGMENTS):
        (junk / segment_name(number)).write_bytes(b"x" * 4096)
    held_at_most_s = SEGMENTS * FRAMES_PER_SEGMENT * FRAME_S
    with pytest.raises(ClipOutsideRecording, match=f"holds at most {held_at_most_s:.3f} s"):
        cut(junk, end_s_ago=86_400, duration_s=60)
    with pytest.raises(ClipOutsideRecording, match="holds at most"):
        cut(junk, end_s_ago=held_at_most_s - 4.9 + 2 * FRAME_S, duration_s=5)
