"""Audio for the command-line speaker in constant memory: sources that make one 20 ms frame at a
time (a tone with a running phase, a file decoded lazily, an array) and a WAV writer for the
returned mix-minus that appends as frames arrive. Rehearsals run `rostra speak` for hours.

Rehearsal plane (a client).
"""

from __future__ import annotations

import math
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 48_000
FRAME_SAMPLES = 960
FRAME_DURATION_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
TONE_LEVEL = 0.25
WAV_SAMPLE_BYTES = 2
# the return WAV lags the wall clock by more than this (a reconnect, lost packets): pad silence
MAX_RETURN_LAG_S = 0.25

Frame = npt.NDArray[np.float32]


class FrameSource(Protocol):
    """Mono float32 audio at 48 kHz, one frame of FRAME_SAMPLES at a time."""

    @property
    def frames_read(self) -> int:
        """Frames handed out so far (the position: a re-publish continues from here)."""

    def read_frame(self) -> Frame | None:
        """The next frame (the last one padded with silence), or None at the end."""


def _frame_count(duration_s: float | None) -> int | None:
    return None if duration_s is None else math.ceil(duration_s * SAMPLE_RATE_HZ / FRAME_SAMPLES)


class ToneSource:
    """A sine tone made frame by frame; the phase runs on, so frames join without a click."""

    def __init__(
        self, frequency_hz: float, duration_s: float | None, *, level: float = TONE_LEVEL
    ) -> None:
        self._step = 2 * math.pi * frequency_hz / SAMPLE_RATE_HZ
        self._ramp = self._step * np.arange(FRAME_SAMPLES, dtype=np.float64)
        self._level = level
        self._phase = 0.0
        self._frames_total = _frame_count(duration_s)
        self.frames_read = 0

    def read_frame(self) -> Frame | None:
        if self._frames_total is not None and self.frames_read >= self._frames_total:
            return None
        frame = (self._level * np.sin(self._phase + self._ramp)).astype(np.float32)
        self._phase = (self._phase + self._step * FRAME_SAMPLES) % (2 * math.pi)
        self.frames_read += 1
        return frame


class ArraySource:
    """Frames cut from PCM already in memory (tests and benchmarks)."""

    def __init__(self, pcm: Frame) -> None:
        self._pcm = pcm
        self.frames_read = 0

    @property
    def duration_s(self) -> float:
        return math.ceil(self._pcm.size / FRAME_SAMPLES) * FRAME_DURATION_S

    def read_frame(self) -> Frame | None:
        start = self.frames_read * FRAME_SAMPLES
        if start >= self._pcm.size:
            return None
        self.frames_read += 1
        return _padded(self._pcm[start : start + FRAME_SAMPLES])


class FileSource:
    """Any audio file PyAV reads, decoded and resampled as frames are asked for: only a decoded
    packet or two is ever held, whatever the file's length."""

    def __init__(self, path: Path, *, duration_s: float | None = None) -> None:
        self._container = av.open(str(path))
        self._decoded: Iterator[av.AudioFrame] = self._container.decode(audio=0)
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
        self._buffer: Frame = np.zeros(0, dtype=np.float32)
        self._is_drained = False
        self._frames_total = _frame_count(duration_s)
        self.frames_read = 0

    def _fill(self) -> None:
        while self._buffer.size < FRAME_SAMPLES and not self._is_drained:
            try:
                frame: av.AudioFrame | None = next(self._decoded)
            except StopIteration:
                frame = None
                self._is_drained = True
                self._container.close()
            parts = [self._buffer]
            for out in self._resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1).astype(np.float32))
            self._buffer = np.concatenate(parts)

    def read_frame(self) -> Frame | None:
        if self._frames_total is not None and self.frames_read >= self._frames_total:
            return None
        self._fill()
        if self._buffer.size == 0:
            return None
        chunk, self._buffer = self._buffer[:FRAME_SAMPLES], self._buffer[FRAME_SAMPLES:]
        self.frames_read += 1
        return _padded(chunk)

    def close(self) -> None:
        if not self._is_drained:
            self._is_drained = True
            self._container.close()


class ThenSilence:
    """A source followed by some silence (so the last words are heard before leaving)."""

    def __init__(self, source: FrameSource, silence_s: float) -> None:
        self._source = source
        self._silence_frames = _frame_count(silence_s) or 0
        self._silence_read = 0

    @property
    def frames_read(self) -> int:
        return self._source.frames_read + self._silence_read

    @property
    def source_frames_read(self) -> int:
        return self._source.frames_read

    def read_frame(self) -> Frame | None:
        frame = self._source.read_frame()
        if frame is not None:
            return frame
        if self._silence_read >= self._silence_frames:
            return None
        self._silence_read += 1
        return np.zeros(FRAME_SAMPLES, dtype=np.float32)


def _padded(chunk: Frame) -> Frame:
    if chunk.size == FRAME_SAMPLES:
        return chunk.astype(np.float32, copy=False)
    frame = np.zeros(FRAME_SAMPLES, dtype=np.float32)
    frame[: chunk.size] = chunk
    return frame


def tone(frequency_hz: float, seconds: float) -> Frame:
    """A whole tone in memory, for short test signals (a long one: use ToneSource)."""
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return (TONE_LEVEL * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def load_pcm(path: Path) -> Frame:
    """A whole file in memory as mono float32 at 48 kHz (short clips; a long one: FileSource)."""
    source = FileSource(path)
    frames = []
    while (frame := source.read_frame()) is not None:
        frames.append(frame)
    return np.concatenate(frames) if frames else np.zeros(0, dtype=np.float32)


class ReturnRecorder:
    """Writes the returned audio to a mono 16-bit WAV as it arrives (the header is kept valid
    after every write). When it lags the wall clock by more than MAX_RETURN_LAG_S — the
    connection was lost and re-made, or packets were lost — it writes that much silence first,
    so a second into the file is a second into the run."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 (kept open for the whole run)
        self._wav.setnchannels(1)
        self._wav.setsampwidth(WAV_SAMPLE_BYTES)
        self._wav.setframerate(SAMPLE_RATE_HZ)
        self._first_s: float | None = None
        self.samples_written = 0
        self.silence_written = 0

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        now = self._clock()
        if self._first_s is None:
            self._first_s = now - samples.size / SAMPLE_RATE_HZ
        due = int((now - self._first_s) * SAMPLE_RATE_HZ) - samples.size
        lag = due - self.samples_written
        if lag > MAX_RETURN_LAG_S * SAMPLE_RATE_HZ:
            self._write_silence(lag)
        self._wav.writeframes(samples.astype(np.int16, copy=False).tobytes())
        self.samples_written += samples.size

    def _write_silence(self, samples: int) -> None:
        second = bytes(SAMPLE_RATE_HZ * WAV_SAMPLE_BYTES)
        left = samples
        while left > 0:
            now = min(left, SAMPLE_RATE_HZ)
            self._wav.writeframes(second[: now * WAV_SAMPLE_BYTES])
            left -= now
        self.samples_written += samples
        self.silence_written += samples

    def close(self) -> None:
        self._wav.close()
