"""Comparing what a listener received with its source: find each part of a clip (following
jitter-buffer slips window by window), then PESQ wideband, band energies, level and integrated
loudness (ITU-R BS.1770 via pyloudnorm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyloudnorm
from pesq import pesq
from scipy import signal

from harness import audio_check
from speech import SAMPLE_RATE_HZ, SIBILANT_BAND_HZ, band_energy_db, rms_db

PESQ_RATE_HZ = 16_000
GAP_S = 1.0
MIN_ALIGNMENT_CORRELATION = 0.5
WINDOW_S = 0.5
SEARCH_S = 0.3
VOICED_DBFS = -40.0
SLIP_S = 0.002
SPEECH_BAND_HZ = (100.0, 4_000.0)


@dataclass(frozen=True, slots=True)
class Clip:
    """What a session sends after its lead-in silence: its parts, by name, in order."""

    parts: tuple[tuple[str, np.ndarray], ...]

    @property
    def pcm(self) -> np.ndarray:
        gap = np.zeros(int(GAP_S * SAMPLE_RATE_HZ), dtype=np.float32)
        pieces: list[np.ndarray] = []
        for _, part in self.parts:
            pieces += [part, gap]
        return np.concatenate(pieces[:-1])

    @property
    def duration_s(self) -> float:
        return float(self.pcm.size / SAMPLE_RATE_HZ)


def loudness_lufs(pcm: np.ndarray) -> float | None:
    """Integrated loudness (BS.1770 K-weighting, gated), None for a clip too short or silent."""
    if pcm.size < SAMPLE_RATE_HZ:
        return None
    value = float(pyloudnorm.Meter(SAMPLE_RATE_HZ).integrated_loudness(pcm.astype(np.float64)))
    return round(value, 2) if np.isfinite(value) else None


def to_pesq_rate(pcm: np.ndarray) -> np.ndarray:
    return signal.resample_poly(pcm.astype(np.float64), 1, SAMPLE_RATE_HZ // PESQ_RATE_HZ)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a reference sits in what a listener received, checked window by window."""

    lag: int  # sample offset of the reference's start, from whole-reference correlation
    window_correlation: float  # median over the reference's voiced half-second windows
    slips_s: tuple[float, ...]  # each jump of the local offset: audio dropped (<0) or added (>0)


def locate(received: np.ndarray, reference: np.ndarray) -> Location | None:
    """Find `reference` in `received`, then follow it in half-second windows: a jitter buffer
    that conceals or drops audio shifts the rest of the timeline, which a single whole-clip
    correlation would take for a missing clip."""
    if received.size < reference.size:
        return None
    lag = audio_check.lag_of(received, reference)
    window, search = int(WINDOW_S * SAMPLE_RATE_HZ), int(SEARCH_S * SAMPLE_RATE_HZ)
    correlations: list[float] = []
    offsets: list[int] = []
    for start in range(0, reference.size - window + 1, window):
        piece = reference[start : start + window].astype(np.float64)
        if rms_db(piece) < VOICED_DBFS:
            continue
        low = max(0, lag + start - search)
        region = received[low : lag + start + window + search].astype(np.float64)
        if region.size < window:
            break
        products = signal.fftconvolve(region, piece[::-1], mode="valid")
        running = np.concatenate([[0.0], np.cumsum(region * region)])
        energy = running[window:] - running[:-window]  # each window's energy, in O(n)
        normalized = products / (np.sqrt(np.maximum(energy, 1e-12)) * np.linalg.norm(piece))
        best = int(np.argmax(normalized))
        correlations.append(float(normalized[best]))
        offsets.append(low + best - start)
    if not correlations:
        return None
    steps = np.diff(offsets) / SAMPLE_RATE_HZ
    slips = tuple(round(float(x), 4) for x in steps if abs(x) >= SLIP_S)
    return Location(lag, float(np.median(correlations)), slips)


def assess(received: np.ndarray, clip: Clip) -> dict[str, Any]:
    """Each part found on its own (a jitter-buffer slip between parts must not hide one): PESQ
    of the clean speech, the sibilant band of the part with bursts (relative to the level:
    the band's change minus the 100–4000 Hz band's), the level and loudness of all parts."""
    figures: dict[str, Any] = {"received_s": round(received.size / SAMPLE_RATE_HZ, 2)}
    received_energy = source_energy = 0.0
    heard: list[np.ndarray] = []
    for name, part in clip.parts:
        location = locate(received, part)
        stretch = received[location.lag : location.lag + part.size] if location else received[:0]
        if location is None or stretch.size < part.size:
            figures["error"] = f"the {name} part is not in what the listener received"
            return figures
        figures[f"{name}_alignment"] = {
            "window_correlation": round(location.window_correlation, 3),
            "timeline_slips_s": list(location.slips_s),
        }
        if location.window_correlation < MIN_ALIGNMENT_CORRELATION:
            figures["error"] = f"the {name} part does not match what the listener received"
            return figures
        received_energy += float(np.sum(np.square(stretch, dtype=np.float64)))
        heard.append(stretch)
        source_energy += float(np.sum(np.square(part, dtype=np.float64)))
        if name == "speech":
            score = pesq(PESQ_RATE_HZ, to_pesq_rate(part), to_pesq_rate(stretch), "wb")
            figures["pesq_wb"] = round(float(score), 3)
        if name == "speech_with_sibilants":
            bands = {"sibilant_band_db": SIBILANT_BAND_HZ, "speech_band_db": SPEECH_BAND_HZ}
            for label, band in bands.items():
                difference = band_energy_db(stretch, band) - band_energy_db(part, band)
                figures[f"{label}_absolute"] = round(difference, 2)
            figures["sibilant_band_db"] = round(
                figures["sibilant_band_db_absolute"] - figures["speech_band_db_absolute"], 2
            )
    figures["level_db"] = round(10 * float(np.log10(received_energy / source_energy)), 2)
    figures["loudness_lufs"] = loudness_lufs(np.concatenate(heard))
    source = loudness_lufs(np.concatenate([part for _, part in clip.parts]))
    if figures["loudness_lufs"] is not None and source is not None:
        figures["loudness_vs_source_lu"] = round(figures["loudness_lufs"] - source, 2)
    return figures
