"""The origin's caption worker against real child processes that misbehave as a recognizer might:
lines it cannot read, a child that hangs without dying, a child that dies as soon as it starts.
The program is fed as the encoder feeds it (20 ms frames, never waiting)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rostra.media.audio import FRAME_DURATION_S, silence
from rostra.media.captions.playlist import LIVE_DOCUMENT_NAME
from rostra.media.captions.worker import CaptionWorker

READY = json.dumps({"ready": True})
MALFORMED = [
    "a native library's own print",
    "[1, 2]",
    "[" * 100_000,  # deeper than the JSON parser recurses
    json.dumps({"cue": [5.0, 1.0, "ends before it starts"]}),
    json.dumps({"cue": ["soon", 2.0, "not a time"]}),
    json.dumps({"cue": [1.0, 2.0, "a lone \ud800 surrogate"]}),
    json.dumps({"cue": [1.0, 2.0, "\x00\x1b[31m -->"]}),
    json.dumps({"through_s": "later"}),
]


def child(tmp_path: Path, name: str, body: str) -> tuple[str, ...]:
    script = tmp_path / f"{name}.py"
    script.write_text(f"import sys, time\n{body}\n")
    return (sys.executable, str(script))


def worker_for(tmp_path: Path, command: tuple[str, ...], **options: float) -> CaptionWorker:
    return CaptionWorker(
        tmp_path / "space",
        first_sequence=0,
        window_segments=3,
        anchor=lambda: None,
        on_fault=lambda part, error: None,
        command=command,
        **options,
    )


def feed_until(worker: CaptionWorker, done: object, timeout_s: float) -> bool:
    """Feed silence in real time until `done()` or the timeout; whether it came true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker.feed(silence())
        if done():  # type: ignore[operator]
            return True
        time.sleep(FRAME_DURATION_S)
    return False


def test_malformed_recognizer_lines_are_skipped_and_later_cues_still_arrive(
    tmp_path: Path,
) -> None:
    lines = [READY, *MALFORMED, json.dumps({"cue": [3.0, 4.0, "still captioned"]})]
    command = child(
        tmp_path,
        "malformed",
        f"for line in {lines!r}:\n    print(line, flush=True)\nsys.stdin.buffer.read()\n"
        f"print({json.dumps({'ended': True})!r}, flush=True)",
    )
    worker = worker_for(tmp_path, command)
    document = tmp_path / "space" / LIVE_DOCUMENT_NAME
    try:
        assert feed_until(
            worker,
            lambda: document.is_file() and "still captioned" in document.read_text(),
            timeout_s=10,
        ), document.read_text() if document.is_file() else "no document"
    finally:
        worker.stop(is_ending=True)
    text = document.read_text(encoding="utf-8")
    # the odd cues that are cues at all are written as one clean line each
    assert "-->" not in text.replace(" --> ", "")
    assert "\x00" not in text
    assert "\x1b" not in text
    assert "a lone surrogate" in text
    assert worker.restarts == 0


def test_a_hung_recognizer_is_killed_and_started_again(tmp_path: Path) -> None:
    # alive, reading nothing, saying nothing: the pipe fills and the writer blocks on it
    command = child(tmp_path, "hung", f"print({READY!r}, flush=True)\ntime.sleep(600)")
    worker = worker_for(tmp_path, command, hung_after_s=1.0)
    try:
        first = None
        assert feed_until(worker, lambda: worker.pid is not None, timeout_s=5)
        first = worker.pid
        assert feed_until(
            worker, lambda: worker.restarts >= 1 and worker.pid not in (None, first), timeout_s=10
        ), f"restarts {worker.restarts}"
    finally:
        started = time.monotonic()
        worker.stop(is_ending=False)
        # the second hung child too is killed, and the stop stays bounded
        assert time.monotonic() - started < 5.0
    assert worker.pid is None


def test_a_recognizer_that_keeps_dying_is_restarted_with_growing_backoff(tmp_path: Path) -> None:
    command = child(tmp_path, "dying", "sys.exit(3)")
    worker = worker_for(tmp_path, command)
    try:
        feed_until(worker, lambda: False, timeout_s=6)
    finally:
        worker.stop(is_ending=False)
    # started at 0 s; backoff 2 s, then 4 s: two restarts in 6 s, not one per chunk
    assert 1 <= worker.restarts <= 2
    assert worker.dropped_chunks > 0
