"""Where a gate worker's time goes: py-spy samples of its event loop's thread (pip package
`py-spy`), summed by layer (the innermost Python frame's package: uvicorn, Starlette, FastAPI,
Rostra…) and by a few functions that matter, inclusive of what they call; and the CPU time of
that thread and of the others (the flusher's pool), from /proc.

py-spy pauses the worker for each sample (non-blocking sampling reads torn stacks that misplace
time) and runs pinned to its own core.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

SAMPLE_RATE_HZ = 200
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
MAIN_THREAD = "MainThread"
EXTRA_WAIT_S = 30

# innermost frame's file → layer; the first match wins
LAYERS: tuple[tuple[str, str], ...] = (
    ("uvicorn/", "uvicorn (HTTP/1.1 protocol; socket writes are counted on its lines)"),
    ("granian/", "granian"),
    ("fastapi/", "FastAPI (routing, dependencies, middleware)"),
    ("starlette/", "Starlette (routing, requests, responses, middleware)"),
    ("pydantic", "pydantic"),
    ("rostra/audience/tickets.py", "Rostra: ticket check"),
    ("rostra/audience/", "Rostra: gate and presence batcher"),
    ("rostra/", "Rostra: web and stores"),
    ("redis/", "redis client"),
    ("asyncio/", "event loop (asyncio, uvloop callbacks)"),
    ("threading.py", "threads"),
    ("concurrent/", "threads"),
)
# inclusive shares: a sample counts once for each of these it passes through
FUNCTIONS: dict[str, str] = {
    "Gate.heartbeat": "the gate's heartbeat (ticket check + batcher)",
    "TicketSigner.verify": "ticket check",
    "PresenceService._record": "batcher",
    "_IncludedRouter._match": "FastAPI route matching",
    "solve_dependencies": "FastAPI dependency solving",
    "run_endpoint_function": "the route function",
    "RequestResponseCycle.send": "uvicorn writing the response",
    "HttpToolsProtocol.data_received": "uvicorn parsing the request",
}
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>.*):\d+\)$")


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the main thread and of all the others, from /proc."""
    found: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name = "main thread (event loop)" if task.name == str(pid) else "other threads"
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    return found


def py_spy_binary() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def _layer(frame: str) -> str:
    match = _FRAME.match(frame)
    file = match.group("file") if match else frame
    for marker, layer in LAYERS:
        if marker in file:
            return layer
    return "other (stdlib, C extensions' callers)"


def summarize(raw: str, *, thread: str = MAIN_THREAD) -> dict[str, Any]:
    """Shares (%) of one thread's samples by layer (self time) and by function (inclusive).

    Only the event loop's thread: py-spy may take a pool thread waiting on its queue for a busy
    one, so the other threads' cost is read from /proc instead.
    """
    layers: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        root, *frames = stack.split(";")
        if root.partition(": ")[2] != thread or not frames:
            continue
        count = int(count_text)
        total += count
        layers[_layer(frames[-1])] += count
        names = {_FRAME.sub(r"\g<function>", frame) for frame in frames}
        for name in FUNCTIONS:
            if name in names:
                functions[name] += count
    if not total:
        return {"samples": 0}

    def share(count: int) -> float:
        return round(100 * count / total, 1)

    return {
        "thread": thread,
        "samples": total,
        "self_pct_by_layer": {layer: share(count) for layer, count in layers.most_common()},
        "inclusive_pct_by_function": {
            f"{name} ({what})": share(functions[name]) for name, what in FUNCTIONS.items()
        },
    }


def record(pid: int, *, duration_s: float, core: int) -> dict[str, Any]:
    """Samples `pid` for `duration_s` seconds; the summary, or why there is none."""
    binary = py_spy_binary()
    if binary is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    with tempfile.TemporaryDirectory(prefix="rostra-bench-spy-") as folder:
        out = Path(folder) / "samples.txt"
        command = [
            "taskset", "-c", str(core), binary, "record",
            "--rate", str(SAMPLE_RATE_HZ), "--duration", str(max(1, round(duration_s))),
            "--threads", "--format", "raw", "--output", str(out), "--pid", str(pid),
        ]  # fmt: skip
        cpu_start, wall_start = thread_cpu_s(pid), time.monotonic()
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=duration_s + EXTRA_WAIT_S, check=False
        )
        cpu_end, wall_s = thread_cpu_s(pid), time.monotonic() - wall_start
        if result.returncode != 0 or not out.is_file():
            return {"skipped": f"py-spy failed: {result.stderr.strip()[-300:]}"}
        summary = summarize(out.read_text())
    summary["cpu_cores_by_thread"] = {
        name: round((cpu_end[name] - cpu_start.get(name, 0.0)) / wall_s, 3) for name in cpu_end
    }
    summary["command"] = " ".join([*command[:-1], "<worker pid>"])
    return summary
