"""A space's media pipeline: the mixer thread on its own absolute-deadline clock, and the encoder
thread that makes the program's HLS segments, recording and progressive streams.

Media plane. Neither thread ever waits on the event loop that runs ICE/DTLS and HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from rostra.media.adts import adts_frame
from rostra.media.audio import FRAME_DURATION_S, SAMPLE_RATE_HZ, Pcm
from rostra.media.broadcast import Broadcast
from rostra.media.encode import (
    CHANNELS,
    OPUS_PRE_SKIP_SAMPLES,
    AacEncoder,
    OpusEncoder,
)
from rostra.media.hls.packager import HlsPackager
from rostra.media.mixer import Mixer
from rostra.media.ogg import OggPager, opus_head, opus_tags
from rostra.media.remux import remux_recording

log = logging.getLogger(__name__)

# A mixer this late has lost real time (machine stalled): skip ahead rather than burst.
RESYNC_AFTER_S = 0.2
ENCODER_QUEUE_FRAMES = 100
OGG_PACKETS_PER_PAGE = 2
OGG_SERIAL = 0x526F7374
STOP_TIMEOUT_S = 10.0


class VoiceSource(Protocol):
    def pop(self) -> Pcm | None:
        """The next 20 ms of this speaker, or None when silent, not started or stalled."""


ReturnSink = Callable[[Pcm], None]


@dataclass(slots=True)
class ClockStats:
    """Lateness of mixer ticks against their absolute deadlines."""

    ticks: int = 0
    late_ticks: int = 0
    max_lateness_s: float = 0.0
    resyncs: int = 0
    dropped_program_frames: int = 0


class SpacePipeline:
    def __init__(
        self,
        space_id: str,
        directory: Path,
        loop: asyncio.AbstractEventLoop,
        *,
        window_segments: int,
    ) -> None:
        self.space_id = space_id
        self.directory = directory
        self._loop = loop
        self._window = window_segments
        self._lock = threading.Lock()
        self._voices: dict[str, VoiceSource] = {}
        self._returns: dict[str, ReturnSink] = {}
        self._mixer = Mixer()
        self._running = threading.Event()
        self._program_queue: queue.Queue[Pcm | None] | None = None
        self._encoder_thread: threading.Thread | None = None
        self._packager: HlsPackager | None = None
        self.clock_stats = ClockStats()
        self.adts = Broadcast()
        self.opus = Broadcast()
        self._running.set()
        self._mixer_thread = threading.Thread(
            target=self._run_mixer, name=f"mixer-{space_id}", daemon=True
        )
        self._mixer_thread.start()

    # --- stage -------------------------------------------------------------------------------
    def add_voice(self, speaker: str, source: VoiceSource, send_return: ReturnSink) -> None:
        with self._lock:
            self._voices[speaker] = source
            self._returns[speaker] = send_return

    def remove_voice(self, speaker: str) -> None:
        with self._lock:
            self._voices.pop(speaker, None)
            self._returns.pop(speaker, None)

    @property
    def voice_count(self) -> int:
        return len(self._voices)

    @property
    def is_on_air(self) -> bool:
        return self._program_queue is not None

    def live_playlist(self) -> str | None:
        return self._packager.live_text if self._packager is not None else None

    # --- program -----------------------------------------------------------------------------
    def start_program(self, started_at: datetime) -> None:
        """Go live: from the next tick on, the program is encoded, packaged and recorded."""
        if self._program_queue is not None:
            return
        self._packager = HlsPackager(
            self.directory, window_segments=self._window, started_at=started_at
        )
        program_queue: queue.Queue[Pcm | None] = queue.Queue(maxsize=ENCODER_QUEUE_FRAMES)
        self._encoder_thread = threading.Thread(
            target=self._run_encoder,
            args=(program_queue, self._packager),
            name=f"encoder-{self.space_id}",
            daemon=True,
        )
        self._encoder_thread.start()
        self._program_queue = program_queue

    def stop(self) -> None:
        """End: stop the clock, flush the encoder, close the recording and the streams.

        Blocking (joins threads, writes files): call it from a worker thread, not the loop.
        """
        self._running.clear()
        self._mixer_thread.join(timeout=STOP_TIMEOUT_S)
        if self._program_queue is not None and self._encoder_thread is not None:
            self._program_queue.put(None)
            self._encoder_thread.join(timeout=STOP_TIMEOUT_S * 6)
        self._loop.call_soon_threadsafe(self.adts.close)
        self._loop.call_soon_threadsafe(self.opus.close)

    # --- threads -----------------------------------------------------------------------------
    def _run_mixer(self) -> None:
        stats = self.clock_stats
        deadline = time.monotonic()
        while self._running.is_set():
            self._tick()
            stats.ticks += 1
            deadline += FRAME_DURATION_S
            lateness = time.monotonic() - deadline
            if lateness > 0:
                stats.late_ticks += 1
                stats.max_lateness_s = max(stats.max_lateness_s, lateness)
                if lateness > RESYNC_AFTER_S:
                    stats.resyncs += 1
                    deadline = time.monotonic()
            else:
                time.sleep(-lateness)

    def _tick(self) -> None:
        with self._lock:
            voices = dict(self._voices)
            returns = dict(self._returns)
        frames = {speaker: source.pop() for speaker, source in voices.items()}
        result = self._mixer.mix(frames, list(returns))
        for speaker, sink in returns.items():
            sink(result.mix_minus[speaker])
        program_queue = self._program_queue
        if program_queue is None:
            return
        try:
            program_queue.put_nowait(result.program)
        except queue.Full:
            self.clock_stats.dropped_program_frames += 1

    def _run_encoder(self, program_queue: queue.Queue[Pcm | None], packager: HlsPackager) -> None:
        aac, opus = AacEncoder(), OpusEncoder()
        pager = OggPager(OGG_SERIAL)
        header = pager.page(
            [
                opus_head(
                    channels=CHANNELS,
                    pre_skip=OPUS_PRE_SKIP_SAMPLES,
                    input_sample_rate_hz=SAMPLE_RATE_HZ,
                )
            ],
            granule_position=0,
            is_first=True,
        ) + pager.page([opus_tags("rostra")], granule_position=0)
        self._loop.call_soon_threadsafe(self.opus.set_header, header)
        pending: list[bytes] = []
        granule = 0
        while True:
            pcm = program_queue.get()
            if pcm is None:
                break
            for packet in aac.encode(pcm):
                packager.add(packet)
                chunk = adts_frame(packet.data, sample_rate_hz=SAMPLE_RATE_HZ, channels=CHANNELS)
                self._loop.call_soon_threadsafe(self.adts.publish, chunk)
            for packet in opus.encode(pcm):
                pending.append(packet.data)
                granule += packet.duration_samples
                if len(pending) >= OGG_PACKETS_PER_PAGE:
                    page = pager.page(pending, granule_position=granule)
                    pending = []
                    self._loop.call_soon_threadsafe(self.opus.publish, page)
        for packet in aac.flush():
            packager.add(packet)
        packager.finish()
        try:
            remux_recording(self.directory)
        except Exception:
            log.exception("recording remux failed", extra={"space": self.space_id})
