"""The supervised pipeline on a manual clock: real mixer, AAC and Opus encoders, packager and
recorder; faults degrade the space without stopping the program; stop is bounded."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from rostra.clock import ManualClock
from rostra.media.audio import FRAME_DURATION_S, FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm
from rostra.media.hls.playlist import read_media_playlist
from rostra.media.pipeline import (
    ENCODER_QUEUE_FRAMES,
    ENCODER_STOP_TIMEOUT_S,
    MIXER_STOP_TIMEOUT_S,
    SpacePipeline,
)
from rostra.media.record import LIVE_PLAYLIST_NAME, REPLAY_PLAYLIST_NAME, segment_name

WINDOW = 6
# the test ticks faster than real time; it lets the real encoder catch up past this backlog
BACKLOG_FRAMES = 50
WAIT_LIMIT_S = 20.0
# an encoder that takes no frame for this long is stuck (it takes one every ~1 ms when well)
STUCK_S = 0.3


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A real event loop on its own thread, as the origin's, to receive the stream chunks."""
    event_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=event_loop.run_forever, daemon=True)
    thread.start()
    yield event_loop
    event_loop.call_soon_threadsafe(event_loop.stop)
    thread.join(timeout=5)
    event_loop.close()


class ToneVoice:
    """A speaker saying a steady tone."""

    def __init__(self, frequency_hz: float) -> None:
        t = np.arange(FRAME_SAMPLES) / SAMPLE_RATE_HZ
        self._frame: Pcm = (0.2 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)

    def pop(self) -> Pcm | None:
        return self._frame


class BrokenVoice:
    """A speaker whose jitter buffer raises on every pop."""

    def pop(self) -> Pcm | None:
        raise RuntimeError("jitter buffer broken")


class Returns:
    """Counts the mix-minus frames a speaker got back."""

    def __init__(self) -> None:
        self.frames = 0

    def __call__(self, frame: Pcm) -> None:
        self.frames += 1


def _pipeline(
    directory: Path,
    loop: asyncio.AbstractEventLoop,
    clock: ManualClock,
    *,
    stop_timeout_s: float = ENCODER_STOP_TIMEOUT_S,
) -> SpacePipeline:
    return SpacePipeline(
        "sp1",
        directory,
        loop,
        window_segments=WINDOW,
        clock=clock,
        is_self_clocked=False,
        stop_timeout_s=stop_timeout_s,
    )


