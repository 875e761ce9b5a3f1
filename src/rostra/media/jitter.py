"""The per-speaker jitter buffer: RTP Opus packets in, one 20 ms frame of PCM out per mixer tick.

Media plane: the receive path pushes from the asyncio thread; the mixer pops on its own clock.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

import numpy as np

from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm, rms_dbfs, silence
from rostra.media.opus import OpusDecoder, OpusError

MS_PER_S = 1000
SEQUENCE_MODULUS = 1 << 16
TIMESTAMP_MODULUS = 1 << 32
MAX_DROPOUT_PACKETS = 3000  # RFC 3550 A.1: a longer forward jump is a restart until confirmed
MAX_MISORDER_PACKETS = 100  # RFC 3550 A.1: a packet this far behind is merely reordered
LATE_RUN_RESTART_PACKETS = 50  # this many late packets in a row: the sender restarted behind us
OPUS_GRANULE_SAMPLES = SAMPLE_RATE_HZ * 25 // (10 * MS_PER_S)  # 2.5 ms, the shortest Opus frame
MAX_OPUS_PACKET_SAMPLES = SAMPLE_RATE_HZ * 120 // MS_PER_S
DEFAULT_TARGET_DELAY_MS = 40
DEFAULT_MAX_DELAY_MS = 200
DEFAULT_STALL_MS = 60
CAPACITY_FACTOR = 2  # without pops, packets beyond twice the maximum delay are dropped on push
DRAIN_WINDOW_POPS = 250  # 5 s: a buffer deeper than needed for this long sheds one quiet packet
QUIET_DBFS = -45.0


def _ms_to_samples(duration_ms: int) -> int:
    return duration_ms * SAMPLE_RATE_HZ // MS_PER_S


def _to_granules(samples: int) -> int:
    """Round up to what libopus can conceal, within one packet's duration."""
    granules = -(-samples // OPUS_GRANULE_SAMPLES) * OPUS_GRANULE_SAMPLES
    return min(max(granules, OPUS_GRANULE_SAMPLES), MAX_OPUS_PACKET_SAMPLES)


class FrameSource(StrEnum):
    """Where a frame's audio came from; a frame mixing several reports the worst."""

    SILENCE = "silence"  # a timestamp gap with contiguous sequence numbers: the sender paused (DTX)
    DECODED = "decoded"
    RECOVERED = "recovered"  # rebuilt from the in-band FEC of the packet after a lost one
    CONCEALED = "concealed"  # libopus packet loss concealment: lost, corrupt or not yet arrived


_SOURCE_RANK = {source: rank for rank, source in enumerate(FrameSource)}  # declared best first


@dataclass(frozen=True, slots=True)
class PlayoutFrame:
    pcm: Pcm  # FRAME_SAMPLES float32 samples
    source: FrameSource


@dataclass(frozen=True, slots=True)
class JitterStats:
    """Counts since creation, in packets unless named otherwise."""

    received: int = 0
    duplicates: int = 0
    late: int = 0  # arrived after their turn to play had passed
    dropped: int = 0  # discarded to bound the delay, drained in a quiet moment, or on a restart
    lost: int = 0  # missing at their turn: recovered + concealed - corrupt, + holes past the bound
    recovered: int = 0  # lost, rebuilt from in-band FEC
    concealed: int = 0  # lost without FEC, or corrupt: filled by libopus PLC
    corrupt: int = 0  # payloads libopus rejected
    underruns: int = 0  # pops that found too little audio and filled the rest with faded PLC
    stalls: int = 0  # times the speaker went silent and the buffer re-prefetched
    restarts: int = 0  # sender restarts (new sequence base) detected
    depth_ms: float = 0.0  # audio held now: decoded but not popped, plus packets waiting


_Count = Literal[
    "received",
    "duplicates",
    "late",
    "dropped",
    "lost",
    "recovered",
    "concealed",
    "corrupt",
    "underruns",
    "stalls",
    "restarts",
]


@dataclass(slots=True)
class _Packet:
    sequence: int  # extended
    timestamp: int  # extended
    payload: bytes
    samples: int  # 0 when libopus cannot read the packet


class JitterBuffer:
    """One speaker's playout: reorders, conceals holes at once, never waits for a missing packet.

    Playback starts once the first packet has been held for `target_delay_ms` of pops; a
    missing packet is concealed when its turn comes (from the next packet's FEC when that one is
    here); an empty buffer plays `stall_ms` of fading PLC, then pop returns None until packets
    return and a new prefetch completes. Beyond `max_delay_ms` the oldest packets are dropped.
    """

    def __init__(
        self,
        *,
        target_delay_ms: int = DEFAULT_TARGET_DELAY_MS,
        max_delay_ms: int = DEFAULT_MAX_DELAY_MS,
        stall_ms: int = DEFAULT_STALL_MS,
    ) -> None:
        if not 0 < target_delay_ms < max_delay_ms or stall_ms <= 0:
            raise ValueError("need 0 < target_delay_ms < max_delay_ms and stall_ms > 0")
        self._target_samples = _ms_to_samples(target_delay_ms)
        self._max_samples = _ms_to_samples(max_delay_ms)
        self._stall_samples = _ms_to_samples(stall_ms)
        self._lock = threading.Lock()
        self._decoder = OpusDecoder()
        self._counts: dict[_Count, int] = dict.fromkeys(get_args(_Count), 0)
        self._fifo: deque[tuple[Pcm, FrameSource]] = deque()
        self._fifo_samples = 0
        self._packets: dict[int, _Packet] = {}
        self._highest_seq: int | None = None
        self._highest_ts = 0
        self._probe_seq: int | None = None
        self._late_run = 0
        self._next_seq: int | None = None  # after a stall, the floor below which packets are late
        self._next_ts = 0
        self._last_samples = FRAME_SAMPLES
        self._is_playing = False
        self._is_closed = False
        self._held_pops = 0
        self._underrun_samples = 0
        self._stretch_samples = 0  # PLC played while waiting: shortens a later silence gap
        self._should_drain = False
        self._window_pops = 0
        self._window_min_samples = 0

    def push(self, sequence: int, timestamp: int, payload: bytes) -> None:
        """Hand over one RTP packet: 16-bit (or extended) sequence number, 48 kHz timestamp."""
        with self._lock:
            if self._is_closed:
                return
            self._counts["received"] += 1
            extended = self._unwrap_sequence(sequence)
            if extended is None:
                self._counts["dropped"] += 1
            elif extended in self._packets:
                self._counts["duplicates"] += 1
            elif self._next_seq is not None and extended < self._next_seq:
                self._count_late()
            else:
                self._late_run = 0
                self._store(extended, timestamp, payload)

    def pop_frame(self) -> PlayoutFrame | None:
        """The next 20 ms and where it came from; None before playback starts or after a stall."""
        with self._lock:
            if self._is_closed or (not self._is_playing and not self._try_start()):
                return None
            self._catch_up()
            while self._fifo_samples < FRAME_SAMPLES and self._produce():
                pass
            if self._fifo_samples < FRAME_SAMPLES:
                if self._underrun_samples >= self._stall_samples:
                    self._stall()
                    return None
                self._underrun()
            frame = self._take(FRAME_SAMPLES)
            self._watch_depth()
            return frame

    def pop(self) -> Pcm | None:
        """The next 20 ms (FRAME_SAMPLES float32), or None when the speaker is not playing."""
        frame = self.pop_frame()
        return None if frame is None else frame.pcm

    @property
    def stats(self) -> JitterStats:
        with self._lock:
            depth_ms = self._depth_samples() * MS_PER_S / SAMPLE_RATE_HZ
            return JitterStats(**self._counts, depth_ms=depth_ms)

    def close(self) -> None:
        """Free the decoder; later pushes are ignored and pops return None."""
        with self._lock:
            self._is_closed = True
            self._decoder.close()

    # Arrival side

    def _unwrap_sequence(self, sequence: int) -> int | None:
        low = sequence % SEQUENCE_MODULUS
        if self._highest_seq is None:
            return low
        forward = (low - self._highest_seq) % SEQUENCE_MODULUS
        if forward < MAX_DROPOUT_PACKETS:
            return self._highest_seq + forward
        if forward >= SEQUENCE_MODULUS - MAX_MISORDER_PACKETS:
            return self._highest_seq + forward - SEQUENCE_MODULUS
        if self._probe_seq == low:  # two packets in a row from a new base: the sender restarted
            self._restart_stream()
            return low
        self._probe_seq = (low + 1) % SEQUENCE_MODULUS
        return None

    def _unwrap_timestamp(self, timestamp: int) -> int:
        if self._highest_seq is None:
            return timestamp % TIMESTAMP_MODULUS
        half = TIMESTAMP_MODULUS // 2
        delta = (timestamp - self._highest_ts + half) % TIMESTAMP_MODULUS - half
        return self._highest_ts + delta

    def _count_late(self) -> None:
        self._counts["late"] += 1
        self._late_run += 1
        if self._late_run >= LATE_RUN_RESTART_PACKETS:
            self._restart_stream()

    def _store(self, sequence: int, timestamp: int, payload: bytes) -> None:
        try:
            samples = self._decoder.packet_samples(payload)
        except OpusError:
            samples = 0
        packet = _Packet(sequence, self._unwrap_timestamp(timestamp), payload, samples)
        self._packets[sequence] = packet
        if self._highest_seq is None or sequence > self._highest_seq:
            self._highest_seq, self._highest_ts = sequence, packet.timestamp
        while self._depth_samples() > CAPACITY_FACTOR * self._max_samples:
            self._drop_oldest()

    # Playout side

    def _try_start(self) -> bool:
        if not self._packets:
            self._held_pops = 0
            return False
        self._held_pops += 1
        first = self._packets[min(self._packets)]
        # the pop that saw the first packet arrive may have come right after it: not counted
        if (self._held_pops - 1) * FRAME_SAMPLES < self._hold_samples(first.samples):
            return False
        self._is_playing = True
        self._next_seq, self._next_ts = first.sequence, first.timestamp
        self._window_pops, self._window_min_samples = 0, self._max_samples
        return True

    def _hold_samples(self, packet_samples: int) -> int:
        """How long to hold the first packet: the target, plus the wait for longer packets."""
        return self._target_samples + max(0, packet_samples - FRAME_SAMPLES)

    def _catch_up(self) -> None:
        if self._depth_samples() <= self._max_samples:
            return
        while self._packets and self._depth_samples() > self._target_samples:
            self._drop_oldest()

    def _produce(self) -> bool:
        """Put the next packet's audio in the FIFO: decoded, recovered or concealed."""
        assert self._next_seq is not None
        packet = self._packets.pop(self._next_seq, None)
        if packet is not None:
            self._play(packet)
            return True
        if not self._packets:
            return False
        later = self._packets[min(self._packets)]
        missing = later.sequence - self._next_seq
        if missing * self._last_samples > self._max_samples:  # a hole longer than the buffer
            self._counts["lost"] += missing
            self._next_seq, self._next_ts = later.sequence, later.timestamp
            return True
        self._conceal_lost(later)
        return True

    def _play(self, packet: _Packet) -> None:
        # the sender paused: play the pause, less any PLC already played, never past the bound
        silence_samples = min(
            packet.timestamp - self._next_ts - self._stretch_samples,
            self._max_samples - self._depth_samples(),
        )
        if silence_samples > 0:
            self._append(silence(silence_samples), FrameSource.SILENCE)
        self._stretch_samples = self._underrun_samples = 0
        try:
            pcm, source = self._decoder.decode(packet.payload), FrameSource.DECODED
        except OpusError:
            self._counts["corrupt"] += 1
            self._counts["concealed"] += 1
            expected = _to_granules(packet.samples or self._last_samples)
            pcm, source = self._decoder.conceal(expected), FrameSource.CONCEALED
        following = self._packets.get(packet.sequence + 1)
        if following is not None and 0 < following.timestamp - packet.timestamp < pcm.size:
            pcm = pcm[: following.timestamp - packet.timestamp]  # the RTP clock is the timeline
        self._next_seq = packet.sequence + 1
        self._next_ts = packet.timestamp + pcm.size
        self._last_samples = pcm.size
        if self._should_drain and source is FrameSource.DECODED and rms_dbfs(pcm) < QUIET_DBFS:
            self._should_drain = False
            self._counts["dropped"] += 1
            return
        self._append(pcm, source)

    def _conceal_lost(self, later: _Packet) -> None:
        assert self._next_seq is not None
        span_samples = later.timestamp - self._next_ts
        per_packet = span_samples // (later.sequence - self._next_seq)
        samples = _to_granules(per_packet if per_packet > 0 else self._last_samples)
        follower = self._packets.get(self._next_seq + 1)
        self._counts["lost"] += 1
        pcm: Pcm | None = None
        if follower is not None:
            try:
                if self._decoder.has_fec(follower.payload):
                    pcm = self._decoder.decode_fec(follower.payload, samples)
            except OpusError:
                pcm = None
        if pcm is None:
            self._counts["concealed"] += 1
            self._append(self._decoder.conceal(samples), FrameSource.CONCEALED)
        else:
            self._counts["recovered"] += 1
            self._append(pcm, FrameSource.RECOVERED)
        self._next_seq += 1
        self._next_ts += samples

    def _underrun(self) -> None:
        """Nothing to play: conceal the rest of the frame, fading out towards a stall."""
        self._counts["underruns"] += 1
        samples = _to_granules(FRAME_SAMPLES - self._fifo_samples)
        positions = self._underrun_samples + np.arange(samples, dtype=np.float32)
        fade = np.clip(1.0 - positions / self._stall_samples, 0.0, 1.0).astype(np.float32)
        self._append(self._decoder.conceal(samples) * fade, FrameSource.CONCEALED)
        self._underrun_samples += samples
        self._stretch_samples += samples

    def _stall(self) -> None:
        self._counts["stalls"] += 1
        self._stop_playing()

    def _stop_playing(self) -> None:
        self._is_playing = False
        self._held_pops = self._underrun_samples = self._stretch_samples = 0
        self._fifo.clear()
        self._fifo_samples = 0

    def _watch_depth(self) -> None:
        """Shed one quiet packet when the buffer stayed a frame deeper than needed for long."""
        self._window_min_samples = min(self._window_min_samples, self._depth_samples())
        self._window_pops += 1
        if self._window_pops >= DRAIN_WINDOW_POPS:
            threshold = self._hold_samples(self._last_samples) + FRAME_SAMPLES
            self._should_drain = self._window_min_samples >= threshold
            self._window_pops, self._window_min_samples = 0, self._max_samples

    # Bookkeeping

    def _restart_stream(self) -> None:
        self._counts["restarts"] += 1
        self._counts["dropped"] += len(self._packets)
        self._packets.clear()
        self._highest_seq = self._probe_seq = self._next_seq = None
        self._late_run = 0
        self._last_samples = FRAME_SAMPLES
        self._should_drain = False
        self._stop_playing()
        self._decoder.reset()

    def _drop_oldest(self) -> None:
        packet = self._packets.pop(min(self._packets))
        self._counts["dropped"] += 1
        if self._next_seq is None or packet.sequence >= self._next_seq:
            self._next_seq = packet.sequence + 1
            self._next_ts = packet.timestamp + (packet.samples or self._last_samples)

    def _depth_samples(self) -> int:
        buffered = sum(packet.samples or self._last_samples for packet in self._packets.values())
        return self._fifo_samples + buffered

    def _append(self, pcm: Pcm, source: FrameSource) -> None:
        self._fifo.append((pcm.astype(np.float32, copy=False), source))
        self._fifo_samples += pcm.size

    def _take(self, samples: int) -> PlayoutFrame:
        parts: list[Pcm] = []
        source = FrameSource.SILENCE
        needed = samples
        while needed > 0:
            pcm, chunk_source = self._fifo.popleft()
            if pcm.size > needed:
                self._fifo.appendleft((pcm[needed:], chunk_source))
                pcm = pcm[:needed]
            parts.append(pcm)
            needed -= pcm.size
            source = max(source, chunk_source, key=_SOURCE_RANK.__getitem__)
        self._fifo_samples -= samples
        return PlayoutFrame(np.concatenate(parts), source)
