"""Plain players on an Icecast relay fed by Rostra, beside Icecast fed by ffmpeg, in one run.

Rostra (`rostra serve --icecast`) feeds a master Icecast 2.4 (burst 0, docs/relays.md); one relay
Icecast relays the space's two mounts (`<relay>`, on-demand 0, burst 0); N progressive listeners
(bench/peer_load.py, separate processes) play the relay's AAC mount. Beside it, Icecast fed by
ffmpeg from the same PCM (bench/peer_servers.py, burst-0 mount) with the same N listeners.

Reported: the origin's cost (Icecast source connections, the Rostra process tree's CPU during the
relay's load window, Rostra's own progressive players), Icecast's CPU per 1,000 listeners on the
relay and on the ffmpeg-fed peer, the master's load (its listeners: the relay), the honest count
(`stream_listeners` with the relay's status polled), and latency with the peers' probe (marks
sent by a WHIP speaker bot and by ffmpeg's feeder, detected on arrival by progressive probes).

Run from the repository root:  .venv/bin/python bench/relay.py [--listeners 1000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import peer_servers
from harness import (
    create_space,
    prioritize_clients,
    process_tree,
    running_server,
    write_results,
)
from marks import SAMPLE_RATE_HZ, Mark, MarkTrain, mark_train
from peer_cpu import measure_load, tree_cpu_s
from peer_paths import wait_mounts
from peers import (
    ProgressiveProbe,
    latency_figures,
    source_pcm,
    start_speaker,
    stop_speaker,
    wait_for_probes,
)
from speech import SENTENCES_A, synthesize

# isort: split
from tests.conftest import free_port
from tests.icecast_server import IcecastServer, running_icecast

NAME = "relay"
LEAD_S = 6.0
TAIL_S = 6.0
COUNT_SETTLE_S = 5.0
FFMPEG_AAC, FFMPEG_OPUS = "/burst0.aac", "/burst0.opus"
RTMP_ARGUMENTS = 9  # the ffmpeg feeder's RTMP output: -c:a aac -b:a B -flush_packets 1 -f flv URL


class IcecastOnlyFeeder(peer_servers.Feeder):
    """bench/peer_servers.py's ffmpeg feeder without its RTMP output (no nginx in this bench)."""

    def command(self) -> list[str]:
        command = peer_servers.Feeder.command(self)
        assert command[-2] == "flv", command[-RTMP_ARGUMENTS:]
        return command[:-RTMP_ARGUMENTS]


def icecast_sources(icecast: IcecastServer) -> dict[str, int]:
    """Listeners of each mount of a server, from its status."""
    return icecast.status()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    train = mark_train(args.marks, lead_s=LEAD_S, seed=args.seed)
    # marks, then speech in a loop through the load windows (silence would cost Icecast nothing)
    speech = synthesize(SENTENCES_A, voice="en")
    pcm = source_pcm(train, speech, 4 * (args.window_s + args.idle_s + 15) + 60)
    listen_s = train.pcm.size / SAMPLE_RATE_HZ + TAIL_S
    relay_port = free_port()
    clients = args.listeners + 200
    with (
        running_icecast(clients=clients) as master,
        running_server(
            {
                "ROSTRA_ICECAST": master.source_url,
                "ROSTRA_ICECAST_RELAYS": f"http://127.0.0.1:{relay_port}",
            }
        ) as server,
        peer_servers.running_icecast(clients) as peer,
        tempfile.TemporaryDirectory(prefix="rostra-relay-") as folder,
    ):
        space = create_space(server, "Relay bench")
        sid = space["id"]
        mounts = [f"/{sid}.aac", f"/{sid}.opus"]
        await wait_mounts(master.url, set(mounts))
        with running_icecast(
            relay_of=(master.port, mounts), port=relay_port, clients=clients
        ) as relay:
            await wait_mounts(relay.url, set(mounts))
            feeder = IcecastOnlyFeeder(pcm, peer.url, "")
            feeder.start()
            await wait_mounts(peer.url, {FFMPEG_AAC, FFMPEG_OPUS})
            speakers: list[asyncio.subprocess.Process] = []
            try:
                probes = await listen(
                    space, (master, relay), peer, feeder, (train, pcm), listen_s, Path(folder),
                    speakers,
                )  # fmt: skip
                load = await asyncio.to_thread(
                    measure_load_all, args, server, space, relay, peer, master.port
                )
                master_after = icecast_sources(master)
            finally:
                for speaker in speakers:
                    await stop_speaker(speaker)
                feeder_error = feeder.stop()
            latency = summarize(probes, train, Path(folder) / "spoken.json", feeder)
    return {
        "latency": latency,
        "load": load,
        "master_listeners_per_mount": master_after,
        "feeder_errors": feeder_error or feeder.error,
        "versions": {"icecast": peer.version},
        "settings": {
            "listeners": args.listeners,
            "marks": args.marks,
            "window_s": args.window_s,
            "idle_s": args.idle_s,
            "burst_bytes": 0,
            "relay": "Icecast <relay>, on-demand 0, burst 0, one hop from the master",
        },
    }


