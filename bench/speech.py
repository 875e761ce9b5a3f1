"""Source audio for benchmarks: real speech from espeak-ng at 48 kHz, and sibilant-like bursts of
4–16 kHz noise (espeak-ng stops near 11 kHz) to make a full-band source.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal

SAMPLE_RATE_HZ = 48_000
SPEECH_PEAK = 0.5  # -6 dBFS: below the program limiter's -1 dBFS threshold, with headroom
SIBILANT_BAND_HZ = (4_000.0, 16_000.0)
BURST_S = (0.06, 0.14)
BURST_GAP_S = (0.25, 0.6)
BURST_RMS_RELATIVE_DB = -12.0  # against the speech's RMS: about as loud as an "s"
FILTER_ORDER = 8

Pcm = npt.NDArray[np.float32]

SENTENCES_A = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls."
)
SENTENCES_B = (
    "The juice of lemons makes fine punch. The box was thrown beside the parked truck. "
    "The hogs were fed chopped corn and garbage. Four hours of steady work faced us. "
    "A large size in stockings is hard to sell."
)


def synthesize(text: str, *, voice: str = "en", words_per_minute: int = 150) -> Pcm:
    """espeak-ng speech, resampled to 48 kHz mono by ffmpeg, peak-normalised to -6 dBFS."""
    if shutil.which("espeak-ng") is None or shutil.which("ffmpeg") is None:
        raise RuntimeError("espeak-ng and ffmpeg are needed: `make system-test-deps`")
    with tempfile.TemporaryDirectory(prefix="rostra-speech-") as folder:
        raw = Path(folder) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        result = subprocess.run(
            [
                *("ffmpeg", "-v", "error", "-nostdin", "-i", str(raw)),
                *("-ac", "1", "-ar", str(SAMPLE_RATE_HZ), "-f", "f32le", "-"),
            ],
            check=True,
            capture_output=True,
        )
    pcm = np.frombuffer(result.stdout, dtype=np.float32).copy()
    peak = float(np.max(np.abs(pcm))) if pcm.size else 0.0
    return (pcm * (SPEECH_PEAK / peak)).astype(np.float32) if peak > 0 else pcm


def bandpass(pcm: Pcm, band_hz: tuple[float, float]) -> Pcm:
    sos = signal.butter(FILTER_ORDER, band_hz, btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    return signal.sosfiltfilt(sos, pcm).astype(np.float32)


def with_sibilants(speech: Pcm, *, seed: int) -> Pcm:
    """`speech` with short 4–16 kHz noise bursts mixed in, at irregular seeded moments."""
    rng = np.random.default_rng(seed)
    noise = bandpass(rng.standard_normal(speech.size).astype(np.float32), SIBILANT_BAND_HZ)
    speech_rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64))))
    noise_rms = float(np.sqrt(np.mean(np.square(noise, dtype=np.float64))))
    gain = speech_rms / noise_rms * 10 ** (BURST_RMS_RELATIVE_DB / 20)
    gate = np.zeros(speech.size, dtype=np.float32)
    position = int(rng.uniform(*BURST_GAP_S) * SAMPLE_RATE_HZ)
    while position < speech.size:
        length = int(rng.uniform(*BURST_S) * SAMPLE_RATE_HZ)
        window = np.hanning(length).astype(np.float32)[: speech.size - position]
        gate[position : position + window.size] = window
        position += length + int(rng.uniform(*BURST_GAP_S) * SAMPLE_RATE_HZ)
    mixed = speech + gain * gate * noise
    peak = float(np.max(np.abs(mixed)))
    return (mixed * min(1.0, SPEECH_PEAK / peak)).astype(np.float32)


def band_energy_db(pcm: Pcm, band_hz: tuple[float, float]) -> float:
    """Energy of `pcm` within `band_hz`, in dB (from the whole clip's spectrum)."""
    spectrum = np.fft.rfft(pcm.astype(np.float64))
    frequencies = np.fft.rfftfreq(pcm.size, 1 / SAMPLE_RATE_HZ)
    inside = (frequencies >= band_hz[0]) & (frequencies < band_hz[1])
    energy = float(np.sum(np.abs(spectrum[inside]) ** 2))
    return 10 * float(np.log10(energy)) if energy > 0 else float("-inf")


def rms_db(pcm: Pcm) -> float:
    power = float(np.mean(np.square(pcm, dtype=np.float64))) if pcm.size else 0.0
    return 10 * float(np.log10(power)) if power > 0 else float("-inf")
