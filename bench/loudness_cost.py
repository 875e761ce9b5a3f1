"""Cost of program loudness on the mixer thread: CPU time per 20 ms frame of the per-voice
leveller, the true-peak limiter, and a whole mixer tick with 1, 4, 8 and 13 voices speaking (each
voice gets its mix-minus back), on real speech.

Run from the repository root:  .venv/bin/python bench/loudness_cost.py [--frames 1500]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from harness import percentiles, write_results
from rostra.media.audio import FRAME_DURATION_S, FRAME_SAMPLES
from rostra.media.leveller import Leveller
from rostra.media.loudness import Limiter
from rostra.media.mixer import Mixer
from speech import SENTENCES_A, SENTENCES_B, synthesize

NAME = "loudness_cost"
VOICE_COUNTS = (1, 4, 8, 13)
QUIET_GAIN = 10 ** (-20 / 20)  # half the voices 20 dB down, so every leveller has work
LIMITED_GAIN = 4.0  # the limiter's own figure is timed on speech it has to limit


def voice_frames(count: int) -> list[np.ndarray[Any, np.dtype[np.float32]]]:
    """`count` voices' frames, each from its own offset in real speech."""
    speech = np.concatenate((synthesize(SENTENCES_A), synthesize(SENTENCES_B, voice="en-us+f3")))
    frames = speech[: speech.size - speech.size % FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    return [frames[(i * 37) % len(frames) :] for i in range(count)]


def time_per_call_us(calls: list[Any]) -> dict[str, float]:
    """Runs each zero-argument call once, timing each with the thread's CPU clock."""
    spent = []
    for call in calls:
        started = time.thread_time_ns()
        call()
        spent.append((time.thread_time_ns() - started) / 1_000)
    return percentiles(spent, (50, 95, 99))


def measure(frames_per_run: int) -> dict[str, Any]:
    voices = voice_frames(max(VOICE_COUNTS))
    clip = voices[0]
    leveller, limiter = Leveller(), Limiter()
    frames = [clip[i % len(clip)] for i in range(frames_per_run)]
    figures: dict[str, Any] = {
        "leveller_us_per_voice_frame": time_per_call_us(
            [lambda f=f: leveller.process(f) for f in frames]
        ),
        "limiter_us_per_frame": time_per_call_us(
            [lambda f=f: limiter.process(f * 4) for f in frames]
        ),
        "mixer_tick_us": {},
    }
    for count in VOICE_COUNTS:
        mixer = Mixer()
        names = [f"v{i}" for i in range(count)]
        ticks = []
        for index in range(frames_per_run):
            tick = {
                name: voices[v][index % len(voices[v])] * (QUIET_GAIN if v % 2 else 1.0)
                for v, name in enumerate(names)
            }
            ticks.append(lambda tick=tick, mixer=mixer, names=names: mixer.mix(tick, names))
        figures["mixer_tick_us"][str(count)] = time_per_call_us(ticks)
    figures["frame_budget_us"] = FRAME_DURATION_S * 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_500, help="frames timed per figure")
    args = parser.parse_args()
    started_at = datetime.now(UTC)
    figures = measure(args.frames)
    path = write_results(NAME, {"frames": args.frames, **figures}, started_at=started_at)
    level = figures["leveller_us_per_voice_frame"]
    print(f"leveller: {level['p50']:.1f} µs per voice-frame (p95 {level['p95']:.1f})")
    print(f"limiter:  {figures['limiter_us_per_frame']['p50']:.1f} µs per frame")
    for count, tick in figures["mixer_tick_us"].items():
        share = tick["p50"] / figures["frame_budget_us"]
        print(
            f"mixer tick, {count:>2} voices: {tick['p50']:.0f} µs p50, {tick['p99']:.0f} µs p99 "
            f"({share:.1%} of the 20 ms frame)"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
