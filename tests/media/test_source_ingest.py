"""The Icecast source's decode path without a server: real ffmpeg-made streams through the pipe,
the decoder thread and the voice's jitter margin."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import pytest

from rostra.media.audio import FRAME_DURATION_S, FRAME_SAMPLES
from rostra.media.source_ingest import (
    JITTER_MARGIN_S,
    JITTER_MARGIN_STEP_S,
    MARGIN_RELAX_S,
    MAX_BUFFER_S,
    MAX_PIPE_BYTES,
    NOT_AUDIO_SLACK_BYTES,
    PUSH_WAIT_S,
    SourceFeed,
    SourceVoice,
)

TONE_S = 2.0
CHUNK_BYTES = 4096


def encoded(*args: str) -> bytes:
    command = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=f=440:d={TONE_S}", *args, "-"]
    return subprocess.run(command, capture_output=True, check=True, timeout=30).stdout


def frame(value: float = 0.5) -> np.ndarray:
    return np.full(FRAME_SAMPLES, value, dtype=np.float32)


@pytest.mark.parametrize(
    ("demuxer", "args"),
    [
        ("mp3", ("-ar", "44100", "-c:a", "libmp3lame", "-f", "mp3")),
        ("ogg", ("-ar", "48000", "-ac", "2", "-c:a", "libopus", "-f", "ogg")),
        ("aac", ("-ar", "32000", "-c:a", "aac", "-f", "adts")),
    ],
)
def test_stream_decodes_into_48khz_mono_frames(demuxer: str, args: tuple[str, ...]) -> None:
    data = encoded(*args)
    feed = SourceFeed("test", demuxer)
    for start in range(0, len(data), CHUNK_BYTES):
        assert feed.feed(data[start : start + CHUNK_BYTES]) is None
        while feed.pipe.is_full:
            feed.decoder.join(0.01)
    assert feed.end() == "end of stream"
    # encoder delay and padding give or take a few frames (a wrong rate is 8% off: 0.16 s)
    assert abs(feed.voice.decoded_s - TONE_S) < 0.06, feed.voice.decoded_s
    frames = [feed.voice.pop() for _ in range(feed.voice.buffered_frames)]
    assert all(f is not None and f.shape == (FRAME_SAMPLES,) for f in frames)
    middle = np.concatenate([f for f in frames if f is not None][10:-10])
    tone_rms = 0.125 / np.sqrt(2)  # lavfi's sine is at 1/8 of full scale
    assert abs(float(np.sqrt(np.mean(middle**2))) - tone_rms) < 0.02


def test_bytes_that_are_not_audio_end_the_feed_within_the_bound() -> None:
    rng = np.random.default_rng(7)
    feed = SourceFeed("test", "mp3")
    reason = None
    sent = 0
    while reason is None and sent < 1024 * 1024:
        reason = feed.feed(rng.bytes(CHUNK_BYTES))
        sent += CHUNK_BYTES
        while feed.pipe.is_full and not feed.decoder.is_done:  # as the route waits for room
            feed.decoder.join(0.01)
    feed.end()
    assert reason is not None
    assert "not audio" in reason
    assert sent <= NOT_AUDIO_SLACK_BYTES + MAX_PIPE_BYTES + CHUNK_BYTES
    assert feed.voice.stats.frames_decoded == 0


def test_voice_waits_for_its_margin_and_widens_it_after_an_underrun() -> None:
    voice = SourceVoice()
    margin_frames = round(JITTER_MARGIN_S / FRAME_DURATION_S)
    for _ in range(margin_frames - 1):
        voice.push(frame())
    assert voice.pop() is None  # not yet: bursts are smoothed by the margin
    voice.push(frame())
    played = [voice.pop() for _ in range(margin_frames)]
    assert all(f is not None for f in played)
    assert voice.pop() is None
    assert voice.stats.underruns == 1
    assert voice.margin_s == pytest.approx(JITTER_MARGIN_S + JITTER_MARGIN_STEP_S)


def play_steadily(voice: SourceVoice, seconds: float) -> None:
    """A source at real time: one frame in for each frame the mixer takes."""
    for _ in range(round(seconds / FRAME_DURATION_S)):
        voice.push(frame())
        assert voice.pop() is not None


def test_voice_margin_narrows_back_after_a_steady_stretch() -> None:
    voice = SourceVoice()
    step_frames = round(JITTER_MARGIN_STEP_S / FRAME_DURATION_S)
    for _ in range(2):  # two underruns: the margin widens twice
        while voice.pop() is None:
            voice.push(frame())
        while voice.pop() is not None:
            pass
    widened_frames = round(JITTER_MARGIN_S / FRAME_DURATION_S) + 2 * step_frames
    assert voice.margin_s == pytest.approx(JITTER_MARGIN_S + 2 * JITTER_MARGIN_STEP_S)
    for _ in range(widened_frames):
        voice.push(frame())
    play_steadily(voice, MARGIN_RELAX_S)
    # a step narrower, and the delay the wide margin held is dropped down to the new margin
    assert voice.margin_s == pytest.approx(JITTER_MARGIN_S + JITTER_MARGIN_STEP_S)
    assert voice.buffered_frames == widened_frames - step_frames
    play_steadily(voice, MARGIN_RELAX_S)
    play_steadily(voice, MARGIN_RELAX_S)
    assert voice.margin_s == pytest.approx(JITTER_MARGIN_S)  # never below where it began
    assert voice.buffered_frames == round(JITTER_MARGIN_S / FRAME_DURATION_S)
    assert voice.stats.underruns == 2


def test_voice_paces_a_source_ahead_of_real_time_and_loses_nothing() -> None:
    """A full voice makes the decoder wait for the mixer: a file sent faster than real time is
    played whole, at the mixer's pace."""
    voice = SourceVoice()
    bound = round(MAX_BUFFER_S / FRAME_DURATION_S)
    extra = 5
    decoder = threading.Thread(
        target=lambda: [voice.push(frame(index / 1000)) for index in range(bound + extra)]
    )
    decoder.start()
    deadline = time.monotonic() + 5
    while voice.buffered_frames < bound and time.monotonic() < deadline:
        time.sleep(0.001)
    assert decoder.is_alive(), "the decoder ran past a full voice"
    played = []
    while len(played) < bound + extra and time.monotonic() < deadline:
        popped = voice.pop()
        if popped is not None:
            played.append(float(popped[0]))
        time.sleep(0.001)  # the mixer's tick, faster
    decoder.join(1)
    assert voice.stats.frames_dropped == 0
    assert played == pytest.approx([index / 1000 for index in range(bound + extra)])


def test_voice_nobody_plays_drops_its_oldest_frames_past_the_buffer_bound() -> None:
    voice = SourceVoice()
    bound = round(MAX_BUFFER_S / FRAME_DURATION_S)
    started = time.monotonic()
    for index in range(bound + 2):
        voice.push(frame(index / 1000))
    assert time.monotonic() - started >= 2 * PUSH_WAIT_S  # it waited for a mixer first
    assert voice.buffered_frames == bound
    assert voice.stats.frames_dropped == 2
    first = voice.pop()
    assert first is not None
    assert first[0] == pytest.approx(2 / 1000)


def test_voice_plays_out_what_is_left_when_the_source_ends() -> None:
    voice = SourceVoice()
    voice.push(frame())
    voice.drain()
    assert voice.pop() is not None
    assert voice.pop() is None
    assert voice.stats.underruns == 0
