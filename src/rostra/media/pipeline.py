"""A space's media pipeline, supervised: the mixer on its own absolute-deadline clock, and the
encoder thread that makes the program's HLS segments, recording and progressive streams.

Media plane. Neither thread ever waits on the event loop that runs ICE/DTLS and HTTP; a fault in
any part is caught, logged and shown in `health()`, and never ends a thread or the process.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from rostra.clock import Clock, SystemClock, iso_utc
from rostra.media.adts import adts_frame
from rostra.media.audio import FRAME_DURATION_S, SAMPLE_RATE_HZ, Pcm
from rostra.media.broadcast import Broadcast
from rostra.media.captions.worker import CaptionWorker
from rostra.media.codecs import CHANNELS, OPUS_PRE_SKIP_SAMPLES, EncodedPacket
from rostra.media.encode import AacEncoder, OpusEncoder
from rostra.media.health import FaultLog, PipelineHealth
from rostra.media.hls.packager import HlsPackager
from rostra.media.hls.rendition import OPUS_RENDITION
from rostra.media.mixer import Mixer
from rostra.media.ogg import OggPager, opus_head, opus_tags

log = logging.getLogger(__name__)

# A mixer this late has lost real time (machine stalled): skip ahead rather than burst.
RESYNC_AFTER_S = 0.2
# Full: the newest program frame is dropped (and counted); the encoder is behind by 2 s.
ENCODER_QUEUE_FRAMES = 100
OGG_PACKETS_PER_PAGE = 2
OGG_SERIAL = 0x526F7374
MIXER_STOP_TIMEOUT_S = 1.0
# the encoder's backlog (2 s of audio) and the last writes fit well within this
ENCODER_STOP_TIMEOUT_S = 5.0
# on air with no new segment for this long: the space is degraded (/healthz allows 3 s)
SEGMENT_STALL_S = 3.0


class VoiceSource(Protocol):
    def pop(self) -> Pcm | None:
        """The next 20 ms of this speaker, or None when silent, not started or stalled."""


ReturnSink = Callable[[Pcm], None]


@dataclass(frozen=True, slots=True)
class _Voice:
    source: VoiceSource
    send_return: ReturnSink


@dataclass(frozen=True, slots=True)
class _EndOfProgram:
    is_ending: bool


_ProgramItem = Pcm | _EndOfProgram


@dataclass(slots=True)
class ClockStats:
    """Lateness of mixer ticks against their absolute deadlines."""

    ticks: int = 0
    late_ticks: int = 0
    # late by more than one frame (20 ms): the tick a listener could hear
    late_ticks_over_frame: int = 0
    max_lateness_s: float = 0.0
    resyncs: int = 0
    dropped_program_frames: int = 0


class SpacePipeline:
    """One owner for a space's media threads: it starts them, watches them (`health()`), bounds
    their queue and stops them in bounded time.

    With `is_self_clocked=False` no mixer thread runs and the caller calls `tick()` every 20 ms
    of its own (manual) clock; everything else is the same.
    """

    def __init__(
        self,
        space_id: str,
        directory: Path,
        loop: asyncio.AbstractEventLoop,
        *,
        window_segments: int,
        clock: Clock | None = None,
        is_self_clocked: bool = True,
        stop_timeout_s: float = ENCODER_STOP_TIMEOUT_S,
        has_captions: bool = False,
    ) -> None:
        self.space_id = space_id
        self._has_captions = has_captions
        self.captions: CaptionWorker | None = None
        self.directory = directory
        self._loop = loop
        self._window = window_segments
        self._clock = clock or SystemClock()
        self._stop_timeout_s = stop_timeout_s
        self._faults = FaultLog(space_id, self._clock)
        self._lock = threading.Lock()
        self._voices: dict[str, _Voice] = {}
        # voices the host muted: still drained each tick (their jitter buffers keep time), never
        # mixed, so the next tick's program no longer carries them
        self._muted: set[str] = set()
        self._mixer = Mixer()
        self._stopping = threading.Event()
        self._program_queue: queue.Queue[_ProgramItem] | None = None
        self._encoder_thread: threading.Thread | None = None
        self._packager: HlsPackager | None = None
        self._program_started_at_s = 0.0
        self.clock_stats = ClockStats()
        self.adts = Broadcast()
        self.opus = Broadcast()
        self._mixer_thread: threading.Thread | None = None
        if is_self_clocked:
            self._mixer_thread = threading.Thread(
                target=self._run_mixer, name=f"mixer-{space_id}", daemon=True
            )
            self._mixer_thread.start()

    # --- stage -------------------------------------------------------------------------------
    def add_voice(self, speaker: str, source: VoiceSource, send_return: ReturnSink) -> None:
        with self._lock:
            self._voices[speaker] = _Voice(source, send_return)

    def remove_voice(self, speaker: str) -> None:
        with self._lock:
            self._voices.pop(speaker, None)
            self._muted.discard(speaker)
        self._mixer.forget(speaker)

    def set_muted(self, speaker: str, is_muted: bool) -> None:
        """Take a voice out of the program (and every mix-minus) from the next tick, or put it
        back; the speaker still hears the others."""
        with self._lock:
            if is_muted and speaker in self._voices:
                self._muted.add(speaker)
            else:
                self._muted.discard(speaker)

    @property
    def voice_count(self) -> int:
        return len(self._voices)

    @property
    def mixer_speaker_count(self) -> int:
        """Speakers the mixer keeps state for; follows `voice_count` within one tick."""
        return self._mixer.speaker_count

    @property
    def is_on_air(self) -> bool:
        return self._program_queue is not None and not self._stopping.is_set()

    @property
    def encoder_backlog_frames(self) -> int:
        return self._program_queue.qsize() if self._program_queue is not None else 0

    def live_playlist(self) -> str | None:
        return self._packager.live_text if self._packager is not None else None

    def listed_segment_count(self) -> int:
        return len(self._packager.listed_segments) if self._packager is not None else 0

    def health(self) -> PipelineHealth:
        problems = list(self._faults.problems())
        packager = self._packager
        if not self._stopping.is_set():
            problems += self._thread_problems()
        if packager is not None and self.is_on_air:
            since_s = self._clock.monotonic_s() - (
                packager.last_segment_at_s or self._program_started_at_s
            )
            if since_s > SEGMENT_STALL_S:
                problems.append(f"packager: no segment for {since_s:.0f} s")
        return PipelineHealth(
            is_ok=not problems,
            problems=tuple(problems),
            last_segment_at_s=packager.last_segment_at_s if packager is not None else None,
            segments_lost=packager.segments_lost if packager is not None else 0,
        )

    def _thread_problems(self) -> list[str]:
        threads = {"mixer": self._mixer_thread, "encoder": self._encoder_thread}
        return [
            f"{part}: thread ended"
            for part, thread in threads.items()
            if thread is not None and not thread.is_alive()
        ]

    # --- program -----------------------------------------------------------------------------
    def start_program(self, started_at: datetime) -> None:
        """Go live, or continue after a restart: from the next tick on, the program is encoded,
        packaged and recorded. Segment date-times come from the clock, not from `started_at`."""
        if self._program_queue is not None:
            return
        self._packager = HlsPackager(
            self.directory,
            window_segments=self._window,
            clock=self._clock,
            on_fault=self._faults.record,
        )
        self._program_started_at_s = self._clock.monotonic_s()
        program_queue: queue.Queue[_ProgramItem] = queue.Queue(maxsize=ENCODER_QUEUE_FRAMES)
        opus_packager = HlsPackager(
            self.directory,
            window_segments=self._window,
            clock=self._clock,
            on_fault=self._faults.record,
            rendition=OPUS_RENDITION,
            first_sequence=self._packager.next_sequence,
            dated_by=self._packager,
        )
        if self._has_captions:
            packager = self._packager
            self.captions = CaptionWorker(
                self.directory,
                first_sequence=packager.next_sequence,
                window_segments=self._window,
                anchor=lambda: packager.anchor,
            )
        encoder = _ProgramEncoder(self, self._packager, opus_packager, self.captions)
        self._encoder_thread = threading.Thread(
            target=encoder.run,
            args=(program_queue,),
            name=f"encoder-{self.space_id}",
            daemon=True,
        )
        self._encoder_thread.start()
        self._program_queue = program_queue
        log.info(
            "program started", extra={"space": self.space_id, "started_at": iso_utc(started_at)}
        )

    def stop(self, *, is_ending: bool) -> None:
        """Stop the clock, flush the encoder, close the streams, in bounded time. `is_ending`:
        the space ended, so the live playlist gets `EXT-X-ENDLIST` and the replay playlist is
        written; otherwise (suspend) the next start continues the live playlist.

        Blocking (joins threads, writes files) for at most MIXER_STOP_TIMEOUT_S +
        `stop_timeout_s`, plus the captions' last utterance (bounded, see CaptionWorker.stop)
        when they are on: call it from a worker thread, not the loop. No remux here: the origin
        runs `remux_recording` afterwards, in the background.
        """
        self._stopping.set()
        if self._mixer_thread is not None:
            self._mixer_thread.join(timeout=MIXER_STOP_TIMEOUT_S)
            if self._mixer_thread.is_alive():
                log.warning("mixer thread still running after stop", extra=self._log_fields())
        if self._program_queue is not None and self._encoder_thread is not None:
            self._put_end(self._program_queue, _EndOfProgram(is_ending=is_ending))
            self._encoder_thread.join(timeout=self._stop_timeout_s)
            if self._encoder_thread.is_alive():
                log.warning("encoder thread still running after stop", extra=self._log_fields())
        self.publish(self.adts.close)
        self.publish(self.opus.close)
        if self.captions is not None:  # after the streams: their listeners never wait on it
            self.captions.stop(is_ending=is_ending)

    def _put_end(self, program_queue: queue.Queue[_ProgramItem], end: _EndOfProgram) -> None:
        """Never blocks: a full queue loses its oldest frame to make room for the end."""
        for _ in range(ENCODER_QUEUE_FRAMES + 1):
            try:
                program_queue.put_nowait(end)
                return
            except queue.Full:
                try:
                    program_queue.get_nowait()
                    self.clock_stats.dropped_program_frames += 1
                except queue.Empty:
                    continue
        log.warning("end of program not queued", extra=self._log_fields())

    # --- the mixer ---------------------------------------------------------------------------
    def tick(self) -> None:
        """One 20 ms frame: pop each voice, mix, send each mix-minus, queue the program.
        Never raises: a fault is recorded and the next tick runs as usual."""
        self.clock_stats.ticks += 1
        try:
            self._mix()
        except Exception as error:  # noqa: BLE001 - supervised: recorded, shown in health()
            self._faults.record("mixer", error)

    def _mix(self) -> None:
        with self._lock:
            voices = list(self._voices.items())
            muted = frozenset(self._muted)
        frames: dict[str, Pcm | None] = {}
        for speaker, voice in voices:
            try:
                frame = voice.source.pop()
                frames[speaker] = None if speaker in muted else frame
            except Exception as error:  # noqa: BLE001 - one speaker's fault mutes only them
                frames[speaker] = None
                self._faults.record("voice", error)
        result = self._mixer.mix(frames, [speaker for speaker, _ in voices])
        for speaker, voice in voices:
            try:
                voice.send_return(result.mix_minus[speaker])
            except Exception as error:  # noqa: BLE001 - one speaker's fault mutes only them
                self._faults.record("mix-minus", error)
        program_queue = self._program_queue
        if program_queue is None or self._stopping.is_set():
            return
        try:
            program_queue.put_nowait(result.program)
        except queue.Full:
            self.clock_stats.dropped_program_frames += 1
            self._faults.note("encoder", "behind, program frame dropped")

    def _run_mixer(self) -> None:
        stats = self.clock_stats
        deadline = self._clock.monotonic_s()
        while not self._stopping.is_set():
            self.tick()
            deadline += FRAME_DURATION_S
            lateness = self._clock.monotonic_s() - deadline
            if lateness > 0:
                stats.late_ticks += 1
                if lateness > FRAME_DURATION_S:
                    stats.late_ticks_over_frame += 1
                stats.max_lateness_s = max(stats.max_lateness_s, lateness)
                if lateness > RESYNC_AFTER_S:
                    stats.resyncs += 1
                    deadline = self._clock.monotonic_s()
            else:
                self._stopping.wait(-lateness)

    # --- shared with the encoder -------------------------------------------------------------
    def publish(self, callback: Callable[..., None], *args: object) -> None:
        """Run `callback(*args)` on the event loop; a closed loop is a fault, not a crash."""
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError as error:
            self._faults.record("streams", error)

    def record_fault(self, part: str, error: BaseException) -> None:
        self._faults.record(part, error)

    def _log_fields(self) -> dict[str, object]:
        return {"space": self.space_id}


class _Codec:
    """One encoder, made again after it fails so the next frame is tried with a fresh one."""

    def __init__(
        self, part: str, make: Callable[[], AacEncoder | OpusEncoder], pipeline: SpacePipeline
    ) -> None:
        self._part = part
        self._make = make
        self._pipeline = pipeline
        self._encoder: AacEncoder | OpusEncoder | None = None

    def encode(self, pcm: Pcm | None) -> list[EncodedPacket]:
        """Packets for `pcm`, or the encoder's last ones when `pcm` is None (flush)."""
        try:
            if self._encoder is None:
                if pcm is None:
                    return []
                self._encoder = self._make()
            return self._encoder.encode(pcm) if pcm is not None else self._encoder.flush()
        except Exception as error:  # noqa: BLE001 - supervised: recorded, shown in health()
            self._encoder = None
            self._pipeline.record_fault(self._part, error)
            return []


