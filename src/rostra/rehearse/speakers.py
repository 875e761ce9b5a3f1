"""The speakers of a rehearsal: K `rostra speak` processes (never inside the load generator's
gevent process), each recording the mix-minus it hears back, and the check of each return:
continuous (no gap of silence), the others heard, its own voice absent. Tones make the check
exact: each speaker's tone is a band of the spectrum of its own.

Rehearsal plane (a client).
"""

from __future__ import annotations

import subprocess
import sys
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rostra.rehearse.frames import FRAME_SAMPLES, SAMPLE_RATE_HZ, WAV_SAMPLE_BYTES

FULL_SCALE = 32_768.0
# analysis windows of 0.1 s: 10 Hz bins, fine enough to tell tones 50 Hz apart
ANALYSIS_WINDOW_SAMPLES = SAMPLE_RATE_HZ // 10
TONE_BAND_HZ = 20.0
# a tone is heard when its band stands this far above the spectrum's median (the floor)
HEARD_DB = 20.0
FLOOR_BELOW_MEAN_DB = 60.0
# a mix-minus carries its speaker's own tone at least this far under the loudest other one
OWN_BELOW_OTHERS_DB = 30.0
# the end of a return is left out: the speakers do not stop at the same instant
TAIL_S = 1.0
# a frame quieter than this is silence; that many seconds of it in a row is a gap
SILENCE_DBFS = -50.0
MAX_GAP_S = 0.2
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class SpeakerPlan:
    """One speaker: a name, what it says (a tone in Hz, or a file) and its invite link."""

    name: str
    invite_url: str
    tone_hz: float | None = None
    file: Path | None = None

    def __post_init__(self) -> None:
        if (self.tone_hz is None) == (self.file is None):
            raise ValueError(f"speaker {self.name!r} says a tone or a file, exactly one")


@dataclass(frozen=True, slots=True)
class Continuity:
    """What a speaker heard back: gaps of silence (start and length, seconds into the return),
    its own tone's level above the floor (dB; None for a file speaker) and the others' levels."""

    name: str
    heard_s: float
    gaps: tuple[tuple[float, float], ...]
    own_db: float | None
    others_db: dict[str, float]

    @property
    def hears_itself(self) -> bool:
        """Its own tone stands above the floor, and is not far under the others' (a codec's
        noise next to a loud tone lifts a quiet band a little; an echo is of the others' order)."""
        if self.own_db is None or self.own_db <= HEARD_DB:
            return False
        loudest_db = max(self.others_db.values(), default=float("-inf"))
        return self.own_db > loudest_db - OWN_BELOW_OTHERS_DB

    @property
    def misses(self) -> list[str]:
        return [name for name, level in self.others_db.items() if level <= HEARD_DB]

    @property
    def is_ok(self) -> bool:
        return self.heard_s > 0 and not self.gaps and not self.hears_itself and not self.misses

    def problems(self) -> list[str]:
        """Each failed check as a sentence naming its figure."""
        found = []
        if self.heard_s <= 0:
            found.append(f"{self.name} heard nothing back")
        for start_s, length_s in self.gaps:
            found.append(f"{self.name} heard {length_s:.2f} s of silence at {start_s:.2f} s")
        if self.hears_itself:
            found.append(f"{self.name} hears its own voice ({self.own_db:.0f} dB above the floor)")
        for name in self.misses:
            found.append(f"{self.name} does not hear {name} ({self.others_db[name]:.0f} dB)")
        return found


