"""Icecast source ingest: an MP3, AAC (ADTS) or Ogg/Opus byte stream decoded as it arrives into
one voice of the mixer, behind a jitter margin.

Media plane. The web route feeds bytes from the event loop into a bounded `BytePipe`; a decoder
thread reads it with PyAV, resamples to 48 kHz mono and fills a `SourceVoice`, which the mixer pops
every 20 ms. Nothing here knows HTTP or the stage.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass

import av
import numpy as np

from rostra.media.audio import FRAME_DURATION_S, FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm

log = logging.getLogger(__name__)

# Content-Type (without parameters) -> PyAV demuxer
SOURCE_FORMATS = {
    "audio/mpeg": "mp3",
    "audio/aac": "aac",
    "audio/aacp": "aac",
    "audio/ogg": "ogg",
    "application/ogg": "ogg",
}
# playback starts (and restarts after an underrun) once this much is buffered: TCP delivers a
# source in bursts. Each underrun widens the margin by a step, up to the most: an Ogg muxer
# flushes a page a second, a source behind a slow link comes in bigger bursts still.
JITTER_MARGIN_S = 0.3
JITTER_MARGIN_STEP_S = 0.2
MAX_JITTER_MARGIN_S = 1.5
# played this long without an underrun, the margin narrows by a step (never below where it began)
# and what stayed buffered beyond it all that time is dropped: a bad minute of network does not
# add its delay to the rest of the show
MARGIN_RELAX_S = 30.0
# at most this much is buffered: a source sending ahead of real time (a file sent as fast as the
# link goes) waits for room, so it is paced to real time by TCP and no audio is lost; only a
# voice nobody plays (the mixer stopped) drops its oldest frames after PUSH_WAIT_S
MAX_BUFFER_S = 3.0
PUSH_WAIT_S = 0.5
# bytes the decoder may have waiting: about 4 s of 512 kbit/s
MAX_PIPE_BYTES = 256 * 1024
# the highest bitrate a source may use (Opus tops out at 510 kbit/s), and the slack for the probe
MAX_SOURCE_BYTES_PER_S = 512_000 // 8
NOT_AUDIO_SLACK_BYTES = 128 * 1024
# the demuxer reads this much before it decides on the stream's parameters
PROBE_BYTES = 32 * 1024
# this many packets in a row that do not decode: the stream is not audio
MAX_BAD_PACKETS = 50
DECODER_JOIN_S = 2.0


class BytePipe:
    """Bytes from the event loop to the decoder thread; bounded, never blocks the writer."""

    def __init__(self, max_bytes: int = MAX_PIPE_BYTES) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._pending = 0
        self._fed = 0
        self._max_bytes = max_bytes
        self._closed = False
        self._ready = threading.Condition()

    @property
    def is_full(self) -> bool:
        return self._pending >= self._max_bytes

    @property
    def read_bytes(self) -> int:
        """Bytes the decoder has taken so far."""
        return self._fed - self._pending

    def feed(self, data: bytes) -> None:
        with self._ready:
            if self._closed:
                return
            self._chunks.append(data)
            self._pending += len(data)
            self._fed += len(data)
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes, waiting for some; b"" once closed and drained (end of stream)."""
        with self._ready:
            while not self._chunks and not self._closed:
                self._ready.wait()
            if not self._chunks:
                return b""
            chunk = self._chunks.popleft()
            if 0 <= size < len(chunk):
                chunk, rest = chunk[:size], chunk[size:]
                self._chunks.appendleft(rest)
            self._pending -= len(chunk)
            return chunk


@dataclass(slots=True)
class SourceStats:
    frames_decoded: int = 0
    frames_dropped: int = 0
    underruns: int = 0


class SourceVoice:
    """The decoded source as the mixer sees it: 20 ms frames behind a jitter margin."""

    def __init__(
        self, *, margin_s: float = JITTER_MARGIN_S, max_buffer_s: float = MAX_BUFFER_S
    ) -> None:
        self._margin_frames = max(1, round(margin_s / FRAME_DURATION_S))
        self._least_margin_frames = self._margin_frames
        self._relax_frames = round(MARGIN_RELAX_S / FRAME_DURATION_S)
        # frames played since the last underrun or relaxation, and the fewest buffered meanwhile
        self._steady_frames = 0
        self._least_buffered = 0
        self._margin_step_frames = round(JITTER_MARGIN_STEP_S / FRAME_DURATION_S)
        self._max_margin_frames = max(
            self._margin_frames, round(MAX_JITTER_MARGIN_S / FRAME_DURATION_S)
        )
        self._frames: collections.deque[Pcm] = collections.deque(
            maxlen=max(self._margin_frames, round(max_buffer_s / FRAME_DURATION_S))
        )
        self._is_playing = False
        self._is_ending = False
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self.stats = SourceStats()

    @property
    def buffered_frames(self) -> int:
        return len(self._frames)

    @property
    def margin_s(self) -> float:
        return self._margin_frames * FRAME_DURATION_S

    @property
    def decoded_s(self) -> float:
        return self.stats.frames_decoded * FRAME_DURATION_S

    def push(self, frame: Pcm) -> None:
        """Add a frame, waiting (bounded) for the mixer to make room: the decoder's pace."""
        with self._room:
            self._room.wait_for(self._has_room, timeout=PUSH_WAIT_S)
            if len(self._frames) == self._frames.maxlen:
                self.stats.frames_dropped += 1  # the deque drops the oldest
            self._frames.append(frame)
            self.stats.frames_decoded += 1

    def pop(self) -> Pcm | None:
        with self._lock:
            if not self._is_playing:
                if len(self._frames) < self._margin_frames:
                    return None
                self._is_playing = True
                self._steady_frames = 0
                self._least_buffered = len(self._frames)
            if not self._frames:
                if self._is_ending:
                    return None
                self._is_playing = False
                self.stats.underruns += 1
                self._margin_frames = min(
                    self._margin_frames + self._margin_step_frames, self._max_margin_frames
                )
                return None
            frame = self._frames.popleft()
            self._room.notify()
            self._steady_frames += 1
            self._least_buffered = min(self._least_buffered, len(self._frames))
            if self._steady_frames >= self._relax_frames and not self._is_ending:
                self._relax()
            return frame

    def _relax(self) -> None:
        """Narrow the margin by a step and drop the standing excess (called holding the lock)."""
        self._margin_frames = max(
            self._least_margin_frames, self._margin_frames - self._margin_step_frames
        )
        for _ in range(self._least_buffered - self._margin_frames):
            self._frames.popleft()
            self.stats.frames_dropped += 1
        self._steady_frames = 0
        self._least_buffered = len(self._frames)

    def drain(self) -> None:
        """Play what is buffered down to the last frame (the source has ended); a push waits
        for room no more."""
        with self._room:
            self._is_playing = True
            self._is_ending = True
            self._room.notify_all()

    def _has_room(self) -> bool:
        return len(self._frames) < (self._frames.maxlen or 0) or self._is_ending