class _ProgramEncoder:
    """The encoder thread's work: AAC into its packager and the ADTS stream, Opus into Ogg and
    (the same packets, encoded once) into the Opus packager."""

    def __init__(
        self,
        pipeline: SpacePipeline,
        packager: HlsPackager,
        opus_packager: HlsPackager,
        captions: CaptionWorker | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._captions = captions
        self._packager = packager
        self._opus_packager = opus_packager
        self._aac = _Codec("aac encoder", AacEncoder, pipeline)
        self._opus = _Codec("opus encoder", OpusEncoder, pipeline)
        self._pager = OggPager(OGG_SERIAL)
        self._pending: list[bytes] = []
        self._granule = 0

    def run(self, program_queue: queue.Queue[_ProgramItem]) -> None:
        self._pipeline.publish(self._pipeline.opus.set_header, self._ogg_header())
        end = self._encode_until_end(program_queue)
        self._package(self._aac.encode(None))
        self._package(self._opus.encode(None), self._opus_packager)
        for packager in (self._packager, self._opus_packager):
            try:
                packager.finish(is_ending=end.is_ending)
            except Exception as error:  # noqa: BLE001 - supervised: recorded, shown in health()
                self._pipeline.record_fault("packager", error)

    def _encode_until_end(self, program_queue: queue.Queue[_ProgramItem]) -> _EndOfProgram:
        while True:
            item = program_queue.get()
            if isinstance(item, _EndOfProgram):
                return item
            try:
                self._encode(item)
            except Exception as error:  # noqa: BLE001 - supervised: the next frame goes on
                self._pipeline.record_fault("encoder", error)

    def _ogg_header(self) -> bytes:
        head = opus_head(
            channels=CHANNELS, pre_skip=OPUS_PRE_SKIP_SAMPLES, input_sample_rate_hz=SAMPLE_RATE_HZ
        )
        first = self._pager.page([head], granule_position=0, is_first=True)
        return first + self._pager.page([opus_tags("rostra")], granule_position=0)

    def _encode(self, pcm: Pcm) -> None:
        if self._captions is not None:
            self._captions.feed(pcm)  # never blocks: a full queue drops audio
        packets = self._aac.encode(pcm)
        self._package(packets)
        for packet in packets:
            chunk = adts_frame(packet.data, sample_rate_hz=SAMPLE_RATE_HZ, channels=CHANNELS)
            self._pipeline.publish(self._pipeline.adts.publish, chunk)
        opus_packets = self._opus.encode(pcm)
        self._package(opus_packets, self._opus_packager)
        for packet in opus_packets:
            self._pending.append(packet.data)
            self._granule += packet.duration_samples
            if len(self._pending) >= OGG_PACKETS_PER_PAGE:
                page = self._pager.page(self._pending, granule_position=self._granule)
                self._pending = []
                self._pipeline.publish(self._pipeline.opus.publish, page)

    def _package(self, packets: list[EncodedPacket], packager: HlsPackager | None = None) -> None:
        for packet in packets:
            try:
                (packager or self._packager).add(packet)
            except Exception as error:  # noqa: BLE001 - supervised: recorded, shown in health()
                self._pipeline.record_fault("packager", error)
