"""The mixer: sums the voices on stage into the program and a mix-minus for each speaker.

Media plane, pure: no threads, no I/O (media/pipeline.py drives it on its own clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from rostra.media.audio import FRAME_SAMPLES, Pcm, silence
from rostra.media.loudness import Limiter


@dataclass(slots=True)
class MixResult:
    program: Pcm
    mix_minus: dict[str, Pcm] = field(default_factory=dict)


class Mixer:
    """Keeps one limiter for the program and one per mix-minus, so gains move smoothly."""

    def __init__(self) -> None:
        self._program_limiter = Limiter()
        self._minus_limiters: dict[str, Limiter] = {}

    @property
    def speaker_count(self) -> int:
        """Speakers with state kept here (a mix-minus limiter each)."""
        return len(self._minus_limiters)

    def forget(self, speaker: str) -> None:
        self._minus_limiters.pop(speaker, None)

    def mix(self, voices: Mapping[str, Pcm | None], listeners: list[str]) -> MixResult:
        """`voices`: this frame of each speaker (None: silent or stalled); `listeners`: who gets
        a mix-minus back (every connected speaker)."""
        total = np.zeros(FRAME_SAMPLES, dtype=np.float64)
        for frame in voices.values():
            if frame is not None:
                total += frame
        program = self._program_limiter.process(total.astype(np.float32))
        result = MixResult(program=program)
        if len(self._minus_limiters) > len(listeners):
            # a speaker who left between ticks may have been forgotten before this tick began
            for gone in self._minus_limiters.keys() - set(listeners):
                del self._minus_limiters[gone]
        for speaker in listeners:
            own = voices.get(speaker)
            if own is None:
                others = total.astype(np.float32) if len(voices) else silence()
            else:
                others = (total - own).astype(np.float32)
            limiter = self._minus_limiters.setdefault(speaker, Limiter())
            result.mix_minus[speaker] = limiter.process(others)
        return result
