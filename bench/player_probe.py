"""What a real player with its default buffer plays: ffplay or mpv on a stream URL, its audio
device emulated in real time, each mark timestamped in the wall clock when the device plays it
— not when the player decodes it.

How. The player runs with its default settings (ffplay: no -fflags nobuffer, no probe or buffer
options; mpv: `--no-config`) and SDL's disk audio driver (`SDL_AUDIODRIVER=disk`). That driver
writes each buffer the player's audio callback fills to `SDL_DISKAUDIOFILE`, then sleeps
`SDL_DISKAUDIODELAY` whole milliseconds. Left to itself it is not a real-time device: the sleep
is an integer (42 ms for ffplay's 2,048-sample buffer at 48 kHz, which lasts 42.67 ms) and comes
on top of the write: measured here, a 48 kHz mono file grows at 97,217 bytes/s instead of 96,000
(1.3 % fast), so a live stream's buffer would drain over a run. So the file is a FIFO, the
driver's delay is 0, and a process of its own (`--device`, this file) is the device: it reads
the FIFO on a fixed 20 ms schedule of the monotonic clock, 960 samples a period, and a sample
read in period k is played at `start + k * 20 ms + offset / 48 kHz` in the wall clock. When the
FIFO holds less than a period the device plays what it has and silence after (an underrun,
counted); its clock never waits for the player, as a sound card's does not. It runs SCHED_FIFO
where allowed (`device_realtime`), so that the machine's other work does not make it late; its
lateness is recorded (`max_wake_lateness_s`).

The device's own buffer is the FIFO, sized to two of the player's SDL buffers: the layout SDL
asks of ALSA (period = the callback's buffer, two periods), so that the player blocks on a full
device as it would on a sound card: 85 ms for ffplay (2 x 2,048 samples), 171 ms for mpv (2 x
4,096, SDL's default, which mpv asks for). Players are told to hand mono s16 at 48 kHz (ffplay
`-af aformat=...`; mpv `--audio-format`, `--audio-channels`, `--audio-samplerate`), a format
conversion only: Rostra's streams are 48 kHz, so buffer sizes and queues stay the defaults.
mpv's usual output is PipeWire, PulseAudio or ALSA; here it is `--ao=sdl` (Debian's build has
SDL audio), while its demuxer cache, 0.2 s audio buffer and soft buffer stay its defaults.

Error bound: the onset is timed to the millisecond within a period; what is not known is a real
machine's output below the player, which differs by backend (a sound server adds its own
latency, typically 20–60 ms): these figures hold for SDL on ALSA within about one of the
player's buffers (±43 ms for ffplay, ±85 ms for mpv). SDL also plays silence while the player
holds the device paused at start, up to the device's buffer (and mpv its 256 ms soft buffer at
times), which shifts a run's latency by as much (a real device does the same). `calibrate()`
plays a local WAV whose marks lie at known sample offsets (`python bench/player_probe.py
--calibrate [--player mpv]`) and fails unless each mark is played at its offset to the
millisecond, after no more of that silence, with no underrun.

Other ways, weighed: `mpv --ao=pcm` writes as fast as it decodes (not paced); `--ao=null` is
paced by a simulated device but shows nothing of what it plays; a PulseAudio or PipeWire null
sink with a monitor recording would work too, at the cost of a sound server and a second
timestamping stage. ffplay is in Debian's `ffmpeg`, which the server needs anyway; mpv is in the
Makefile's BENCH_DEBS.

Interface (for `latency.py`, `peers.py`):
    probe = PlayerProbe(url, player="ffplay", max_s=120)   # or player="mpv"
    await probe.start(); await probe.wait_playing(15)      # RuntimeError if nothing plays
    ...; played = probe.stop()   # Played: marks (wall clock, tone), underruns, player's errors
or  played = await play_marks(url, duration_s=30, player="mpv")
`stop()` kills the player and the device (each its whole process group); callers run it on
every way out (it is idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from marks import SAMPLE_RATE_HZ, Mark, OnsetDetector, mark_train

PLAYERS = ("ffplay", "mpv")
CHANNELS = 1
BYTES_PER_SAMPLE = 2  # s16
PERIOD_S = 0.020
PERIOD_SAMPLES = int(SAMPLE_RATE_HZ * PERIOD_S)
PERIOD_BYTES = PERIOD_SAMPLES * CHANNELS * BYTES_PER_SAMPLE
# each player's SDL buffer at 48 kHz: ffplay asks FFMAX(512, 2 << av_log2(48000 / 30)) = 2,048
# samples; mpv asks SDL's default, 4,096 (`mpv -v` says "obtained ... buffer size: 4096")
SDL_BUFFER_SAMPLES = {"ffplay": 2_048, "mpv": 4_096}
DEVICE_BUFFERS = 2
DETECT_STEP_SAMPLES = 48  # onsets are timed to the millisecond within a period
INT16_FULL_SCALE = 32_768.0
WAIT_POLL_S = 0.005
CATCH_UP_GRACE_S = 0.010
CALIBRATION_TOLERANCE_S = 0.002
# silence a player plays before a file's first sample: SDL's while the player holds the device
# paused (up to the device's buffer), and for mpv its soft buffer too (12,288 samples, 256 ms)
START_SILENCE_MAX_S = {"ffplay": 0.086, "mpv": 0.171 + 0.256 + CALIBRATION_TOLERANCE_S}
DEVICE_READY_TIMEOUT_S = 15.0
DEVICE_RT_PRIORITY = 10
NICENESS = -5  # harness.CLIENT_NICENESS
DEVICE_COMMAND = (sys.executable, str(Path(__file__).resolve()), "--device")
STOP_TIMEOUT_S = 3.0
STDERR_LINES_KEPT = 20


@dataclass(slots=True)
class Played:
    """What one player played: each mark's wall-clock play time and tone, and how it went."""

    player: str
    url: str
    marks: list[Mark] = field(default_factory=list)
    launched_at: float | None = None  # wall clock when the player was started
    started_at: float | None = None  # wall clock of the device's first sample
    samples_played: int = 0
    underruns_at: list[float] = field(default_factory=list)  # wall clock of each short period
    max_wake_lateness_s: float = 0.0
    device_realtime: bool = False  # the device thread ran SCHED_FIFO
    errors: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def underruns_between_marks(self) -> int:
        """Short periods from the first mark played to the last (a stream's own end or start
        is not held against the device)."""
        if not self.marks:
            return 0
        first, last = self.marks[0].at, self.marks[-1].at
        return sum(first <= t <= last for t in self.underruns_at)

    def summary(self) -> dict[str, object]:
        return {
            "player": self.player,
            "marks_detected": len(self.marks),
            "first_sample_after_launch_s": (
                None
                if self.started_at is None or self.launched_at is None
                else round(self.started_at - self.launched_at, 3)
            ),
            "seconds_played": round(self.samples_played / SAMPLE_RATE_HZ, 3),
            "underrun_periods": len(self.underruns_at),
            "underrun_periods_between_marks": self.underruns_between_marks(),
            "max_wake_lateness_s": round(self.max_wake_lateness_s, 4),
            "device_realtime": self.device_realtime,
            "device_buffer_s": round(device_buffer_s(self.player), 4),
            "errors": self.errors[:STDERR_LINES_KEPT],
        }