def read_wav(path: Path) -> npt.NDArray[np.float32]:
    """A mono 16-bit WAV (as `--record-return` writes it) as float32 in [-1, 1)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != WAV_SAMPLE_BYTES:
            raise ValueError(f"{path} is not a mono 16-bit WAV")
        if wav.getframerate() != SAMPLE_RATE_HZ:
            raise ValueError(f"{path} is at {wav.getframerate()} Hz, not {SAMPLE_RATE_HZ}")
        raw = wav.readframes(wav.getnframes())
    return (np.frombuffer(raw, dtype=np.int16).astype(np.float32)) / FULL_SCALE


def silence_gaps(audio: npt.NDArray[np.float32], *, skip_s: float) -> list[tuple[float, float]]:
    """Runs of 20 ms frames quieter than SILENCE_DBFS lasting more than MAX_GAP_S, after the
    first `skip_s` (the others may start a little later)."""
    start = int(skip_s * SAMPLE_RATE_HZ) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = audio[start : start + (audio.size - start) // FRAME_SAMPLES * FRAME_SAMPLES]
    if frames.size == 0:
        return []
    power = np.mean(np.square(frames.reshape(-1, FRAME_SAMPLES), dtype=np.float64), axis=1)
    quiet = power < 10 ** (SILENCE_DBFS / 10)
    gaps: list[tuple[float, float]] = []
    run_start: int | None = None
    for index, is_quiet in enumerate([*quiet.tolist(), False]):
        if is_quiet and run_start is None:
            run_start = index
        elif not is_quiet and run_start is not None:
            length_s = (index - run_start) * FRAME_SAMPLES / SAMPLE_RATE_HZ
            if length_s > MAX_GAP_S:
                gaps.append((skip_s + run_start * FRAME_SAMPLES / SAMPLE_RATE_HZ, length_s))
            run_start = None
    return gaps


def tone_levels_db(
    audio: npt.NDArray[np.float32], tones_hz: Sequence[float], *, skip_s: float
) -> list[float]:
    """Each tone's band energy per bin (±TONE_BAND_HZ) over the spectrum's floor, in dB, from
    the averaged power spectrum of Hann-windowed 0.1 s pieces."""
    body = audio[int(skip_s * SAMPLE_RATE_HZ) :]
    pieces = body.size // ANALYSIS_WINDOW_SAMPLES
    if pieces == 0:
        return [float("-inf")] * len(tones_hz)
    shaped = body[: pieces * ANALYSIS_WINDOW_SAMPLES].reshape(pieces, ANALYSIS_WINDOW_SAMPLES)
    spectrum = np.mean(
        np.abs(np.fft.rfft(shaped * np.hanning(ANALYSIS_WINDOW_SAMPLES), axis=1)) ** 2, axis=0
    )
    freqs = np.fft.rfftfreq(ANALYSIS_WINDOW_SAMPLES, 1 / SAMPLE_RATE_HZ)
    bin_width = float(freqs[1])
    speech_band = spectrum[(freqs > 50) & (freqs < 8000)]
    # the median bin; never more than FLOOR_BELOW_MEAN_DB under the mean (a synthetic signal
    # has almost no noise, and a window's leakage would stand above nothing)
    floor = max(
        float(np.median(speech_band)),
        float(np.mean(speech_band)) * 10 ** (-FLOOR_BELOW_MEAN_DB / 10),
        1e-20,
    )
    levels = []
    for tone_hz in tones_hz:
        band = spectrum[np.abs(freqs - tone_hz) <= TONE_BAND_HZ]
        per_bin = float(np.sum(band)) / max(1.0, TONE_BAND_HZ * 2 / bin_width)
        levels.append(10 * float(np.log10(max(per_bin, 1e-30) / floor)))
    return levels


def check_return(
    path: Path, plan: SpeakerPlan, others: Sequence[SpeakerPlan], *, skip_s: float = 2.0
) -> Continuity:
    """The continuity of what `plan`'s speaker heard back, with `others` on stage, from
    `skip_s` in (the others may start later) to TAIL_S before its end."""
    audio = read_wav(path) if path.exists() else np.zeros(0, dtype=np.float32)
    audio = audio[: max(0, audio.size - int(TAIL_S * SAMPLE_RATE_HZ))]
    heard_s = max(0.0, audio.size / SAMPLE_RATE_HZ - skip_s)
    tones = [p.tone_hz for p in [plan, *others] if p.tone_hz is not None]
    levels = iter(tone_levels_db(audio, tones, skip_s=skip_s))
    own_db = next(levels) if plan.tone_hz is not None else None
    others_db = {p.name: next(levels) for p in others if p.tone_hz is not None}
    gaps = tuple(silence_gaps(audio, skip_s=skip_s)) if heard_s > 0 else ()
    return Continuity(plan.name, heard_s, gaps, own_db, others_db)


class Speakers:
    """K `rostra speak` processes, each recording its return in `directory/NAME.wav`; started
    together, waited for (they stop by themselves after `seconds`) or stopped by PID."""

    def __init__(self, plans: Sequence[SpeakerPlan], *, seconds: float, directory: Path) -> None:
        if len({p.name for p in plans}) != len(plans):
            raise ValueError("speakers need distinct names (each records NAME.wav)")
        self.plans = list(plans)
        self.seconds = seconds
        self.directory = directory
        self._processes: list[subprocess.Popen[bytes]] = []

    def return_path(self, plan: SpeakerPlan) -> Path:
        return self.directory / f"{plan.name}.wav"

    def command(self, plan: SpeakerPlan) -> list[str]:
        said = (
            ["--tone", str(plan.tone_hz)]
            if plan.tone_hz is not None
            else ["--file", str(plan.file)]
        )
        return [
            sys.executable,
            "-m",
            "rostra",
            "speak",
            plan.invite_url,
            *said,
            "--name",
            plan.name,
            "--seconds",
            str(self.seconds),
            "--record-return",
            str(self.return_path(plan)),
        ]

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for plan in self.plans:
            log = (self.directory / f"{plan.name}.log").open("wb")
            with log:
                self._processes.append(
                    # our own interpreter running `rostra speak`, arguments as a list, no shell
                    subprocess.Popen(  # noqa: S603
                        self.command(plan), stdout=log, stderr=subprocess.STDOUT
                    )
                )

    def wait(self, timeout_s: float) -> list[int | None]:
        """Each speaker's exit status (None: still running after `timeout_s` in all)."""
        codes: list[int | None] = []
        for process in self._processes:
            try:
                codes.append(process.wait(timeout=timeout_s))
            except subprocess.TimeoutExpired:
                codes.append(None)
        return codes

    def stop(self) -> None:
        """SIGTERM each speaker still running (by its PID), SIGKILL after STOP_TIMEOUT_S."""
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _others(self, plan: SpeakerPlan) -> list[SpeakerPlan]:
        return [p for p in self.plans if p is not plan]

    def check(self, *, skip_s: float = 2.0) -> list[Continuity]:
        """Every speaker's return checked against the others on stage."""
        return [
            check_return(
                self.return_path(plan),
                plan,
                [p for p in self.plans if p is not plan],
                skip_s=skip_s,
            )
            for plan in self.plans
        ]
