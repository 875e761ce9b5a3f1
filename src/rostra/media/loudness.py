"""Loudness: a look-ahead-free peak limiter that keeps the summed program from clipping.

Media plane. A single voice below the threshold passes untouched, so levels hold end to end.
"""

from __future__ import annotations

import math

import numpy as np

from rostra.media.audio import FRAME_DURATION_S, Pcm

THRESHOLD_DBFS = -1.0
RELEASE_S = 0.25


def db_to_gain(gain_db: float) -> float:
    return float(10.0 ** (gain_db / 20.0))


class Limiter:
    """Instant attack, exponential release, per 20 ms frame with a linear gain ramp."""

    def __init__(
        self, threshold_dbfs: float = THRESHOLD_DBFS, release_s: float = RELEASE_S
    ) -> None:
        self._threshold = db_to_gain(threshold_dbfs)
        self._release = math.exp(-FRAME_DURATION_S / release_s)
        self._gain = 1.0

    @property
    def gain(self) -> float:
        return self._gain

    def process(self, frame: Pcm) -> Pcm:
        peak = float(np.max(np.abs(frame))) if frame.size else 0.0
        wanted = min(1.0, self._threshold / peak) if peak > 0 else 1.0
        previous = self._gain
        # instant attack, exponential release
        target = wanted if wanted < previous else wanted - (wanted - previous) * self._release
        self._gain = target
        if previous == 1.0 and target == 1.0:
            return frame
        ramp = np.linspace(previous, target, frame.size, dtype=np.float32)
        # never let the ramp's start exceed what this frame's peak allows
        ramp = np.minimum(ramp, np.float32(wanted))
        out = (frame * ramp).astype(np.float32)
        return np.clip(out, -self._threshold, self._threshold).astype(np.float32)