async def listen(
    space: dict[str, Any],
    icecasts: tuple[IcecastServer, IcecastServer],
    peer: peer_servers.Icecast,
    feeder: IcecastOnlyFeeder,
    source: tuple[MarkTrain, np.ndarray],
    listen_s: float,
    folder: Path,
    speakers: list[asyncio.subprocess.Process],
) -> dict[str, ProgressiveProbe]:
    """Probes join first; then the WHIP speaker and ffmpeg's feeder send the marks together."""
    sid = space["id"]
    master, relay = icecasts
    urls = {
        "rostra_master_aac": f"{master.url}/{sid}.aac",
        "rostra_relay_aac": f"{relay.url}/{sid}.aac",
        "rostra_relay_opus": f"{relay.url}/{sid}.opus",
        "rostra_direct_aac": space["stream_url"],
        "icecast_ffmpeg_burst_0_aac": peer.url + FFMPEG_AAC,
        "icecast_ffmpeg_burst_0_opus": peer.url + FFMPEG_OPUS,
    }
    probes = {name: ProgressiveProbe(url, listen_s + 60) for name, url in urls.items()}
    for probe in probes.values():
        probe.listener.start()
    source_path, spoken_path = folder / "source.npy", folder / "spoken.json"
    train, pcm = source
    np.save(source_path, pcm)
    try:
        await wait_for_probes(probes)
        await start_speaker(space["speaker_invite_url"], source_path, spoken_path, speakers)
        feeder.release()
        print(f"  probes listening; {len(train.starts)} marks over {listen_s:.0f} s …", flush=True)
        await asyncio.sleep(listen_s)
    finally:
        for probe in probes.values():
            probe.listener.stop()
    return probes


def summarize(
    probes: dict[str, ProgressiveProbe],
    train: MarkTrain,
    spoken_path: Path,
    feeder: IcecastOnlyFeeder,
) -> dict[str, Any]:
    """Each probe's marks matched to when they were handed to aiortc (Rostra) or to ffmpeg."""
    spoken = json.loads(spoken_path.read_text()) if spoken_path.is_file() else {}
    handed_at = {int(k): v for k, v in spoken.pop("handed_at", {}).items()}

    def sent(times: dict[int, float]) -> list[Mark]:
        return [
            Mark(at=times[start], tone=tone)
            for start, tone in zip(train.starts, train.tones, strict=True)
            if start in times
        ]

    rostra_sent, ffmpeg_sent = sent(handed_at), sent(feeder.written_at)
    return {
        name: {
            **latency_figures(
                rostra_sent if name.startswith("rostra") else ffmpeg_sent, probe.arrival.onsets
            ),
            "listener_error": probe.listener.error,
            "connect_burst_s": probe.connect_burst_s(),
        }
        for name, probe in probes.items()
    }