def device_buffer_bytes(player: str) -> int:
    """Two of the player's SDL buffers, as SDL asks of ALSA (a power of two pages)."""
    return DEVICE_BUFFERS * SDL_BUFFER_SAMPLES[player] * CHANNELS * BYTES_PER_SAMPLE


def device_buffer_s(player: str) -> float:
    return DEVICE_BUFFERS * SDL_BUFFER_SAMPLES[player] / SAMPLE_RATE_HZ


def player_available(player: str = "ffplay") -> bool:
    return player in PLAYERS and shutil.which(player) is not None


def player_version(player: str = "ffplay") -> str:
    try:
        out = subprocess.run(
            [player, "-version" if player == "ffplay" else "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


class PlayerProbe:
    """One player process (ffplay or mpv) on `url`, its device emulated by a process of its own
    (its own interpreter, so that the benchmark's other work does not make the device late); at
    most `max_s` seconds."""

    def __init__(self, url: str, *, player: str = "ffplay", max_s: float = 300.0) -> None:
        if player not in PLAYERS:
            raise ValueError(f"unknown player {player!r}; known: {', '.join(PLAYERS)}")
        self.url = url
        self.max_s = max_s
        self.played = Played(player=player, url=url)
        self._folder = Path(tempfile.mkdtemp(prefix="rostra-player-"))
        self._fifo = self._folder / "device.s16"
        self._stderr_path = self._folder / "stderr.txt"
        self._device: subprocess.Popen[str] | None = None
        self._device_lines: list[str] = []
        self._device_ready = False
        self._reader = threading.Thread(target=self._read_device, name="device-out", daemon=True)
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def command(self) -> list[str]:
        if self.played.player == "mpv":
            return [
                "mpv",
                "--no-config",
                "--no-terminal",
                "--no-video",
                "--ao=sdl",
                "--audio-format=s16",
                "--audio-channels=mono",
                f"--audio-samplerate={SAMPLE_RATE_HZ}",
                self.url,
            ]
        return [
            "ffplay",
            "-hide_banner",
            "-nodisp",
            "-nostats",
            "-loglevel",
            "warning",
            "-af",
            f"aformat=sample_fmts=s16:channel_layouts=mono:sample_rates={SAMPLE_RATE_HZ}",
            self.url,
        ]

    async def start(self) -> None:
        """The device first (the FIFO opened and sized before the player can write), then
        the player."""
        os.mkfifo(self._fifo)
        self._launch_device()
        deadline = time.monotonic() + DEVICE_READY_TIMEOUT_S
        while not self._device_ready:
            self._parse_device_lines()
            if self._device is None or self._device.poll() is not None:
                raise RuntimeError("the device process ended before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError("the device process was not ready in time")
            await asyncio.sleep(WAIT_POLL_S)
        self._launch_player()

    def _launch_device(self) -> None:
        self._device = subprocess.Popen(
            [
                *DEVICE_COMMAND,
                str(self._fifo),
                "--duration-s",
                str(self.max_s),
                "--buffer-bytes",
                str(device_buffer_bytes(self.played.player)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader.start()

    def _launch_player(self) -> None:
        env = os.environ | {
            "SDL_AUDIODRIVER": "disk",
            "SDL_DISKAUDIOFILE": str(self._fifo),
            "SDL_DISKAUDIODELAY": "0",
        }
        env.pop("DISPLAY", None)
        self.played.launched_at = time.time()
        with self._stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                self.command(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    async def wait_playing(self, timeout_s: float) -> None:
        """Until the device plays its first sample; RuntimeError if ffplay ends or is slow."""
        deadline = time.monotonic() + timeout_s
        while self.played.started_at is None:
            self._parse_device_lines()
            if self.played.started_at is not None:
                return
            if self._process is not None and self._process.poll() is not None:
                code, errors = self._process.returncode, self._errors()
                raise RuntimeError(f"{self.played.player} ended ({code}): {errors}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.played.player} played nothing in {timeout_s:.0f} s: {self._errors()}"
                )
            await asyncio.sleep(0.05)

    def stop(self) -> Played:
        """Kill the player (its process group), stop the device, return what was played."""
        if self._stopped:
            return self.played
        self._stopped = True
        process = self._process
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT_S)
            self.played.exit_code = process.returncode
        device = self._device
        if device is not None:
            if device.poll() is None:
                device.send_signal(signal.SIGTERM)  # it stops and reports what it played
            try:
                device.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(device.pid, signal.SIGKILL)
                device.wait(STOP_TIMEOUT_S)
            self._reader.join(STOP_TIMEOUT_S)
            self._parse_device_lines()
        self.played.errors = self._errors()
        shutil.rmtree(self._folder, ignore_errors=True)
        return self.played

    def _read_device(self) -> None:
        stdout = self._device.stdout if self._device is not None else None
        for line in stdout or ():
            self._device_lines.append(line)

    def _parse_device_lines(self) -> None:
        while self._device_lines:
            try:
                message = json.loads(self._device_lines.pop(0))
            except json.JSONDecodeError:  # a line cut short by a killed device
                continue
            self._device_ready = self._device_ready or "ready" in message
            if "started_at" in message:
                self.played.started_at = float(message["started_at"])
            if "marks" in message:
                self.played.marks = [Mark(at=at, tone=tone) for at, tone in message["marks"]]
                self.played.underruns_at = list(message["underruns_at"])
                self.played.samples_played = int(message["samples_played"])
                self.played.max_wake_lateness_s = float(message["max_wake_lateness_s"])
                self.played.device_realtime = bool(message["device_realtime"])

    def _errors(self) -> list[str]:
        try:
            text = self._stderr_path.read_text(errors="replace")
        except OSError:
            return []
        kept = [line for line in text.splitlines() if "disk i/o audio" not in line]
        return [line for line in kept if "Writing to file" not in line][-STDERR_LINES_KEPT:]


def run_device(fifo: str, max_s: float, buffer_bytes: int) -> None:
    """The device, run as its own process (`--device FIFO`): plays until SIGTERM, the player's
    end or `max_s`, then prints what it played as one JSON line."""
    device = _Device()
    # a sound card's clock does not wait for the CPU: the device thread runs real-time where
    # allowed (it sleeps between periods, a few milliseconds of work a second)
    with contextlib.suppress(PermissionError, OSError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(DEVICE_RT_PRIORITY))
        device.realtime = True
    signal.signal(signal.SIGTERM, lambda *_: device.stop.set())
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, buffer_bytes)
        print(json.dumps({"ready": True}), flush=True)
        device.play(fd, time.monotonic() + max_s)
    finally:
        os.close(fd)
        print(json.dumps(device.result()), flush=True)


class _Device:
    """Reads the FIFO one period at a time on a fixed schedule and detects the marks played."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._detector = OnsetDetector()
        self.underruns_at: list[float] = []
        self.samples_played = 0
        self.max_lateness_s = 0.0
        self.realtime = False

    def result(self) -> dict[str, object]:
        return {
            "marks": [(m.at, m.tone) for m in self._detector.onsets],
            "underruns_at": self.underruns_at,
            "samples_played": self.samples_played,
            "max_wake_lateness_s": self.max_lateness_s,
            "device_realtime": self.realtime,
        }

    def _first_bytes(self, fd: int, give_up_at: float) -> bytes:
        while not self.stop.is_set() and time.monotonic() < give_up_at:
            with contextlib.suppress(BlockingIOError):
                data = os.read(fd, PERIOD_BYTES)
                if data:
                    return data
            time.sleep(WAIT_POLL_S)
        return b""

    def play(self, fd: int, give_up_at: float) -> None:
        pending = self._first_bytes(fd, give_up_at)
        if not pending:
            return
        start_mono, start_wall = time.monotonic(), time.time()
        print(json.dumps({"started_at": start_wall}), flush=True)
        period = 0
        writer_gone = False
        while not self.stop.is_set() and time.monotonic() < give_up_at:
            due = start_mono + period * PERIOD_S
            lateness = time.monotonic() - due
            if lateness < 0:
                time.sleep(-lateness)
            else:
                self.max_lateness_s = max(self.max_lateness_s, lateness)
            # behind schedule, the player was blocked on a full device: give it a moment to
            # write what a sound card would have taken meanwhile
            grace_until = time.monotonic() + (CATCH_UP_GRACE_S if lateness > 0 else 0.0)
            while len(pending) < PERIOD_BYTES and not writer_gone:
                try:
                    data = os.read(fd, PERIOD_BYTES - len(pending))
                except BlockingIOError:
                    wait = grace_until - time.monotonic()
                    if wait <= 0:
                        break
                    select.select([fd], [], [], wait)
                    continue
                if not data:
                    writer_gone = True
                pending += data
            chunk, pending = pending[:PERIOD_BYTES], b""
            if len(chunk) < PERIOD_BYTES:
                if writer_gone and not chunk:
                    return
                self.underruns_at.append(start_wall + period * PERIOD_S)
            chunk = chunk[: len(chunk) - len(chunk) % BYTES_PER_SAMPLE]
            pcm = np.frombuffer(chunk, dtype="<i2").astype(np.float32) / INT16_FULL_SCALE
            at = start_wall + period * PERIOD_S
            for offset in range(0, pcm.size, DETECT_STEP_SAMPLES):
                piece = pcm[offset : offset + DETECT_STEP_SAMPLES]
                self._detector.feed(piece, at + offset / SAMPLE_RATE_HZ)
            self.samples_played += pcm.size
            period += 1


async def play_marks(
    url: str, *, duration_s: float, player: str = "ffplay", start_timeout_s: float = 15.0
) -> Played:
    """Play `url` for `duration_s` from the first sample played; the marks heard, and how."""
    probe = PlayerProbe(url, player=player, max_s=duration_s + start_timeout_s + 5)
    try:
        await probe.start()
        await probe.wait_playing(start_timeout_s)
        await asyncio.sleep(duration_s)
    finally:
        played = probe.stop()
    return played


def _write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(BYTES_PER_SAMPLE)
        out.setframerate(SAMPLE_RATE_HZ)
        out.writeframes((np.clip(pcm, -1, 1) * 32_767).astype("<i2").tobytes())


async def calibrate(player: str = "ffplay", marks: int = 12) -> dict[str, float]:
    """Play a local WAV whose marks lie at known offsets: each mark's played spacing against
    the file's (0 on a paced device), the silence played before the file (START_SILENCE_MAX_S),
    the underruns before the last mark (0) and the device thread's lateness (a few ms). A
    player starved of CPU on a loaded machine underruns, and the calibration says so."""
    train = mark_train(marks, lead_s=1.0, seed=3)
    with tempfile.TemporaryDirectory(prefix="rostra-calibrate-") as folder:
        path = Path(folder) / "marks.wav"
        _write_wav(path, train.pcm)
        length_s = train.pcm.size / SAMPLE_RATE_HZ
        played = await play_marks(str(path), duration_s=length_s + 1.0, player=player)
    if len(played.marks) != marks:
        raise RuntimeError(f"heard {len(played.marks)} of {marks} marks: {played.errors}")
    file_s = (train.starts[-1] - train.starts[0]) / SAMPLE_RATE_HZ
    played_s = played.marks[-1].at - played.marks[0].at
    steps = np.diff([m.at for m in played.marks]) - np.diff(train.starts) / SAMPLE_RATE_HZ
    figures = {
        "marks": marks,
        "file_span_s": round(file_s, 4),
        "played_span_s": round(played_s, 4),
        "largest_step_error_s": round(float(np.abs(steps).max()), 4),
        "silence_before_file_s": round(
            played.marks[0].at - (played.started_at or 0) - train.starts[0] / SAMPLE_RATE_HZ, 4
        ),
        "underrun_periods_before_last_mark": sum(
            t <= played.marks[-1].at for t in played.underruns_at
        ),
        "max_wake_lateness_s": round(played.max_wake_lateness_s, 4),
    }
    silence_s = figures["silence_before_file_s"]
    if (
        figures["largest_step_error_s"] > CALIBRATION_TOLERANCE_S
        or not -CALIBRATION_TOLERANCE_S <= silence_s <= START_SILENCE_MAX_S[player]
        or figures["underrun_periods_before_last_mark"]
    ):
        raise RuntimeError(f"the device does not play the file as it is: {figures}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true", help="check the device's pacing")
    parser.add_argument("--url", help="play this stream and print the marks heard")
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--player", choices=PLAYERS, default="ffplay")
    parser.add_argument("--device", metavar="FIFO", help="be the device reading FIFO (internal)")
    parser.add_argument("--buffer-bytes", type=int, default=device_buffer_bytes("ffplay"))
    args = parser.parse_args()
    with contextlib.suppress(PermissionError):  # ahead of other work, as the benchmarks' clients
        os.setpriority(os.PRIO_PROCESS, 0, min(os.getpriority(os.PRIO_PROCESS, 0), NICENESS))
    if args.device:
        run_device(args.device, args.duration_s, args.buffer_bytes)
    elif args.url:
        played = asyncio.run(play_marks(args.url, duration_s=args.duration_s, player=args.player))
        print(played.summary())
    else:
        print(asyncio.run(calibrate(args.player)))


if __name__ == "__main__":
    main()