class SourceDecoder:
    """The thread that demuxes and decodes the pipe into the voice; it ends at the end of the
    stream or on the first sign that the stream is not audio, and says why in `reason`."""

    def __init__(self, label: str, demuxer: str, pipe: BytePipe, voice: SourceVoice) -> None:
        self._label = label
        self._demuxer = demuxer
        self._pipe = pipe
        self._voice = voice
        self._carry: Pcm = np.zeros(0, dtype=np.float32)
        self.reason = ""
        self._thread = threading.Thread(target=self._run, name=f"source-{label}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def is_done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout_s: float = DECODER_JOIN_S) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self.reason = self._decode()
        except (av.FFmpegError, ValueError, OSError) as error:
            self.reason = f"not audio ({self._demuxer}): {type(error).__name__}: {error}"[:200]
        except Exception as error:  # a decoder bug ends this source: logged, never unnoticed
            self.reason = f"decoder failed: {type(error).__name__}: {error}"[:200]
            log.exception("source decoder failed")
        finally:
            self._pipe.close()  # the writer sees the end too

    def _decode(self) -> str:
        options = {"probesize": str(PROBE_BYTES), "analyzeduration": "0"}
        with av.open(self._pipe, mode="r", format=self._demuxer, options=options) as container:
            if not container.streams.audio:
                return f"no audio stream in the {self._demuxer} data"
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
            bad_packets = 0
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    bad_packets += 1
                    if bad_packets >= MAX_BAD_PACKETS:
                        return f"not audio ({self._demuxer}): {bad_packets} packets do not decode"
                    continue
                bad_packets = 0
                for frame in frames:
                    self._add(resampler.resample(frame))
            self._add(resampler.resample(None))
        return "end of stream"

    def _add(self, frames: list[av.AudioFrame]) -> None:
        parts = [self._carry] + [f.to_ndarray().reshape(-1).astype(np.float32) for f in frames]
        samples = np.concatenate(parts)
        whole = samples.size - samples.size % FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            self._voice.push(samples[start : start + FRAME_SAMPLES].copy())
        self._carry = samples[whole:]


class SourceFeed:
    """One source from first byte to end: the pipe, the decoder thread and the voice, and the
    bounds a source must keep (it must decode as audio at a plausible bitrate)."""

    def __init__(self, label: str, demuxer: str) -> None:
        self.pipe = BytePipe()
        self.voice = SourceVoice()
        self.decoder = SourceDecoder(label, demuxer, self.pipe, self.voice)
        self.received_bytes = 0
        self.decoder.start()

    def feed(self, data: bytes) -> str | None:
        """Hand bytes to the decoder; the reason to end the source, if there is one."""
        if self.decoder.is_done:
            return self.decoder.reason or "decoder ended"
        self.received_bytes += len(data)
        # what the decoder has taken, not what was received: a source ahead of real time waits
        # in the pipe while the voice is full
        taken = self.pipe.read_bytes
        if taken > NOT_AUDIO_SLACK_BYTES + self.voice.decoded_s * MAX_SOURCE_BYTES_PER_S:
            return (
                f"{taken} bytes gave {self.voice.decoded_s:.1f} s of audio:"
                f" not audio, or above {MAX_SOURCE_BYTES_PER_S * 8 // 1000} kbit/s"
            )
        self.pipe.feed(data)
        return None

    def stop(self) -> None:
        """Close the pipe and let a decoder waiting for room go on at once: the thread ends
        after the bytes already in the pipe (bounded), without blocking the caller."""
        self.pipe.close()
        self.voice.drain()

    def end(self) -> str:
        """Stop, and wait (bounded) for the decoder; why it ended."""
        self.stop()
        self.decoder.join()
        return self.decoder.reason or "decoder still running"
