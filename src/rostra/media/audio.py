"""The program's audio format: 48 kHz, 20 ms frames, float32 mono in [-1, 1]; PCM conversions.

Media plane.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 48_000
FRAME_SAMPLES = 960
FRAME_DURATION_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
INT16_FULL_SCALE = 32_767

Pcm = npt.NDArray[np.float32]


def silence(samples: int = FRAME_SAMPLES) -> Pcm:
    return np.zeros(samples, dtype=np.float32)


def to_int16(frame: Pcm) -> npt.NDArray[np.int16]:
    clipped = np.clip(frame, -1.0, 1.0)
    return np.round(clipped * INT16_FULL_SCALE).astype(np.int16)


def to_stereo_int16(frame: Pcm) -> npt.NDArray[np.int16]:
    """Packed L=R stereo s16, shape (1, 2n): the same level on both channels, no -3 dB upmix."""
    mono = to_int16(frame)
    return np.repeat(mono, 2).reshape(1, -1)


def from_int16(samples: npt.NDArray[np.int16]) -> Pcm:
    return (samples.astype(np.float32) / INT16_FULL_SCALE).astype(np.float32)


def rms_dbfs(frame: Pcm) -> float:
    power = float(np.mean(np.square(frame, dtype=np.float64))) if frame.size else 0.0
    return 10.0 * float(np.log10(power)) if power > 0 else float("-inf")
