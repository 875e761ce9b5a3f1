"""Load from wrk (Debian package `wrk`): POSTs at saturation, or paced, each carrying the next
Bearer ticket of a pre-generated list; wrk's figures come back as one JSON line from its Lua
`done` hook. wrk runs pinned to one core, at this process's niceness.

Every run is bounded by its duration; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULT_MARK = "WRK_JSON "
# wrk gives up on a request after this long (counted as a timeout error, not as a latency)
REQUEST_TIMEOUT_S = 5
EXTRA_WAIT_S = 30

# `init` gets: the path, then (optionally) the file of tickets, one a line. Each wrk thread keeps
# its own place in the list; the benchmarks run one thread, so ticket k goes out k-th.
_SCRIPT = """
local tickets = {}
local next_ticket = 0
local path = "/"

function init(args)
  path = args[1]
  if args[2] ~= nil then
    for line in io.lines(args[2]) do tickets[#tickets + 1] = line end
  end
end

function request()
  local headers = {}
@CLOSE@
  if #tickets > 0 then
    next_ticket = next_ticket % #tickets + 1
    headers["Authorization"] = "Bearer " .. tickets[next_ticket]
  end
  return wrk.format("POST", path, headers, "")
end
@PAUSE@
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '@MARK@{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "mean_us": %.1f, "max_us": %d, "p50_us": %d, '
    .. '"p90_us": %d, "p99_us": %d, "p999_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""

_PAUSE = """
function delay()
  return @MS@
end
"""


@dataclass(frozen=True, slots=True)
class LoadFigures:
    """One wrk run: completed requests and their latency (`not_2xx`: 4xx/5xx answers)."""

    requests: int
    duration_s: float
    rate_per_s: float
    not_2xx: int
    socket_errors: int
    timeouts: int
    latency_ms: dict[str, float]
    connections: int
    pause_ms: int
    command: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk (Debian package wrk)")
    return found


def wrk_version() -> str:
    result = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True, check=False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def write_script(folder: Path, *, pause_ms: int = 0, is_closing: bool = False) -> Path:
    """The Lua script; with `pause_ms`, each connection waits that long between requests; with
    `is_closing`, every request asks for `Connection: close` (a new TCP connection each)."""
    path = folder / f"post-pause{pause_ms}{'-close' if is_closing else ''}.lua"
    pause = _PAUSE.replace("@MS@", str(pause_ms)) if pause_ms > 0 else ""
    close = '  headers["Connection"] = "close"' if is_closing else ""
    text = _SCRIPT.replace("@PAUSE@", pause).replace("@CLOSE@", close)
    path.write_text(text.replace("@MARK@", RESULT_MARK))
    return path


def _figures(line: str, *, connections: int, pause_ms: int, command: str) -> LoadFigures:
    raw = json.loads(line.removeprefix(RESULT_MARK))
    duration_s = raw["duration_us"] / 1e6
    return LoadFigures(
        requests=raw["requests"],
        duration_s=round(duration_s, 3),
        rate_per_s=round(raw["requests"] / duration_s, 1),
        not_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"],
        timeouts=raw["timeout"],
        latency_ms={
            name.removesuffix("_us"): round(raw[name] / 1000, 3)
            for name in ("mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us")
        },
        connections=connections,
        pause_ms=pause_ms,
        command=command,
    )


def post_load(
    base_url: str,
    path: str,
    *,
    script: Path,
    tickets: Path | None,
    connections: int,
    duration_s: float,
    core: int,
    pause_ms: int = 0,
) -> LoadFigures:
    """POST `path` from `connections` keep-alive connections for `duration_s` seconds."""
    if not base_url.startswith("http://127.0.0.1:"):
        raise ValueError(f"load goes to 127.0.0.1 only, not {base_url}")
    command = [
        "taskset", "-c", str(core),
        wrk_binary(), "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
        f"--timeout={REQUEST_TIMEOUT_S}s", "-s", str(script), base_url, "--", path,
    ]  # fmt: skip
    if tickets is not None:
        command.append(str(tickets))
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + EXTRA_WAIT_S, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr[-500:]}")
    return _figures(
        lines[-1], connections=connections, pause_ms=pause_ms, command=shlex.join(command)
    )
