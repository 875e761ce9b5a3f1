"""A progressive-stream listener for benchmarks: reads /stream.aac (ADTS) or /stream.opus (Ogg)
as the bytes arrive, splits frames or pages itself and decodes each at once, so nothing waits
for a probe or a demuxer buffer; every decoded chunk carries the wall-clock time its bytes came.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import av
import httpx
import numpy as np
import numpy.typing as npt

from rostra.media.opus import OpusDecoder

ADTS_HEADER_BYTES = 7
OGG_HEADER_BYTES = 27
OGG_CAPTURE = b"OggS"
OGG_LACING_CONTINUES = 255
OPUS_HEADER_PACKETS = 2  # OpusHead, OpusTags (RFC 7845 §3)
READ_TIMEOUT_S = 10.0

Pcm = npt.NDArray[np.float32]
ChunkSink = Callable[[Pcm, float], None]


class AdtsSplitter:
    """Bytes in, whole ADTS frames (header included) out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        while len(self._buffer) >= ADTS_HEADER_BYTES:
            if self._buffer[0] != 0xFF or self._buffer[1] & 0xF0 != 0xF0:
                sync = self._buffer.find(b"\xff", 1)
                del self._buffer[: sync if sync > 0 else len(self._buffer)]
                continue
            length = (self._buffer[3] & 0x03) << 11 | self._buffer[4] << 3 | self._buffer[5] >> 5
            if length < ADTS_HEADER_BYTES:
                del self._buffer[:1]
                continue
            if len(self._buffer) < length:
                break
            frames.append(bytes(self._buffer[:length]))
            del self._buffer[:length]
        return frames


class OggSplitter:
    """Bytes in, whole Ogg packets out (RFC 3533 pages and lacing)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._packet = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        packets: list[bytes] = []
        while len(self._buffer) >= OGG_HEADER_BYTES:
            if not self._buffer.startswith(OGG_CAPTURE):
                capture = self._buffer.find(OGG_CAPTURE, 1)
                del self._buffer[: capture if capture > 0 else len(self._buffer) - 3]
                continue
            segments = self._buffer[26]
            header = OGG_HEADER_BYTES + segments
            if len(self._buffer) < header:
                break
            lacing = self._buffer[OGG_HEADER_BYTES:header]
            if len(self._buffer) < header + sum(lacing):
                break
            position = header
            for value in lacing:
                self._packet += self._buffer[position : position + value]
                position += value
                if value < OGG_LACING_CONTINUES:
                    packets.append(bytes(self._packet))
                    self._packet.clear()
            del self._buffer[:position]
        return packets


class _AacDecoder:
    def __init__(self) -> None:
        self._context: Any = av.CodecContext.create("aac", "r")

    def decode(self, frame: bytes) -> Pcm:
        chunks = [f.to_ndarray()[0] for f in self._context.decode(av.Packet(frame))]
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


class _OpusDecoder:
    def __init__(self) -> None:
        self._decoder = OpusDecoder(channels=1)
        self._headers_left = OPUS_HEADER_PACKETS

    def decode(self, packet: bytes) -> Pcm:
        if self._headers_left:
            self._headers_left -= 1
            return np.zeros(0, np.float32)
        return self._decoder.decode(packet)


class ProgressiveListener(threading.Thread):
    """Listens to one progressive stream until stopped or `max_s` has passed."""

    def __init__(self, url: str, *, on_chunk: ChunkSink, max_s: float) -> None:
        super().__init__(name=f"listener-{url.rsplit('/', 1)[-1]}", daemon=True)
        self.url = url
        self._on_chunk = on_chunk
        self._max_s = max_s
        self._stop_event = threading.Event()
        self.first_audio_at: float | None = None
        self.bytes_read = 0
        self.error: str | None = None
        is_aac = url.endswith(".aac")
        self._splitter = AdtsSplitter() if is_aac else OggSplitter()
        self._decoder = _AacDecoder() if is_aac else _OpusDecoder()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        deadline = time.monotonic() + self._max_s
        timeout = httpx.Timeout(READ_TIMEOUT_S)
        try:
            with httpx.stream("GET", self.url, timeout=timeout) as response:
                response.raise_for_status()
                for data in response.iter_raw():
                    arrived_at = time.time()
                    self.bytes_read += len(data)
                    for unit in self._splitter.feed(data):
                        pcm = self._decoder.decode(unit)
                        if pcm.size:
                            self.first_audio_at = self.first_audio_at or arrived_at
                            self._on_chunk(pcm, arrived_at)
                    if self._stop_event.is_set() or time.monotonic() > deadline:
                        return
        except (httpx.HTTPError, av.FFmpegError, ValueError) as error:
            self.error = f"{type(error).__name__}: {error}"
