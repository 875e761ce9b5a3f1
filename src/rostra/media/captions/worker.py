"""The origin's side of captions: the program, resampled to 16 kHz, goes to the recognizer
process over a pipe; its cues come back into the caption store. One owner starts the process,
restarts it when it dies, bounds the queue to it (dropping audio, never blocking the encoder)
and stops it in bounded time.

Media plane. `feed` is called by the encoder thread and never waits; the rest runs in this
worker's threads (writer, reader, watchdog) and its child process.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from rostra.media.audio import SAMPLE_RATE_HZ, Pcm
from rostra.media.captions.recognizer import CHUNK_HEADER
from rostra.media.captions.segmenter import RECOGNIZER_RATE_HZ
from rostra.media.captions.store import CAPTIONS, Anchor, CaptionStore, FaultSink
from rostra.media.captions.webvtt import Cue
from rostra.media.codecs import SEGMENT_DURATION_S
from rostra.media.health import describe

log = logging.getLogger(__name__)

RECOGNIZER_COMMAND = (sys.executable, "-m", "rostra.media.captions.recognizer")
DECIMATION = SAMPLE_RATE_HZ // RECOGNIZER_RATE_HZ
# the anti-alias filter before keeping every third sample: a windowed sinc cut at 7 kHz
FILTER_TAPS = 63
FILTER_CUTOFF_HZ = 7_000.0
# audio goes to the recognizer in chunks of this much
CHUNK_S = 0.2
# full (the recognizer is 10 s behind, or restarting): the newest chunk is dropped, and counted
QUEUE_CHUNKS = 50
RESTART_BACKOFF_S = 1.0
MAX_RESTART_BACKOFF_S = 30.0
# a recognizer that ran this long without dying earns the shortest backoff again
STABLE_AFTER_S = 60.0
# a recognizer that has been given audio and said nothing for this long is hung: it is killed
# (the writer, blocked on a full pipe, is freed) and started again. A working one speaks at
# least once per utterance (5 s of speech at most) and per chunk of quiet.
HUNG_AFTER_S = 30.0
WATCH_S = 1.0
QUEUE_POLL_S = 0.5
# at the end: the recognizer finishes its last utterance (5 s of speech at most) within this;
# at a restart of the server (the space goes on) it gets less, so a stop stays short
END_WAIT_S = 8.0
SUSPEND_WAIT_S = 2.0
KILL_WAIT_S = 2.0


def _log_fault(part: str, error: BaseException) -> None:
    """Captions are no part of the audio: their faults are logged, never shown in the space's
    health (a listener still hears everything)."""
    log.warning("captions part failed", extra={"part": part, "error": describe(error)})


def _lowpass_taps() -> Pcm:
    index = np.arange(FILTER_TAPS) - (FILTER_TAPS - 1) / 2
    cutoff = FILTER_CUTOFF_HZ / SAMPLE_RATE_HZ
    taps = 2 * cutoff * np.sinc(2 * cutoff * index) * np.hamming(FILTER_TAPS)
    normalised: Pcm = (taps / taps.sum()).astype(np.float32)
    return normalised


class Resampler:
    """48 kHz to 16 kHz, continuous across calls (the filter keeps its history)."""

    def __init__(self) -> None:
        self._taps = _lowpass_taps()
        self._history = np.zeros(FILTER_TAPS - 1, dtype=np.float32)
        self._phase = 0

    def process(self, pcm: Pcm) -> Pcm:
        padded = np.concatenate([self._history, pcm.astype(np.float32)])
        filtered = np.convolve(padded, self._taps, mode="valid")
        self._history = padded[-(FILTER_TAPS - 1) :]
        kept = filtered[self._phase :: DECIMATION]
        self._phase = (self._phase - filtered.size) % DECIMATION
        return kept.astype(np.float32)


_Chunk = tuple[float, Pcm]


class CaptionWorker:
    """Captions for one space's program, from `first_sequence` (the AAC packager's next segment:
    the media timeline starts there at `first_sequence` × 1.024 s)."""

    def __init__(
        self,
        directory: Path,
        *,
        first_sequence: int,
        window_segments: int,
        anchor: Anchor,
        on_fault: FaultSink = _log_fault,
        command: Sequence[str] = RECOGNIZER_COMMAND,
        hung_after_s: float = HUNG_AFTER_S,
    ) -> None:
        self.store = CaptionStore(
            directory,
            first_sequence=first_sequence,
            window_segments=window_segments,
            anchor=anchor,
            on_fault=on_fault,
        )
        self._command = tuple(command)
        self._on_fault = on_fault
        self._resampler = Resampler()
        self._start_s = first_sequence * SEGMENT_DURATION_S
        self._fed_samples = 0
        self._pending: list[Pcm] = []
        self._pending_start_s = self._start_s
        # None: stop
        self._queue: queue.Queue[_Chunk | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._end_wait_s = END_WAIT_S
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ended = threading.Event()
        self._backoff_s = RESTART_BACKOFF_S
        self._next_start_at_s = 0.0
        self._started_at_s = 0.0
        self.restarts = 0
        self.dropped_chunks = 0
        self._hung_after_s = hung_after_s
        # monotonic: the first chunk given to the child since it last said anything (0: none)
        self._awaiting_since_s = 0.0
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._run_writer, name="captions", daemon=True)
        self._writer.start()
        self._watchdog = threading.Thread(
            target=self._run_watchdog, name="captions-watchdog", daemon=True
        )
        self._watchdog.start()

    @property
    def fed_end_s(self) -> float:
        return self._start_s + self._fed_samples / SAMPLE_RATE_HZ

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def feed(self, pcm: Pcm) -> None:
        """One program frame (48 kHz). Never blocks: a full queue drops the chunk."""
        if not self._pending:
            self._pending_start_s = self.fed_end_s
        self._pending.append(pcm)
        self._fed_samples += pcm.size
        if self.fed_end_s - self._pending_start_s < CHUNK_S - 1e-9:
            return
        samples = self._resampler.process(np.concatenate(self._pending))
        chunk = (self._pending_start_s, samples)
        self._pending = []
        try:
            self._queue.put_nowait(chunk)
        except queue.Full:
            self.dropped_chunks += 1

    def stop(self, *, is_ending: bool) -> None:
        """Let the recognizer finish what it was given (bounded), then write the last files.
        Blocking: call it from a worker thread."""
        self._end_wait_s = END_WAIT_S if is_ending else SUSPEND_WAIT_S
        for _ in range(QUEUE_CHUNKS + 1):
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                self._drop_oldest()
        self._writer.join(timeout=self._end_wait_s + 2 * KILL_WAIT_S)
        self._stopping.set()  # the watchdog watched the last utterance too
        self.store.finish(is_ending=is_ending, fed_end_s=self.fed_end_s)
        log.info(
            "captions stopped",
            extra={
                "audio_s": round(self.fed_end_s - self._start_s, 1),
                "dropped_s": round(self.dropped_chunks * CHUNK_S, 1),
                "cues": self.store.cue_count,
                "restarts": self.restarts,
            },
        )

    # --- the writer thread: chunks to the process --------------------------------------------
    def _drop_oldest(self) -> None:
        try:
            self._queue.get_nowait()
            self.dropped_chunks += 1
        except queue.Empty:
            pass

    def _run_writer(self) -> None:
        while True:
            try:
                chunk = self._queue.get(timeout=QUEUE_POLL_S)
            except queue.Empty:
                continue
            if chunk is None:
                self._end_process()
                return
            try:
                self._write(chunk)
            except Exception as error:  # noqa: BLE001 - this thread must outlive any one chunk
                self._on_fault(CAPTIONS, error)

    def _write(self, chunk: _Chunk) -> None:
        process = self._alive_process()
        if process is None or process.stdin is None:
            self.dropped_chunks += 1
            return
        start_s, samples = chunk
        if not self._awaiting_since_s:
            self._awaiting_since_s = time.monotonic()
        try:
            process.stdin.write(CHUNK_HEADER.pack(start_s, samples.size))
            process.stdin.write(samples.astype("<f4").tobytes())
            process.stdin.flush()
        except OSError as error:  # the process died under us: restarted on the next chunk
            self._on_fault(CAPTIONS, error)
        self.store.advance(-1.0, fed_end_s=self.fed_end_s)

    # --- the watchdog thread: a recognizer alive but silent is killed ------------------------
    def _run_watchdog(self) -> None:
        while not self._stopping.wait(WATCH_S):
            process = self._process
            if process is None or process.poll() is not None:
                continue
            since_s = self._awaiting_since_s
            silent_s = time.monotonic() - since_s
            if since_s and silent_s > self._hung_after_s:
                log.warning("recognizer hung", extra={"silent_s": round(silent_s, 1)})
                self._on_fault(CAPTIONS, RuntimeError(f"recognizer silent for {silent_s:.0f} s"))
                process.kill()

    def _alive_process(self) -> subprocess.Popen[bytes] | None:
        process = self._process
        if process is not None and process.poll() is None:
            return process
        now_s = time.monotonic()
        if process is not None:
            self._process = None
            ran_s = now_s - self._started_at_s
            self._backoff_s = (
                RESTART_BACKOFF_S
                if ran_s > STABLE_AFTER_S
                else min(self._backoff_s * 2, MAX_RESTART_BACKOFF_S)
            )
            self._next_start_at_s = now_s + self._backoff_s
            log.warning(
                "recognizer exited", extra={"code": process.returncode, "ran_s": round(ran_s, 1)}
            )
            self._on_fault(CAPTIONS, RuntimeError(f"recognizer exited ({process.returncode})"))
        if now_s < self._next_start_at_s:
            return None
        return self._start_process(now_s)

    def _start_process(self, now_s: float) -> subprocess.Popen[bytes] | None:
        try:
            process = subprocess.Popen(  # noqa: S603 - our own module, no shell, no outside input
                self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        except OSError as error:
            self._on_fault(CAPTIONS, error)
            self._next_start_at_s = now_s + MAX_RESTART_BACKOFF_S
            return None
        if self._started_at_s:
            self.restarts += 1
        self._started_at_s = now_s
        self._process = process
        self._awaiting_since_s = 0.0
        self._ended.clear()
        self._reader = threading.Thread(
            target=self._run_reader, args=(process.stdout,), name="captions-reader", daemon=True
        )
        self._reader.start()
        return process

    def _end_process(self) -> None:
        process = self._process
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
        except OSError as error:
            self._on_fault(CAPTIONS, error)
        self._ended.wait(timeout=self._end_wait_s)
        try:
            process.wait(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=KILL_WAIT_S)
        if self._reader is not None:
            self._reader.join(timeout=KILL_WAIT_S)

    # --- the reader thread: cues from the process --------------------------------------------
    def _run_reader(self, stdout: IO[bytes] | None) -> None:
        if stdout is None:
            return
        for line in stdout:
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a native library's own print: not ours
            self._awaiting_since_s = 0.0
            if not isinstance(message, dict):
                continue
            try:
                self._handle(message)
            except Exception as error:  # noqa: BLE001 - one bad line never ends the captions
                self._on_fault(CAPTIONS, error)
        stdout.close()

    def _handle(self, message: dict[str, object]) -> None:
        cue = message.get("cue")
        if isinstance(cue, list) and len(cue) == 3:  # start, end, text
            self.store.add(Cue(float(cue[0]), float(cue[1]), str(cue[2])))
        through_s = message.get("through_s")
        if isinstance(through_s, int | float):
            self.store.advance(float(through_s), fed_end_s=self.fed_end_s)
        if message.get("ended") is True:
            self._ended.set()
