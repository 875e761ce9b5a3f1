"""The command-line speaker finds its WHIP endpoint and ICE servers from the server, never from a
public default; it makes and records audio in constant memory, however long it runs; it waits
longer and longer, with jitter, between attempts to publish again."""

from __future__ import annotations

import itertools
import tracemalloc
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rostra.rehearse.frames import (
    FRAME_SAMPLES,
    SAMPLE_RATE_HZ,
    FileSource,
    ReturnRecorder,
    ToneSource,
    tone,
)
from rostra.rehearse.speaker import Backoff, SpeakError, parse_ice_links, whip_target


def test_invite_link_gives_the_whip_endpoint_and_token() -> None:
    target = whip_target("https://audio.example.org/speak/abcdefgh1234?invite=tok.en.x")
    assert target.endpoint == "https://audio.example.org/whip/abcdefgh1234"
    assert target.token == "tok.en.x"
    host = whip_target("http://127.0.0.1:8080/host/abcdefgh1234?token=h.o.st")
    assert host.token == "h.o.st"
    with pytest.raises(SpeakError, match="not an invite link"):
        whip_target("http://127.0.0.1:8080/listen/abcdefgh1234")


def test_ice_servers_come_from_the_whip_link_header() -> None:
    header = (
        '<stun:stun.example.org:3478>; rel="ice-server", '
        '<turn:turn.example.org:3478>; rel="ice-server"; username="u"; credential="p"; '
        'credential-type="password", <https://example.org/x>; rel="other"'
    )
    servers = parse_ice_links(header)
    assert [s.urls for s in servers] == ["stun:stun.example.org:3478", "turn:turn.example.org:3478"]
    assert (servers[1].username, servers[1].credential) == ("u", "p")
    assert parse_ice_links("") == []


HOUR_S = 3600
FRAMES_PER_HOUR = HOUR_S * SAMPLE_RATE_HZ // FRAME_SAMPLES


def peak_allocated_bytes(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_hour_of_tone_is_made_in_constant_memory_with_a_running_phase() -> None:
    source = ToneSource(330, HOUR_S)

    def drain() -> int:
        frames = 0
        while source.read_frame() is not None:
            frames += 1
        return frames

    assert peak_allocated_bytes(drain) < 1_000_000
    assert source.frames_read == FRAMES_PER_HOUR
    again = ToneSource(330, 2.0)
    frames = np.concatenate([again.read_frame() for _ in range(100)])  # type: ignore[misc]
    np.testing.assert_allclose(frames, tone(330, 2.0), atol=1e-5)  # no click between frames
    assert again.read_frame() is None


def test_a_long_file_is_decoded_as_it_is_sent_not_up_front(tmp_path: Path) -> None:
    minutes = 3
    pcm = tone(440, 60.0)
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE_HZ)
        for _ in range(minutes):
            out.writeframes((pcm * 32_767).astype(np.int16).tobytes())
    del pcm
    read: list[int] = []
    firsts: list[np.ndarray] = []

    def stream() -> None:
        source = FileSource(path)
        firsts.append(source.read_frame())  # type: ignore[arg-type]
        while source.read_frame() is not None:
            pass
        read.append(source.frames_read)

    # the whole file as float32 would be 34 MB; a streaming source holds a packet or two
    assert peak_allocated_bytes(stream) < 2_000_000
    assert read == [minutes * 60 * SAMPLE_RATE_HZ // FRAME_SAMPLES]
    np.testing.assert_allclose(firsts[0], tone(440, 0.02), atol=1e-4)
    limited = FileSource(path, duration_s=1.0)
    frames = 0
    while limited.read_frame() is not None:
        frames += 1
    assert frames == 50
    limited.close()


class ManualClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_the_return_is_written_as_it_arrives_and_a_gap_becomes_silence(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "return.wav"
    recorder = ReturnRecorder(path, clock=clock)
    frame = np.full(FRAME_SAMPLES, 1000, dtype=np.int16)
    for _ in range(50):  # one second, on time
        clock.now_s += FRAME_SAMPLES / SAMPLE_RATE_HZ
        recorder.write(frame)
    with wave.open(str(path)) as partial:  # readable mid-run: the header is kept valid
        assert partial.getnframes() == SAMPLE_RATE_HZ
    clock.now_s += 5.0  # the origin was gone for five seconds
    clock.now_s += FRAME_SAMPLES / SAMPLE_RATE_HZ
    recorder.write(frame)

    def an_hour_more() -> None:
        for _ in range(2_000):
            clock.now_s += FRAME_SAMPLES / SAMPLE_RATE_HZ
            recorder.write(frame)

    assert peak_allocated_bytes(an_hour_more) < 500_000
    recorder.close()
    with wave.open(str(path)) as whole:
        samples = np.frombuffer(whole.readframes(whole.getnframes()), dtype=np.int16)
    assert abs(samples.size / SAMPLE_RATE_HZ - (1 + 5 + 0.02 + 40)) < 0.05
    gap = samples[SAMPLE_RATE_HZ : 6 * SAMPLE_RATE_HZ - FRAME_SAMPLES]
    assert np.all(gap == 0)
    assert np.all(samples[-FRAME_SAMPLES:] == 1000)
    assert recorder.silence_written == pytest.approx(5 * SAMPLE_RATE_HZ, abs=FRAME_SAMPLES)


def test_republish_waits_double_each_time_up_to_a_ceiling_with_jitter() -> None:
    delays = list(itertools.islice(Backoff(first_s=0.5, max_s=8.0).delays_s(), 8))
    ceilings = [0.5, 1, 2, 4, 8, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays}) == len(delays), "no jitter"
