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
import ctypes
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from importlib import util
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from scipy.signal import resample_poly

from harness import (
    CpuMeter,
    Server,
    audio_check,
    create_space,
    percentiles,
    process_tree,
    running_server,
    wait_for_segments,
    write_results,
)
from rostra.media.captions.segmenter import RECOGNIZER_RATE_HZ, Segmenter, Utterance
from rostra.media.codecs import SEGMENT_DURATION_S
from rostra.media.hls.playlist import read_media_playlist
from rostra.media.ice import restrict_ice_host_addresses
from rostra.rehearse.speaker import PcmTrack
from speech import SENTENCES_A, SENTENCES_B, synthesize

TEXT = f"{SENTENCES_A} {SENTENCES_B}"
# espeak-ng's American voice: the models are trained on American English
VOICE = "en-us"
RECOGNIZER = "rostra.media.captions.recognizer"
POLL_S = 0.2
QUIET_S = 10.0
SETTLE_S = 8.0
MAX_WAIT_S = 30.0
CUE_RE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")
# checked by listing the wheels (pip download --no-deps): only tokenizers and code, the weights
# come from a model hub at run time
NO_MODEL_IN_WHEEL = {
    "useful-moonshine-onnx": "tokenizer only; weights fetched from a model hub at run time",
    "moonshine-voice": "tiny-en tokenizer only; weights fetched at run time",
}


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    if util.find_spec("jiwer") is not None:
        import jiwer

        return float(jiwer.wer(" ".join(words(reference)), " ".join(words(hypothesis)) or "-"))
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word)),
            )
    return row[-1] / len(ref)


def utterances(pcm_48k: np.ndarray) -> list[Utterance]:
    samples = resample_poly(pcm_48k, 1, 3).astype(np.float32)
    segmenter = Segmenter()
    return segmenter.push(samples, 0.0) + segmenter.flush()


def moonshine() -> Any:
    import moonshine_cpp

    model = moonshine_cpp.MoonshineModel()

    def transcribe(samples: np.ndarray) -> str:
        audio = np.ascontiguousarray(samples, dtype=np.float32)
        text = ctypes.c_char_p(0)
        moonshine_cpp.moonshine_lib.moonshine_transcribe(
            model.model_handle,
            audio.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            audio.size,
            ctypes.byref(text),
        )
        result = (text.value or b"").decode()
        moonshine_cpp.moonshine_lib.moonshine_free_text(text)
        return result

    return transcribe


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
    for name, load in (("moonshine-cpp (base-en)", moonshine), ("pocketsphinx", pocketsphinx)):
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


async def speak(server: Server, space: dict[str, Any], pcm: np.ndarray) -> float:
    """Publish `pcm` as a speaker until it has been said; the wall time of the WHIP POST."""
    restrict_ice_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = PcmTrack(pcm, then_silence_s=1.0)
    pc.addTransceiver(track, direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    token = space["speaker_invite_url"].split("invite=")[1]
    async with httpx.AsyncClient(timeout=30) as client:
        posted_at = time.time()
        answer = await client.post(
            f"{server.whip_base}/whip/{space['id']}",
            content=pc.localDescription.sdp.encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
    if answer.status_code != 201:
        raise RuntimeError(f"WHIP refused: {answer.status_code} {answer.text[:200]}")
    try:
        await pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
        await asyncio.sleep(track.duration_s + 0.5)
    finally:
        await pc.close()
    return posted_at


def parse_cues(document: str) -> list[tuple[float, float, str]]:
    lines = document.splitlines()
    found = []
    for index, line in enumerate(lines):
        match = CUE_RE.match(line)
        if match:
            values = [int(group) for group in match.groups()]
            start = values[0] * 3600 + values[1] * 60 + values[2] + values[3] / 1000
            end = values[4] * 3600 + values[5] * 60 + values[6] + values[7] / 1000
            found.append((start, end, lines[index + 1]))
    return found


def recognizer_pid(server: Server) -> int:
    for pid in process_tree(server.process.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if RECOGNIZER in command:
            return pid
    raise RuntimeError("no recognizer process under the server")


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
        meter = CpuMeter(recognizer_pid(server))
        with meter.window() as quiet:
            time.sleep(QUIET_S)
        seen: dict[tuple[float, float, str], float] = {}
        is_spoken = threading.Event()
        watcher = threading.Thread(target=watch_cues, args=(server, space_id, seen, is_spoken))
        watcher.start()
        with meter.window() as speaking:
            posted_at = asyncio.run(speak(server, space, pcm))
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
