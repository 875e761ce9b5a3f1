"""The recognizer process: reads the program as 16 kHz chunks on stdin, cuts it into
utterances, transcribes each offline with the Moonshine base English model that the
`moonshine-cpp` wheel ships, and writes caption cues and progress on stdout as JSON lines.

Media plane. Run as `python -m rostra.media.captions.recognizer`, a child of the origin, at a low
priority: the speakers' path never waits on it.

Stdin: chunks of `CHUNK_HEADER` (media time of the first sample, float64; sample count, uint32)
then that many float32 samples. Stdout: `{"ready": true}` once the model is loaded, then
`{"cue": [start_s, end_s, text]}` and `{"through_s": T}` (every utterance before T is done),
and `{"ended": true}` when stdin has ended and the last utterance is done.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import struct
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO, TextIO

import numpy as np

from rostra.media.captions.segmenter import Samples, Segmenter, Utterance
from rostra.media.captions.webvtt import Cue, cue_text

CHUNK_HEADER = struct.Struct("<dI")
SAMPLE_BYTES = 4
# a chunk longer than this is not from the origin: the stream is broken
MAX_CHUNK_SAMPLES = 16_000 * 10
# below the origin and the listener workers: recognition takes what the machine has left
NICENESS = 10
# a caption line as broadcast captions keep it
MAX_LINE_CHARS = 42
# every caption stays up at least this long, so a short word can be read
MIN_CUE_S = 0.8
# fast speech is about 4 words a second: more in a transcript is the model running on
MAX_WORDS_PER_S = 4.5
MIN_WORDS = 3

Transcribe = Callable[[Samples], str]


def moonshine_transcriber() -> Transcribe:
    """Load the English model from the moonshine-cpp wheel (no download) and return its call."""
    import moonshine_cpp

    model = moonshine_cpp.MoonshineModel()
    library = moonshine_cpp.moonshine_lib

    def transcribe(samples: Samples) -> str:
        audio = np.ascontiguousarray(samples, dtype=np.float32)
        text = ctypes.c_char_p(0)
        error = library.moonshine_transcribe(
            model.model_handle,
            audio.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            audio.size,
            ctypes.byref(text),
        )
        if error != 0:
            raise RuntimeError(f"moonshine_transcribe failed with error {error}")
        result = (text.value or b"").decode("utf-8", errors="replace")
        library.moonshine_free_text(text)
        return result

    return transcribe


def plausible(text: str, duration_s: float) -> str:
    """The transcript without what a sequence model invents on odd audio: a sentence said again
    straight after itself, and words beyond what anyone could say in `duration_s`."""
    sentences: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        if sentence and (not sentences or sentence.lower() != sentences[-1].lower()):
            sentences.append(sentence)
    max_words = max(MIN_WORDS, math.ceil(MAX_WORDS_PER_S * duration_s))
    return " ".join(" ".join(sentences).split()[:max_words])


def lines_of(text: str) -> list[str]:
    """The words of `text` as caption lines of at most MAX_LINE_CHARS (a longer word alone)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= MAX_LINE_CHARS:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def cues_of(utterance: Utterance, text: str) -> list[Cue]:
    """One cue per line, the utterance's time shared among them by their length in characters."""
    duration_s = utterance.end_s - utterance.start_s
    lines = [line for line in lines_of(plausible(text, duration_s)) if cue_text(line)]
    if not lines:
        return []
    total_chars = sum(len(line) for line in lines)
    span_s = utterance.end_s - utterance.start_s
    cues, start_s = [], utterance.start_s
    for line in lines:
        end_s = start_s + span_s * len(line) / total_chars
        cues.append(Cue(start_s, max(end_s, start_s + MIN_CUE_S), line))
        start_s = end_s
    return cues


def read_chunks(stream: BinaryIO) -> Iterator[tuple[float, Samples]]:
    """Chunks until the end of `stream`; ValueError on a broken one."""
    while True:
        header = stream.read(CHUNK_HEADER.size)
        if not header:
            return
        if len(header) < CHUNK_HEADER.size:
            raise ValueError("chunk header cut short")
        start_s, count = CHUNK_HEADER.unpack(header)
        if count > MAX_CHUNK_SAMPLES:
            raise ValueError(f"chunk of {count} samples exceeds {MAX_CHUNK_SAMPLES}")
        data = stream.read(count * SAMPLE_BYTES)
        if len(data) < count * SAMPLE_BYTES:
            raise ValueError("chunk samples cut short")
        yield start_s, np.frombuffer(data, dtype="<f4").astype(np.float32)


def _say(out: TextIO, message: dict[str, object]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def recognize(stream: BinaryIO, out: TextIO, transcribe: Transcribe) -> None:
    """The process's work: chunks in, cues and progress out, until the input ends."""
    segmenter = Segmenter()
    _say(out, {"ready": True})
    last_through_s = -1.0
    for start_s, samples in read_chunks(stream):
        for utterance in segmenter.push(samples, start_s):
            for cue in cues_of(utterance, transcribe(utterance.samples)):
                _say(out, {"cue": [cue.start_s, cue.end_s, cue.text]})
        if segmenter.through_s != last_through_s:
            last_through_s = segmenter.through_s
            _say(out, {"through_s": last_through_s})
    for utterance in segmenter.flush():
        for cue in cues_of(utterance, transcribe(utterance.samples)):
            _say(out, {"cue": [cue.start_s, cue.end_s, cue.text]})
    _say(out, {"ended": True})


def main() -> None:
    os.nice(NICENESS)
    recognize(sys.stdin.buffer, sys.stdout, moonshine_transcriber())


if __name__ == "__main__":
    main()
