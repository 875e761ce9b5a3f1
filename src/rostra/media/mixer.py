"""The mixer: levels each voice on stage, then sums them into the program and a mix-minus for
each speaker: the program through a look-ahead true-peak limiter (it delays the program by
LOOKAHEAD_SAMPLES), each mix-minus through an instant one (no added latency).

Media plane, pure: no threads, no I/O (media/pipeline.py drives it on its own clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from rostra.media.audio import FRAME_SAMPLES, Pcm, silence
from rostra.media.leveller import Leveller
from rostra.media.loudness import TRUE_PEAK_CEILING_DBTP, InstantLimiter, Limiter


@dataclass(slots=True)
class MixResult:
    program: Pcm
    mix_minus: dict[str, Pcm] = field(default_factory=dict)


class Mixer:
    """Keeps a leveller per voice, one limiter for the program and one per mix-minus, so gains
    move smoothly. A voice is levelled before the sum, so the program and every mix-minus carry
    the same levelled voices."""

    def __init__(self) -> None:
        self._program_limiter = Limiter()
        self._minus_limiters: dict[str, InstantLimiter] = {}
        self._levellers: dict[str, Leveller] = {}

    @property
    def speaker_count(self) -> int:
        """Speakers with state kept here (a mix-minus limiter and a leveller each)."""
        return max(len(self._minus_limiters), len(self._levellers))

    def forget(self, speaker: str) -> None:
        self._minus_limiters.pop(speaker, None)
        self._levellers.pop(speaker, None)

    def leveller(self, speaker: str) -> Leveller | None:
        return self._levellers.get(speaker)

    def mix(self, voices: Mapping[str, Pcm | None], listeners: list[str]) -> MixResult:
        """`voices`: this frame of each speaker (None: silent or stalled); `listeners`: who gets
        a mix-minus back (every connected speaker)."""
        levelled = self._level(voices)
        total = np.zeros(FRAME_SAMPLES, dtype=np.float64)
        for frame in levelled.values():
            total += frame
        program = self._program_limiter.process(total.astype(np.float32))
        result = MixResult(program=program)
        if len(self._minus_limiters) > len(listeners):
            # a speaker who left between ticks may have been forgotten before this tick began
            for gone in self._minus_limiters.keys() - set(listeners):
                del self._minus_limiters[gone]
        for speaker in listeners:
            own = levelled.get(speaker)
            if own is None:
                others = total.astype(np.float32) if len(voices) else silence()
            else:
                others = (total - own).astype(np.float32)
            limiter = self._minus_limiters.get(speaker)
            if limiter is None:
                # a speaker's return is heard decoded straight from Opus, not by listeners
                limiter = InstantLimiter(TRUE_PEAK_CEILING_DBTP, is_true_peak=False)
                self._minus_limiters[speaker] = limiter
            result.mix_minus[speaker] = limiter.process(others)
        return result

    def _level(self, voices: Mapping[str, Pcm | None]) -> dict[str, Pcm]:
        """Each sounding voice through its own leveller (created on its first frame); a silent
        or stalled voice's leveller holds its gain."""
        if len(self._levellers) > len(voices):
            for gone in self._levellers.keys() - voices.keys():
                del self._levellers[gone]
        levelled: dict[str, Pcm] = {}
        for speaker, frame in voices.items():
            if frame is None:
                continue
            leveller = self._levellers.get(speaker)
            if leveller is None:
                leveller = self._levellers[speaker] = Leveller()
            levelled[speaker] = leveller.process(frame)
        return levelled
