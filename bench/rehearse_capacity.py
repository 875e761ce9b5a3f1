"""How many simulated HLS listeners one load-generator core keeps on time, at what memory each.

`rostra serve` with a live space and a tone speaker (`rostra speak --tone 440`), `rostra edge`
(Debian's nginx) in front unless `--no-edge`. The rehearsal's own Locust users
(`rostra.rehearse.users.HlsListener`, run by `python -m rostra.rehearse.local_run` in a process
of its own) join through the gate and play as players do: the live playlist once per target
duration, each new segment once, heartbeats at the server's interval. They are ramped up over
`--ramp-s`, then held for `--measure-s`.

Figures, over the held part only:
- the generator's CPU (user + system of the Locust process, /proc) as cores used;
- on time: users minus the step lateness the generator caused (`behind` steps over all steps:
  a step woken more than 0.5 s after it was due; a slow answer of the server is not counted);
- listeners per generator core on time = users on time / cores used;
- memory per listener = (resident memory held − resident memory before the first user) / users;
- what the listeners observed (joins, time to first audio, stalls, server errors), so a figure
  from a run where the server, not the generator, was the limit is seen as such.

With `--hls-mode ll` the users are `rostra.rehearse.ll_users.LlHlsListener`: LL-HLS as the
listener page plays it (a blocking playlist reload and a part per 0.256 s part, about 8 requests/s
each instead of about 2); the figures go to `rehearse_capacity_ll.json`.

Run from the repository root:
  .venv/bin/python bench/rehearse_capacity.py [--users 1500] [--ramp-s 15] [--measure-s 30]
      [--hls-mode legacy|ll]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from harness import ROOT, create_space, process_sample, running_server, write_results

# isort: split
# the tests' helpers, importable once harness has put the repository on sys.path
from tests.conftest import free_port
from tests.e2e.conftest import start_edge, stop_edge

from rostra.rehearse.observations import Observations

NAME = "rehearse_capacity"
IDLE_S = 4.0  # the Locust process is measured idle (imports done, no user) this long
SAMPLE_S = 0.5
TARGET_PER_CORE = 1500
TARGET_KB_PER_LISTENER = 40
# the rehearsal's own default stall target: stalled time over listening time
MAX_STALL_RATIO = 0.01


def start_speaker(invite_url: str, seconds: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rostra", "speak", invite_url, "--tone", "440"]
    command += ["--seconds", str(seconds), "--name", "Tone"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_segments(url: str, count: int = 3, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(url, timeout=5)
        if response.status_code == 200 and response.text.count("#EXTINF") >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} listed fewer than {count} segments in time")


def run_generator(
    base_url: str, space_id: str, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    """The Locust process, sampled from outside: idle memory, then CPU and memory held."""
    seconds = args.ramp_s + args.measure_s
    command = [sys.executable, "-m", "rostra.rehearse.local_run", base_url, space_id]
    user_class = "LlHlsListener" if args.hls_mode == "ll" else "HlsListener"
    command += ["--users", f"{user_class}={args.users}", "--seconds", str(seconds)]
    command += ["--spawn-rate", str(args.users / args.ramp_s), "--idle-s", str(IDLE_S)]
    command += ["--out", str(out)]
    log = out.with_suffix(".log")
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    launched = time.monotonic()
    idle_rss_mb = 0.0
    held: list[tuple[float, float, float]] = []  # (monotonic, cpu_s, rss_mb)
    hold_from = launched + IDLE_S + args.ramp_s + 2
    hold_until = launched + IDLE_S + seconds
    while process.poll() is None:
        sample = process_sample(process.pid)
        now = time.monotonic()
        if sample is not None:
            if now < launched + IDLE_S - 0.5:
                idle_rss_mb = sample["rss_mb"]
            elif hold_from <= now <= hold_until:
                held.append((now, sample["cpu_s"], sample["rss_mb"]))
        time.sleep(SAMPLE_S)
    if process.returncode != 0 or len(held) < 2:
        raise RuntimeError(f"the generator failed: {log.read_text()[-3000:]}")
    wall_s = held[-1][0] - held[0][0]
    cores = (held[-1][1] - held[0][1]) / wall_s
    return {
        "held_s": round(wall_s, 1),
        "cores_used": round(cores, 3),
        "idle_rss_mb": idle_rss_mb,
        "held_rss_mb": max(rss for _, _, rss in held),
        "held_from_s": hold_from - launched - IDLE_S,
    }


def figures_of(args: argparse.Namespace, generator: dict[str, Any], obs: Observations) -> Any:
    started = min(obs.seconds) if obs.seconds else 0
    held = Observations()
    for second, record in obs.seconds.items():
        if second - started >= generator["held_from_s"]:
            held.seconds[second] = record
    whole, steady = obs.total(), held.total()
    late_fraction = steady.behind / steady.steps if steady.steps else 1.0
    on_time = args.users * (1 - late_fraction)
    per_core = on_time / generator["cores_used"] if generator["cores_used"] > 0 else 0.0
    kb_each = (generator["held_rss_mb"] - generator["idle_rss_mb"]) * 1024 / args.users
    # a listener kept on time but starved is no capacity: the players must be fed as well
    heard_s = steady.played_s + steady.stall_s
    stall_ratio = steady.stall_s / heard_s if heard_s else 1.0
    is_fed = stall_ratio <= MAX_STALL_RATIO
    live = [n for _, n in obs.live_series()]
    return {
        "users": args.users,
        "hls_mode": args.hls_mode,
        "through_edge": not args.no_edge,
        "generator": generator,
        "steps_held": steady.steps,
        "steps_behind_held": steady.behind,
        "listeners_on_time": round(on_time),
        "listeners_per_generator_core_on_time": round(per_core),
        "kb_per_listener": round(kb_each, 1),
        "targets": {
            "listeners_per_core": TARGET_PER_CORE,
            "kb_per_listener": TARGET_KB_PER_LISTENER,
            "stall_ratio_held": round(stall_ratio, 4),
            "max_stall_ratio": MAX_STALL_RATIO,
            "is_fed": is_fed,
            "is_met": is_fed and per_core >= TARGET_PER_CORE and kb_each <= TARGET_KB_PER_LISTENER,
        },
        # per second from the first user: [live, stalls, stall seconds, steps behind]
        "series": [
            [n, obs.seconds[k].stalls, round(obs.seconds[k].stall_s, 2), obs.seconds[k].behind]
            for k, n in obs.live_series()
        ],
        "observed": {
            "live_max": max(live, default=0),
            "joins": dict(whole.joins),
            "ttfa_p95_s": whole.ttfa.quantile(0.95),
            "ttfa_count": whole.ttfa.count,
            "latency_p50_s": whole.latency.quantile(0.5),
            "stalls": whole.stalls,
            "stall_s": round(whole.stall_s, 2),
            "played_s": round(whole.played_s, 1),
            "media": dict(whole.media),
            "server_errors": dict(whole.server_errors),
            "generator_errors": dict(whole.generator_errors),
        },
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    edge_port = free_port()
    env = {"ROSTRA_MAX_CONNECTIONS": str(max(4000, args.users * 2))}
    if not args.no_edge:
        env |= {
            "ROSTRA_PUBLIC_URL": f"http://127.0.0.1:{edge_port}",
            "ROSTRA_TRUSTED_PROXIES": "127.0.0.1",
        }
    with (
        running_server(env) as server,
        tempfile.TemporaryDirectory(prefix="rostra-rehearse-") as tmp,
    ):
        edge = None
        if not args.no_edge:
            whip_origin = f"http://127.0.0.1:{server.whip_port}"
            edge = start_edge(server.url, whip_origin, edge_port, Path(tmp) / "edge")
        speaker = None
        try:
            space = create_space(server, "Rehearsal capacity")
            speaker = start_speaker(space["speaker_invite_url"], args.ramp_s + args.measure_s + 60)
            base_url = edge.url if edge is not None else server.url
            wait_for_segments(f"{base_url}/live/{space['id']}/audio.m3u8")
            out = Path(tmp) / "observations.json"
            generator = run_generator(base_url, space["id"], args, out)
            observations = Observations.from_json(json.loads(out.read_text()))
        finally:
            if speaker is not None:
                speaker.terminate()
                speaker.wait(timeout=15)
            if edge is not None:
                stop_edge(edge)
    return figures_of(args, generator, observations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=TARGET_PER_CORE)
    parser.add_argument("--ramp-s", type=float, default=15.0)
    parser.add_argument("--measure-s", type=float, default=30.0)
    parser.add_argument("--no-edge", action="store_true", help="listeners go to rostra serve")
    parser.add_argument(
        "--hls-mode",
        choices=("legacy", "ll"),
        default="legacy",
        help="legacy: HlsListener (the figure rostra plan reads); ll: LlHlsListener",
    )
    args = parser.parse_args()
    started_at = datetime.now(UTC)
    figures = measure(args)
    name = NAME if args.hls_mode == "legacy" else f"{NAME}_ll"
    path = write_results(name, figures, started_at=started_at)
    print(json.dumps({k: figures[k] for k in list(figures)[:9]}, indent=2))
    print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
