"""Live captions: which recognizer, and what it costs.

1. Offline, on espeak-ng speech of known text cut by the captions' own segmenter: word error rate
   and CPU (seconds per second of audio) of each recognizer whose package ships its model
   (pocketsphinx, moonshine-cpp); the Moonshine packages that fetch their model at run time are
   listed as such, since this machine reaches no model hub.
2. Live, through a real server with ROSTRA_CAPTIONS=1: a WHIP speaker says the text; the bench
   reads /live/{id}/captions.vtt every 0.2 s. Word error rate; each utterance's first cue against
   the program time of its words (found in the recording); when each cue could be read against
   when its words were spoken into the program, beside the same figure for the audio segments;
   the recognizer process's CPU per space while people speak and while the stage is quiet.

    .venv/bin/python bench/captions.py
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
from scipy.signal import resample_poly

from harness import (
    CpuMeter,
    Server,
    audio_check,
    create_space,
    percentiles,
    running_server,
    wait_for_segments,
    write_results,
)
from rostra.media.captions.playlist import CUES_LOG_NAME
from rostra.media.captions.recognizer import moonshine_transcriber
from rostra.media.captions.segmenter import RECOGNIZER_RATE_HZ, Segmenter, Utterance
from rostra.media.codecs import SEGMENT_DURATION_S
from rostra.media.hls.playlist import read_media_playlist
from speech import SENTENCES_A, SENTENCES_B, synthesize

# isort: split
# after harness, which puts the repository's root on the path
from tests.captions_check import VOICE, parse_cues, recognizer_pid, speak, word_error_rate

TEXT = f"{SENTENCES_A} {SENTENCES_B}"
POLL_S = 0.2
QUIET_S = 10.0
SETTLE_S = 8.0
MAX_WAIT_S = 30.0
# checked by listing the wheels (pip download --no-deps): only tokenizers and code, the weights
# come from a model hub at run time
NO_MODEL_IN_WHEEL = {
    "useful-moonshine-onnx": "tokenizer only; weights fetched from a model hub at run time",
    "moonshine-voice": "tiny-en tokenizer only; weights fetched at run time",
}


def utterances(pcm_48k: np.ndarray) -> list[Utterance]:
    samples = resample_poly(pcm_48k, 1, 3).astype(np.float32)
    segmenter = Segmenter()
    return segmenter.push(samples, 0.0) + segmenter.flush()


def pocketsphinx() -> Any:
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=RECOGNIZER_RATE_HZ, loglevel="FATAL")

    def transcribe(samples: np.ndarray) -> str:
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    return transcribe


def offline(pcm_48k: np.ndarray) -> dict[str, Any]:
    pieces = utterances(pcm_48k)
    audio_s = pcm_48k.size / 48_000
    figures: dict[str, Any] = {"audio_s": round(audio_s, 2), "utterances": len(pieces)}
    loads = (("moonshine-cpp (base-en)", moonshine_transcriber), ("pocketsphinx", pocketsphinx))
    for name, load in loads:
        started = time.process_time()
        transcribe = load()
        load_s = time.process_time() - started
        started = time.process_time()
        text = " ".join(transcribe(piece.samples) for piece in pieces)
        cpu_s = time.process_time() - started
        figures[name] = {
            "word_error_rate": round(word_error_rate(TEXT, text), 3),
            "cpu_s_per_audio_s": round(cpu_s / audio_s, 3),
            "model_load_cpu_s": round(load_s, 2),
            "text": text,
        }
        print(f"{name}: WER {figures[name]['word_error_rate']}, {cpu_s / audio_s:.3f} CPU s/s")
    figures["not_measured"] = NO_MODEL_IN_WHEEL
    return figures


def watch_cues(
    server: Server,
    space_id: str,
    seen: dict[tuple[float, float, str], float],
    is_spoken: threading.Event,
) -> None:
    """Poll the live document while the speaker speaks, then until it has gained nothing for
    SETTLE_S (or MAX_WAIT_S after the speech): when each cue was first readable."""
    while not is_spoken.is_set():
        text = httpx.get(f"{server.url}/live/{space_id}/captions.vtt", timeout=5).text
        for cue in parse_cues(text):
            seen.setdefault(cue, time.time())
        time.sleep(POLL_S)
    deadline = time.monotonic() + MAX_WAIT_S
    last_gain = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_gain < SETTLE_S:
        text = httpx.get(f"{server.url}/live/{space_id}/captions.vtt", timeout=5).text
        for cue in parse_cues(text):
            if cue not in seen:
                seen[cue] = time.time()
                last_gain = time.monotonic()
        time.sleep(POLL_S)


def timeline(server: Server, space_id: str) -> tuple[int, datetime]:
    """A segment's sequence number and date-time: the program's media time to wall clock."""
    text = httpx.get(f"{server.url}/live/{space_id}/audio.m3u8", timeout=5).text
    segment = read_media_playlist(text).segments[0]
    assert segment.program_date_time is not None
    return segment.sequence_number, segment.program_date_time


def live(pcm: np.ndarray) -> dict[str, Any]:
    with running_server({"ROSTRA_CAPTIONS": "1"}) as server:
        space = create_space(server, "Captions bench")
        space_id = space["id"]
        asyncio.run(wait_for_segments(f"{server.url}/live/{space_id}/audio.m3u8"))
        time.sleep(1.0)
        pid = recognizer_pid(server.process.pid)
        if pid is None:
            raise RuntimeError("no recognizer process under the server")
        meter = CpuMeter(pid)
        with meter.window() as quiet:
            time.sleep(QUIET_S)
        seen: dict[tuple[float, float, str], float] = {}
        is_spoken = threading.Event()
        watcher = threading.Thread(target=watch_cues, args=(server, space_id, seen, is_spoken))
        watcher.start()
        with meter.window() as speaking:
            posted_at = asyncio.run(speak(server.whip_base, space, pcm))
        is_spoken.set()
        watcher.join()
        sequence, date_time = timeline(server, space_id)
        directory = server.data / "spaces" / space_id
        segment_delays = []
        for path in sorted(directory.glob("seg_*.m4s")):
            number = int(path.stem.split("_")[1])
            end = date_time + timedelta(seconds=(number + 1 - sequence) * SEGMENT_DURATION_S)
            segment_delays.append(path.stat().st_mtime - end.timestamp())
        ended = server.api("POST", f"/api/v1/spaces/{space_id}/end")
        if ended.status_code != 200:
            raise RuntimeError(f"end refused: {ended.status_code}")
        recording = directory / "recording.mp4"
        recording.write_bytes(
            (directory / "init.mp4").read_bytes()
            + b"".join(p.read_bytes() for p in sorted(directory.glob("seg_*.m4s")))
        )
        program = audio_check.decode(recording)
        stopped = [line for line in server.log().splitlines() if "captions stopped" in line]
        log_bytes = (directory / CUES_LOG_NAME).stat().st_size
    cues = sorted(seen)
    text = " ".join(cue[2] for cue in cues)

    def wall(media_s: float) -> float:
        return (date_time + timedelta(seconds=media_s - sequence * SEGMENT_DURATION_S)).timestamp()

    # the program's own utterances (media time: the recording starts at segment 0)
    spoken = utterances(program)
    offsets = []
    for utterance in spoken:
        nearest = min(cues, key=lambda cue: abs(cue[0] - utterance.start_s), default=None)
        if nearest is not None:
            offsets.append(nearest[0] - utterance.start_s)
    availability = [seen[cue] - wall(cue[1]) for cue in cues]
    speech_s = pcm.size / 48_000
    return {
        "word_error_rate": round(word_error_rate(TEXT, text), 3),
        "text": text,
        "cues": len(cues),
        # the space's captions.jsonl, which grows with what is said (the rest is bounded)
        "cues_log_kb_per_hour_of_speech": round(log_bytes / 1000 * 3600 / speech_s, 1),
        "first_cue_after_post_s": round(wall(cues[0][0]) - posted_at, 3) if cues else None,
        "cue_start_minus_program_utterance_start_s": percentiles(offsets),
        "cue_readable_after_its_words_s": percentiles(availability),
        "audio_segment_readable_after_its_end_s": percentiles(segment_delays),
        "worker_at_the_end": json.loads(stopped[-1]) if stopped else None,
        "recognizer_cpu": {
            "quiet_stage": quiet,
            "speaking": speaking,
            "speaking_cpu_s_per_speech_s": round(speaking["cpu_s"] / speech_s, 3),
        },
    }


def main() -> None:
    started_at = datetime.now(UTC)
    pcm = synthesize(TEXT, voice=VOICE)
    figures = {"text": TEXT, "voice": VOICE, "offline": offline(pcm)}
    figures["live"] = live(pcm)
    live_figures = figures["live"]
    print(f"live: WER {live_figures['word_error_rate']}")
    print(f"cue readable after its words: {live_figures['cue_readable_after_its_words_s']}")
    print(f"recognizer CPU: {live_figures['recognizer_cpu']}")
    path = write_results("captions", figures, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
