"""Listening as a test: decode real media with ffmpeg, and compare audio by cross-correlation."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal

SAMPLE_RATE_HZ = 48_000
Audio = npt.NDArray[np.float32]


def decode(
    source: str | Path,
    *,
    seconds: float | None = None,
    start_s: float | None = None,
    timeout_s: float = 60,
) -> Audio:
    """Any file or URL (HLS, ADTS, Ogg, WAV…) → mono float32 at 48 kHz, through ffmpeg."""
    command = ["ffmpeg", "-v", "error", "-nostdin"]
    if start_s is not None:
        command += ["-ss", str(start_s)]
    command += ["-i", str(source)]
    if seconds is not None:
        command += ["-t", str(seconds)]
    command += ["-ac", "1", "-ar", str(SAMPLE_RATE_HZ), "-f", "f32le", "-"]
    result = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    return np.frombuffer(result.stdout, dtype=np.float32).copy()


def capture(url: str, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start a real client decoding `seconds` of a live URL into a WAV file."""
    return subprocess.Popen(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-i",
            url,
            "-t",
            str(seconds),
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE_HZ),
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _band(audio: Audio) -> Audio:
    """Speech band only: codecs and mixing keep it; rumble and hiss do not matter here."""
    sos = signal.butter(4, [100, 7000], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
    return signal.sosfilt(sos, audio).astype(np.float32)


def peak_correlation(haystack: Audio, needle: Audio) -> float:
    """Highest normalised cross-correlation of `needle` against every window of `haystack`."""
    if haystack.size < needle.size or needle.size == 0:
        return 0.0
    x = _band(haystack).astype(np.float64)
    y = _band(needle).astype(np.float64)
    y -= y.mean()
    norm_y = float(np.sqrt(np.sum(y * y)))
    if norm_y == 0:
        return 0.0
    products = signal.fftconvolve(x, y[::-1], mode="valid")
    running = np.concatenate(([0.0], np.cumsum(x * x)))
    energy = running[y.size :] - running[: -y.size]
    denominator = np.sqrt(np.maximum(energy, 1e-12)) * norm_y
    return float(np.max(products / denominator))


def speech_correlation(haystack: Audio, needle: Audio, *, chunk_s: float = 2.0) -> float:
    """The peak correlation of `needle` as a whole, or the median over its voiced 2 s pieces of
    each piece's peak correlation when that is higher.

    A live path may slip its timeline by a frame or two (a jitter buffer catching up under load);
    each piece finds its own alignment, so a slip between pieces does not hide a voice that is
    there, and a voice that is not there still scores low on every piece.
    """
    size = int(chunk_s * SAMPLE_RATE_HZ)
    pieces = [needle[start : start + size] for start in range(0, needle.size - size + 1, size)]
    loudest = max((float(np.sqrt(np.mean(p * p))) for p in pieces), default=0.0)
    voiced = [p for p in pieces if float(np.sqrt(np.mean(p * p))) > 0.25 * loudest]
    whole = peak_correlation(haystack, needle)
    if not voiced:
        return whole
    return max(whole, float(np.median([peak_correlation(haystack, piece) for piece in voiced])))


def lag_of(haystack: Audio, needle: Audio) -> int:
    """Sample offset of `needle` in `haystack` at peak correlation."""
    products = signal.fftconvolve(_band(haystack), _band(needle)[::-1], mode="valid")
    return int(np.argmax(products))


def rms_db(audio: Audio) -> float:
    power = float(np.mean(np.square(audio.astype(np.float64)))) if audio.size else 0.0
    return 10 * float(np.log10(power)) if power > 0 else float("-inf")