def measure_load_all(
    args: argparse.Namespace,
    server: Any,
    space: dict[str, Any],
    relay: IcecastServer,
    peer: peer_servers.Icecast,
    master_port: int,
) -> dict[str, Any]:
    assert relay.process is not None
    sid = space["id"]
    relay_url = f"{relay.url}/{sid}.aac"
    state_url = f"{server.url}/live/{sid}/state.json"
    figures: dict[str, Any] = {}
    rostra_start, _ = tree_cpu_s(server.process.pid)
    started = time.monotonic()
    relay_idle = measure_load("progressive", relay_url, 0, args.idle_s, relay.process.pid)
    rostra_idle_end, _ = tree_cpu_s(server.process.pid)
    idle_wall = time.monotonic() - started
    counted: list[int] = []
    sources: list[int] = []
    done = threading.Event()

    def sample() -> None:
        """Rostra's count and its connections to the master, every second of the window."""
        while not done.wait(1.0):
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                counted.append(httpx.get(state_url, timeout=5).json()["stream_listeners"])
            sources.append(connections_to(server.process.pid, master_port))

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    sampler.start()
    try:
        relay_load = measure_load(
            "progressive", relay_url, args.listeners, args.window_s, relay.process.pid,
            idle=relay_idle,
        )  # fmt: skip
    finally:
        done.set()
        sampler.join()
    rostra_end, processes = tree_cpu_s(server.process.pid)
    rostra_wall = time.monotonic() - started
    figures["rostra_relay"] = relay_load.figures()
    figures["rostra_origin_cost"] = {
        "cores_with_no_relay_listener": round((rostra_idle_end - rostra_start) / idle_wall, 4),
        "cores_while_relay_loaded": round((rostra_end - rostra_idle_end) / rostra_wall, 4),
        "processes": processes,
        "icecast_source_connections_max": max(sources, default=None),
        "stream_listeners_in_state_json_max": max(counted, default=None),
        "stream_listeners_in_state_json_last": counted[-1] if counted else None,
    }
    peer_idle = measure_load("progressive", peer.url + FFMPEG_AAC, 0, args.idle_s, peer.pid)
    figures["icecast_ffmpeg_burst_0"] = measure_load(
        "progressive", peer.url + FFMPEG_AAC, args.listeners, args.window_s, peer.pid,
        idle=peer_idle,
    ).figures()  # fmt: skip
    return figures


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections from `pid`'s process tree to loopback `port` (/proc)."""
    inodes: set[str] = set()
    for child in process_tree(pid):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{child}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


def cell(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{'path':30} {'arrival p50 / p95 s':>20} {'marks':>7} {'on connect s':>12}")
    for name, figures in result["latency"].items():
        latency = figures["latency_s"]
        marks = f"{figures['marks_matched']}/{figures['marks_sent']}"
        print(
            f"{name:30} {cell(latency.get('p50'), 3) + ' / ' + cell(latency.get('p95'), 3):>20}"
            f" {marks:>7} {cell(figures.get('connect_burst_s'), 2):>12}"
        )
    load = result["load"]
    print(
        f"\n{'server under load':30} {'listeners':>9} {'cores':>7} {'cores/1000':>11}"
        f" {'MB/listener-h':>13}"
    )
    for name in ("rostra_relay", "icecast_ffmpeg_burst_0"):
        figures = load[name]
        megabytes = figures.get("bytes_per_listener_hour")
        print(
            f"{name:30} {figures['connected']:>9} {cell(figures['server_cores'], 3):>7} "
            f"{cell(figures['cpu_cores_per_1000_listeners'], 3):>11}"
            f" {cell(megabytes / 1e6 if megabytes else None, 1):>13}"
        )
    origin = load["rostra_origin_cost"]
    print(
        f"Rostra (every process): {origin['cores_with_no_relay_listener']:.3f} cores with no relay"
        f" listener, {origin['cores_while_relay_loaded']:.3f} with them; Icecast source"
        f" connections: {origin['icecast_source_connections_max']}; stream_listeners in"
        f" state.json: max {origin['stream_listeners_in_state_json_max']}; master's listeners"
        f" per mount: {result['master_listeners_per_mount']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=1000, help="listeners on each server")
    parser.add_argument("--marks", type=int, default=12, help="latency marks to send")
    parser.add_argument("--window-s", type=float, default=20.0, help="CPU window per server")
    parser.add_argument("--idle-s", type=float, default=8.0, help="CPU window with no listener")
    parser.add_argument("--seed", type=int, default=7, help="seed of the mark intervals")
    parser.add_argument("--quick", action="store_true", help="6 marks, 100 listeners, short")
    args = parser.parse_args()
    if args.quick:
        args.marks, args.listeners, args.window_s, args.idle_s = 6, 100, 6.0, 3.0
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    niceness = prioritize_clients()
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print(f"relay bench: {args.listeners} listeners on an Icecast relay fed by Rostra")
    print(f"  load average at start: {load_at_start}")
    result = asyncio.run(measure(args))
    result["load_average_at_start"] = load_at_start
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["niceness"] = niceness
    print_table(result)
    print(f"  load average at end: {result['load_average_at_end']}")
    # a quick run keeps its own file, so the full run's figures stay where docs/relays.md reads them
    path = write_results(f"{NAME}_quick" if args.quick else NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