def _drive(pipeline: SpacePipeline, clock: ManualClock, seconds: float) -> None:
    """`seconds` of program on the manual clock, one tick per 20 ms."""
    for _ in range(round(seconds / FRAME_DURATION_S)):
        pipeline.tick()
        clock.advance(FRAME_DURATION_S)
        if pipeline.encoder_backlog_frames > BACKLOG_FRAMES:
            _wait_until(lambda: pipeline.encoder_backlog_frames < BACKLOG_FRAMES // 5)


def _wait_until(condition: Callable[[], bool], limit_s: float = WAIT_LIMIT_S) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def _tick_until_the_encoder_is_stuck(pipeline: SpacePipeline, clock: ManualClock) -> None:
    """Tick until the encoder has taken no frame for a while: its queue stays full."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    full_since: float | None = None
    while full_since is None or time.monotonic() - full_since < STUCK_S:
        assert time.monotonic() < deadline, "the encoder never got stuck"
        if pipeline.encoder_backlog_frames < ENCODER_QUEUE_FRAMES:
            full_since = None
        elif full_since is None:
            full_since = time.monotonic()
        pipeline.tick()
        clock.advance(FRAME_DURATION_S)
        time.sleep(0.001)


def _live_text(directory: Path) -> str:
    return (directory / LIVE_PLAYLIST_NAME).read_text()


def test_program_with_speakers_joining_and_leaving_keeps_bounded_state(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    clock = ManualClock()
    pipeline = _pipeline(tmp_path, loop, clock)
    returns = Returns()
    for n in range(3):
        pipeline.add_voice(f"speaker-{n}", ToneVoice(200 + 50 * n), returns)
    pipeline.start_program(clock.now())

    # 1 simulated minute: every 2.5 s one speaker leaves and a new one joins (27 in all)
    for n in range(3, 27):
        _drive(pipeline, clock, 2.5)
        pipeline.remove_voice(f"speaker-{n - 3}")
        pipeline.add_voice(f"speaker-{n}", ToneVoice(200 + 10 * n), returns)
    _drive(pipeline, clock, 0.04)

    health = pipeline.health()
    assert pipeline.voice_count == 3
    assert pipeline.mixer_speaker_count == 3
    assert pipeline.listed_segment_count() == WINDOW
    assert health.is_ok, health.problems
    assert pipeline.clock_stats.dropped_program_frames == 0
    assert returns.frames == 3 * pipeline.clock_stats.ticks
    pipeline.stop(is_ending=True)
    playlist = read_media_playlist(_live_text(tmp_path))
    assert playlist.is_ended
    assert len(playlist.segments) == WINDOW
    assert playlist.segments[-1].sequence_number >= 56  # 60 s of 1.024 s segments
    assert (tmp_path / REPLAY_PLAYLIST_NAME).is_file()


def test_a_voice_that_raises_degrades_the_space_and_the_program_goes_on(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    clock = ManualClock()
    pipeline = _pipeline(tmp_path, loop, clock)
    returns = Returns()
    pipeline.add_voice("good", ToneVoice(300), returns)
    pipeline.add_voice("broken", BrokenVoice(), Returns())
    pipeline.start_program(clock.now())

    _drive(pipeline, clock, 6.0)
    degraded = pipeline.health()
    pipeline.remove_voice("broken")
    _drive(pipeline, clock, 11.0)
    recovered = pipeline.health()
    pipeline.stop(is_ending=False)

    assert not degraded.is_ok
    assert degraded.problems == ("voice: RuntimeError (300 times, last 0 s ago)",)
    assert degraded.last_segment_at_s is not None
    assert degraded.last_segment_at_s > clock.monotonic_s() - 11.0 - 3.0
    assert recovered.is_ok, recovered.problems
    assert returns.frames == pipeline.clock_stats.ticks
    assert pipeline.listed_segment_count() == WINDOW


def test_full_disk_loses_a_segment_degrades_then_recovers(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    clock = ManualClock()
    pipeline = _pipeline(tmp_path, loop, clock)
    pipeline.add_voice("a", ToneVoice(300), Returns())
    # the kernel's always-full device stands in for a full disk: writing it fails with ENOSPC
    os.symlink("/dev/full", tmp_path / f".{segment_name(1)}.tmp")
    pipeline.start_program(clock.now())

    _drive(pipeline, clock, 4.0)
    _wait_until(lambda: pipeline.health().segments_lost == 1)
    degraded = pipeline.health()
    _drive(pipeline, clock, 11.0)
    recovered = pipeline.health()
    pipeline.stop(is_ending=True)

    assert not degraded.is_ok
    assert degraded.problems[0].startswith(f"recorder: OSError {errno.errorcode[errno.ENOSPC]}")
    assert recovered.is_ok, recovered.problems
    assert recovered.segments_lost == 1
    playlist = read_media_playlist(_live_text(tmp_path))
    assert [s.is_discontinuity for s in playlist.segments].count(True) <= 1
    assert (tmp_path / segment_name(1)).is_file()  # the next segment took the lost one's name


def test_suspended_program_continues_its_live_playlist_on_the_next_start(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    clock = ManualClock()
    first = _pipeline(tmp_path, loop, clock)
    first.add_voice("a", ToneVoice(300), Returns())
    first.start_program(clock.now())
    _drive(first, clock, 3.0)
    first.stop(is_ending=False)
    suspended = read_media_playlist(_live_text(tmp_path))
    clock.advance(2.0)

    second = _pipeline(tmp_path, loop, clock)
    second.add_voice("a", ToneVoice(300), Returns())
    second.start_program(clock.now())
    _drive(second, clock, 3.0)
    second.stop(is_ending=True)
    ended = read_media_playlist(_live_text(tmp_path))

    assert not suspended.is_ended
    assert ended.is_ended
    first_new = len(suspended.segments)
    assert [s.is_discontinuity for s in ended.segments].count(True) == 1
    assert ended.segments[0].sequence_number <= suspended.segments[-1].sequence_number
    assert ended.segments[-1].sequence_number >= first_new + 1
    dates = [s.program_date_time for s in ended.segments if s.program_date_time is not None]
    assert len(dates) == len(ended.segments)
    assert all(a < b for a, b in pairwise(dates))


def test_stop_is_bounded_when_the_disk_hangs_and_the_encoder_queue_is_full(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    clock = ManualClock()
    stop_timeout_s = 1.0
    pipeline = _pipeline(tmp_path, loop, clock, stop_timeout_s=stop_timeout_s)
    pipeline.add_voice("a", ToneVoice(300), Returns())
    # a FIFO nobody reads: opening it to write the first segment blocks, as a hung disk would
    fifo = tmp_path / f".{segment_name(0)}.tmp"
    os.mkfifo(fifo)
    pipeline.start_program(clock.now())

    _tick_until_the_encoder_is_stuck(pipeline, clock)
    full_backlog = pipeline.encoder_backlog_frames
    dropped = pipeline.clock_stats.dropped_program_frames
    problems = pipeline.health().problems
    started = time.monotonic()
    pipeline.stop(is_ending=True)
    stop_s = time.monotonic() - started

    assert full_backlog == ENCODER_QUEUE_FRAMES
    assert dropped > 0
    assert any(problem.startswith("encoder: behind") for problem in problems)
    assert stop_s < MIXER_STOP_TIMEOUT_S + stop_timeout_s
    # the disk comes back: the encoder finishes the queue and still ends the playlist
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        _wait_until(lambda: "#EXT-X-ENDLIST" in (pipeline.live_playlist() or ""))
    finally:
        os.close(reader)
