"""Utterances out of the program: 16 kHz audio cut where the speech pauses (or, in a long run of
speech, at its quietest moment), each with its start on the media timeline, for the recognizer.

Media plane. Pure numpy; runs in the recognizer's own process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RECOGNIZER_RATE_HZ = 16_000
ANALYSIS_SAMPLES = 480  # 30 ms
ANALYSIS_S = ANALYSIS_SAMPLES / RECOGNIZER_RATE_HZ
# the program is levelled to about -16 LUFS: speech is far above this, a quiet stage below it
SPEECH_THRESHOLD_DBFS = -50.0
# a pause this long ends an utterance (sentences pause longer, words within one shorter)
END_PAUSE_S = 0.3
# a longer run of speech is cut, so a caption never waits on a speaker who never pauses
MAX_UTTERANCE_S = 5.0
# where to cut it: the quietest moment of its last part
CUT_SEARCH_S = 1.5
# kept before the first loud frame, so a soft onset is not clipped
LEAD_IN_S = 0.15
# shorter bursts (a click, a cough) are not speech
MIN_SPEECH_S = 0.2
# a jump in the media timeline larger than this (audio lost on the way) ends the utterance
MAX_GAP_S = 0.1

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Utterance:
    start_s: float
    samples: Samples

    @property
    def end_s(self) -> float:
        return self.start_s + self.samples.size / RECOGNIZER_RATE_HZ


def level_dbfs(samples: Samples) -> float:
    power = float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0
    return 10 * float(np.log10(power)) if power > 0 else float("-inf")


class Segmenter:
    """Feed it consecutive audio with `push`; it hands back each utterance once it has ended.
    `through_s` is the media time before which every utterance has been handed back."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)  # not yet analysed (< one frame)
        self._pending_start_s = 0.0
        self._lead: list[Samples] = []  # quiet frames kept as lead-in
        self._speech: list[Samples] = []  # frames of the utterance in progress
        self._speech_start_s = 0.0
        self._quiet_run = 0
        self._loud_frames = 0
        self._expected_s: float | None = None

    @property
    def through_s(self) -> float:
        if self._speech:
            return self._speech_start_s
        return self._pending_start_s

    def push(self, samples: Samples, start_s: float) -> list[Utterance]:
        done: list[Utterance] = []
        if self._expected_s is not None and abs(start_s - self._expected_s) > MAX_GAP_S:
            done += self.flush()
            self._pending = np.zeros(0, dtype=np.float32)
        if not self._pending.size:
            self._pending_start_s = start_s
        self._expected_s = start_s + samples.size / RECOGNIZER_RATE_HZ
        self._pending = np.concatenate([self._pending, samples.astype(np.float32)])
        while self._pending.size >= ANALYSIS_SAMPLES:
            frame = self._pending[:ANALYSIS_SAMPLES]
            self._pending = self._pending[ANALYSIS_SAMPLES:]
            frame_start_s = self._pending_start_s
            self._pending_start_s += ANALYSIS_S
            utterance = self._analyse(frame, frame_start_s)
            if utterance is not None:
                done.append(utterance)
        return done

    def flush(self) -> list[Utterance]:
        """The utterance in progress, ended now (the program stopped, or its audio jumped)."""
        utterance = self._finish(len(self._speech))
        self._speech, self._lead = [], []
        return [utterance] if utterance is not None else []

    def _analyse(self, frame: Samples, frame_start_s: float) -> Utterance | None:
        is_loud = level_dbfs(frame) > SPEECH_THRESHOLD_DBFS
        if not self._speech:
            if not is_loud:
                self._lead = [*self._lead, frame][-round(LEAD_IN_S / ANALYSIS_S) :]
                return None
            self._speech = [*self._lead, frame]
            self._speech_start_s = frame_start_s - len(self._lead) * ANALYSIS_S
            self._lead, self._quiet_run, self._loud_frames = [], 0, 0
        else:
            self._speech.append(frame)
        self._quiet_run = 0 if is_loud else self._quiet_run + 1
        self._loud_frames += int(is_loud)
        if self._quiet_run * ANALYSIS_S >= END_PAUSE_S:
            return self._cut(len(self._speech))
        if len(self._speech) * ANALYSIS_S >= MAX_UTTERANCE_S:
            return self._cut(self._quietest_cut())
        return None

    def _quietest_cut(self) -> int:
        search = round(CUT_SEARCH_S / ANALYSIS_S)
        first = max(1, len(self._speech) - search)
        levels = [level_dbfs(frame) for frame in self._speech[first:]]
        return first + int(np.argmin(levels)) + 1

    def _cut(self, frames: int) -> Utterance | None:
        """Hand back the first `frames` of the utterance; the rest starts the next one."""
        utterance = self._finish(frames)
        rest = self._speech[frames:]
        self._speech_start_s += frames * ANALYSIS_S
        self._speech = rest
        self._quiet_run = 0
        self._loud_frames = sum(level_dbfs(frame) > SPEECH_THRESHOLD_DBFS for frame in rest)
        if rest and not self._loud_frames:
            self._lead, self._speech = rest[-round(LEAD_IN_S / ANALYSIS_S) :], []
        return utterance

    def _finish(self, frames: int) -> Utterance | None:
        taken = self._speech[:frames]
        loud = sum(level_dbfs(frame) > SPEECH_THRESHOLD_DBFS for frame in taken)
        if not taken or loud * ANALYSIS_S < MIN_SPEECH_S:
            return None
        return Utterance(self._speech_start_s, np.concatenate(taken))
