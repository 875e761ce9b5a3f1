"""Rostra beside its peers, measured on this machine in one run: Icecast 2.4 (progressive, with
its default burst and with burst 0) and nginx-rtmp HLS with 1 s fragments, fed by ffmpeg from the
same PCM a Rostra speaker bot sends over WHIP, heard by the same probes.

Per path: listener latency p50/p95 (marks, as bench/latency.py sends them), PESQ-WB of a speech
clip at the listener, server CPU per 1,000 listeners and bytes per listener-hour (N listeners in
separate processes, each server in its own window).

Run from the repository root:  .venv/bin/python bench/peers.py [--listeners 1000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import peer_servers
from assessment import Clip, assess
from harness import (
    audio_check,
    create_space,
    percentiles,
    prioritize_clients,
    running_server,
    wait_for_segments,
    write_results,
)
from hls_player import HlsPlayer
from marks import SAMPLE_RATE_HZ, Mark, MarkTrain, OnsetDetector, mark_train, match_marks
from peer_cpu import LoadWindow, measure_load
from progressive import ProgressiveListener
from rostra.media.codecs import AAC_BITRATE_BPS, OPUS_BITRATE_BPS
from speech import SENTENCES_A, synthesize

NAME = "peers"
LEAD_S = 8.0  # silence before the first mark: longer than any path's latency, so that
# no path still plays the speech heard before the marks when they start
GAP_S = 1.5
TAIL_S = 6.0
HLS_CAPTURE_MARGIN_S = 8.0
HLS_START_TIMEOUT_S = 40.0
SEGMENTS_TIMEOUT_S = 20.0
LOAD_SETTLE_S = 1.0
PROBE_START_TIMEOUT_S = 20.0
BURST_WINDOW_S = 0.5
SPEAKER_TIMEOUT_S = 60.0
SPEAKER_SCRIPT = Path(__file__).resolve().parent / "peer_speaker.py"


class ProgressiveProbe:
    """One progressive listener (bench/progressive.py): marks timed on arrival, and as an ideal
    player would play them (from the first byte, in real time, waiting when starved: so a
    server's burst shows), plus all decoded audio for PESQ."""

    def __init__(self, url: str, budget_s: float) -> None:
        self.arrival = OnsetDetector()
        self.played = OnsetDetector()
        self.chunks: list[np.ndarray] = []
        self._next_play_at = 0.0
        self.last_audio_at = 0.0
        self.burst_samples = 0
        self.listener = ProgressiveListener(url, on_chunk=self._on_chunk, max_s=budget_s)

    def _on_chunk(self, pcm: np.ndarray, arrived_at: float) -> None:
        self.arrival.feed(pcm, arrived_at)
        play_at = max(arrived_at, self._next_play_at)
        self.played.feed(pcm, play_at)
        self._next_play_at = play_at + pcm.size / SAMPLE_RATE_HZ
        self.chunks.append(pcm)
        self.last_audio_at = arrived_at
        first = self.listener.first_audio_at
        if first is None or arrived_at <= first + BURST_WINDOW_S:
            self.burst_samples += pcm.size

    def connect_burst_s(self) -> float:
        """Audio that came within BURST_WINDOW_S of the first byte, beyond real time."""
        return round(max(0.0, self.burst_samples / SAMPLE_RATE_HZ - BURST_WINDOW_S), 3)

    def bitrate_bps(self) -> float | None:
        """Bytes received over the listening, as bits per second (a burst included)."""
        first = self.listener.first_audio_at
        if first is None or self.last_audio_at <= first:
            return None
        return round(8 * self.listener.bytes_read / (self.last_audio_at - first))

    def received(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)


def source_pcm(train: MarkTrain, speech: np.ndarray, seconds_after: float) -> np.ndarray:
    """Marks, a gap, the speech clip, then the clip again and again for the load windows."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE_HZ), np.float32)
    pieces = [train.pcm, gap, speech, gap]
    loop = np.concatenate([speech, gap])
    pieces += [loop] * int(np.ceil(seconds_after * SAMPLE_RATE_HZ / loop.size))
    return np.concatenate(pieces).astype(np.float32)


def latency_figures(sent: list[Mark], heard: list[Mark]) -> dict[str, Any]:
    matched = match_marks(sent, heard)
    return {
        "latency_s": percentiles(matched.latencies_s),
        "marks_matched": matched.matched,
        "marks_sent": len(sent),
    }


def hls_latency(sent: list[Mark], player: HlsPlayer, heard: list[Any]) -> dict[str, Any]:
    pooled: list[float] = []
    stalls = 0
    for page in heard:
        marks = [Mark(at=m["played_ms"] / 1000, tone=int(m["tone"])) for m in page.marks]
        pooled += match_marks(sent, marks).latencies_s
        stalls += len(page.stalls_at)
    return {
        "latency_s": percentiles(pooled),
        "marks_matched": len(pooled),
        "marks_sent": len(sent) * len(heard),
        "stalls": stalls,
        "player_errors": [e for page in heard for e in page.errors][:10],
        "hls_js": player.info.get("hls_version"),
    }


@contextlib.contextmanager
def peers(max_clients: int) -> Iterator[tuple[peer_servers.Icecast, peer_servers.NginxRtmp]]:
    with (
        peer_servers.running_icecast(max_clients) as icecast,
        peer_servers.running_nginx_rtmp() as nginx,
    ):
        yield icecast, nginx


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    speech = synthesize(SENTENCES_A, voice="en")
    clip = Clip((("speech", speech),))
    train = mark_train(args.marks, lead_s=LEAD_S, seed=args.seed)
    windows = 6 * (args.window_s + 16) + 3 * args.idle_s + 60
    pcm = source_pcm(train, speech, windows)
    listen_s = (train.pcm.size + speech.size) / SAMPLE_RATE_HZ + 2 * GAP_S + TAIL_S
    with (
        running_server() as server,
        peers(args.listeners + 200) as (icecast, nginx),
        tempfile.TemporaryDirectory(prefix="rostra-peers-") as folder,
    ):
        space = create_space(server, "Peers bench")
        # the speech clip until released: the peers' mounts and playlist exist, in steady state
        feeder = peer_servers.Feeder(pcm, icecast.url, nginx.rtmp_url, preroll=speech)
        feeder.start()
        source, spoken_path = Path(folder) / "source.npy", Path(folder) / "spoken.json"
        np.save(source, pcm)
        speakers: list[asyncio.subprocess.Process] = []

        async def start_source() -> None:
            """The same PCM into Rostra (over WHIP) and into the peers, together."""
            speaker = await asyncio.create_subprocess_exec(
                *(sys.executable, str(SPEAKER_SCRIPT), space["speaker_invite_url"]),
                *(str(source), str(spoken_path)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            speakers.append(speaker)
            assert speaker.stdout is not None
            line = await asyncio.wait_for(speaker.stdout.readline(), SPEAKER_TIMEOUT_S)
            if line.strip() != b"connected":
                raise RuntimeError(f"the Rostra speaker did not connect: {line!r}")
            feeder.release()

        try:
            rostra_media = await media_playlist(space["hls_url"])
            heard = await listen(
                args, space, (icecast, nginx), listen_s, Path(folder), start_source
            )
            load = await asyncio.to_thread(
                measure_all_load, args, server, space, icecast, nginx, rostra_media
            )
        finally:
            for speaker in speakers:
                await stop_speaker(speaker)
            feeder_error = feeder.stop()
        spoken = json.loads(spoken_path.read_text()) if spoken_path.is_file() else {}
        handed_at = {int(k): v for k, v in spoken.pop("handed_at", {}).items()}
        latency = summarize_listening(heard, train, handed_at, feeder, clip)
    return {
        "paths": merge(latency, load),
        "rostra_hls_poller_playlist": rostra_media,
        "feeder_errors": feeder_error or feeder.error,
        "rostra_speaker": spoken,
        "peer_feeder_chunks": len(feeder.written_at),
        "versions": {"icecast": icecast.version, "nginx": _nginx_version()},
        "settings": settings(args),
        "definitions": DEFINITIONS,
    }


async def stop_speaker(speaker: asyncio.subprocess.Process) -> None:
    """Asks the speaker to leave and write what it sent; killed if it does not in time."""
    if speaker.stdin is not None and speaker.returncode is None:
        speaker.stdin.write(b"stop\n")
        with contextlib.suppress(ConnectionError):
            await speaker.stdin.drain()
        speaker.stdin.close()
    try:
        await asyncio.wait_for(speaker.wait(), SPEAKER_TIMEOUT_S)
    except TimeoutError:
        speaker.kill()
        await speaker.wait()


async def media_playlist(hls_url: str) -> str:
    """The first rendition the multivariant playlist lists (what a plain poller follows)."""
    await wait_for_segments(hls_url.replace("index.m3u8", "audio.m3u8"))
    async with httpx.AsyncClient() as client:
        text = (await client.get(hls_url)).text
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    return httpx.URL(hls_url).join(uris[0]).__str__() if uris else hls_url


def _origin_of(url: str) -> str:
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}:{parts.port}"


async def wait_for_probes(probes: dict[str, ProgressiveProbe]) -> None:
    deadline = time.monotonic() + PROBE_START_TIMEOUT_S
    for name, probe in probes.items():
        while probe.listener.first_audio_at is None:
            if probe.listener.error or time.monotonic() > deadline:
                raise RuntimeError(f"{name} never decoded audio: {probe.listener.error}")
            await asyncio.sleep(0.1)


async def listen(
    args: argparse.Namespace,
    space: dict[str, Any],
    peer: tuple[peer_servers.Icecast, peer_servers.NginxRtmp],
    listen_s: float,
    folder: Path,
    start_source: Callable[[], Awaitable[None]],
) -> dict[str, Any]:
    """Every probe joins first, then the source starts: progressive probes, hls.js in Chromium
    on both HLS servers, and ffmpeg capturing both HLS for PESQ, all on the same marks."""
    icecast, nginx = peer
    urls = {
        "rostra_opus_stream": space["opus_stream_url"],
        "rostra_adts_stream": space["stream_url"],
        **{name: icecast.url + mount for name, (mount, _) in peer_servers.ICECAST_MOUNTS.items()},
    }
    probes = {name: ProgressiveProbe(url, listen_s + 120) for name, url in urls.items()}
    for probe in probes.values():
        probe.listener.start()
    await wait_for_segments(nginx.hls_url)
    players = {
        "rostra_ll_hls": HlsPlayer(_origin_of(space["hls_url"]), players=args.hls_players),
        "nginx_rtmp_hls_1s": HlsPlayer(nginx.http_url, players=args.hls_players),
    }
    hls_urls = {"rostra_ll_hls": space["hls_url"], "nginx_rtmp_hls_1s": nginx.hls_url}
    captures = {}
    try:
        for name, player in players.items():
            await player.start(hls_urls[name])
            await player.wait_playing(HLS_START_TIMEOUT_S)
        await wait_for_probes(probes)
        for name, url in hls_urls.items():
            out = folder / f"{name}.wav"
            captures[name] = (audio_check.capture(url, listen_s + HLS_CAPTURE_MARGIN_S, out), out)
        await start_source()
        print(f"  every probe listening; marks and speech for {listen_s:.0f} s …", flush=True)
        await asyncio.sleep(listen_s)
        heard = {name: (player, await player.heard()) for name, player in players.items()}
    finally:
        for player in players.values():
            await player.close()
        for probe in probes.values():
            probe.listener.stop()
    recorded = {}
    for name, (process, out) in captures.items():
        try:
            await asyncio.to_thread(process.communicate, timeout=HLS_CAPTURE_MARGIN_S + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        recorded[name] = audio_check.decode(out) if out.is_file() else np.zeros(0, np.float32)
    return {"probes": probes, "players": heard, "recorded": recorded}


def summarize_listening(
    heard: dict[str, Any],
    train: MarkTrain,
    handed_at: dict[int, float],
    feeder: peer_servers.Feeder,
    clip: Clip,
) -> dict[str, dict[str, Any]]:
    def sent(times: dict[int, float]) -> list[Mark]:
        return [
            Mark(at=times[start], tone=tone)
            for start, tone in zip(train.starts, train.tones, strict=True)
            if start in times
        ]

    rostra_sent, peer_sent = sent(handed_at), sent(feeder.written_at)
    paths: dict[str, dict[str, Any]] = {}
    for name, probe in heard["probes"].items():
        marks = rostra_sent if name.startswith("rostra") else peer_sent
        paths[name] = {
            "latency_arrival": latency_figures(marks, probe.arrival.onsets),
            "latency_played_from_first_byte": latency_figures(marks, probe.played.onsets),
            "quality": assess(probe.received(), clip),
            "listener_error": probe.listener.error,
            "probe_bitrate_bps": probe.bitrate_bps(),
            "connect_burst_s": probe.connect_burst_s(),
        }
    for name, (player, pages) in heard["players"].items():
        marks = rostra_sent if name.startswith("rostra") else peer_sent
        paths[name] = {
            "latency_hls_js_played": hls_latency(marks, player, pages),
            "quality": assess(heard["recorded"][name], clip),
        }
    return paths


def measure_all_load(
    args: argparse.Namespace,
    server: Any,
    space: dict[str, Any],
    icecast: peer_servers.Icecast,
    nginx: peer_servers.NginxRtmp,
    rostra_media: str,
) -> dict[str, LoadWindow]:
    """Each server's listeners in its own window, one server at a time."""
    plan = [
        ("rostra_opus_stream", "progressive", space["opus_stream_url"], server.process.pid),
        ("rostra_adts_stream", "progressive", space["stream_url"], server.process.pid),
        ("rostra_ll_hls", "hls", rostra_media, server.process.pid),
        ("icecast_default_burst_aac", "progressive", icecast.url + "/default.aac", icecast.pid),
        ("icecast_default_burst_opus", "progressive", icecast.url + "/default.opus", icecast.pid),
        ("nginx_rtmp_hls_1s", "hls", nginx.hls_url, nginx.pid),
    ]
    loads: dict[str, LoadWindow] = {}
    idle: dict[int, Any] = {}
    for name, kind, url, pid in plan:
        if pid not in idle:
            idle[pid] = measure_load(kind, url, 0, args.idle_s, pid)
        print(
            f"  {args.listeners} {kind} listeners on {name} for {args.window_s:.0f} s …", flush=True
        )
        loads[name] = measure_load(kind, url, args.listeners, args.window_s, pid, idle=idle[pid])
        time.sleep(LOAD_SETTLE_S)
    return loads


def merge(
    latency: dict[str, dict[str, Any]], loads: dict[str, LoadWindow]
) -> dict[str, dict[str, Any]]:
    paths = {name: dict(figures) for name, figures in latency.items()}
    for name, load in loads.items():
        paths.setdefault(name, {})["load"] = load.figures()
    return paths


def _nginx_version() -> str:
    result = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return result.stderr.strip()


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "listeners": args.listeners,
        "window_s": args.window_s,
        "idle_window_s": args.idle_s,
        "marks": args.marks,
        "hls_players_per_server": args.hls_players,
        "icecast_default_burst_bytes": peer_servers.ICECAST_DEFAULT_BURST_BYTES,
        "nginx_rtmp": f"hls_fragment {peer_servers.HLS_FRAGMENT_S}s; hls_playlist_length "
        f"{peer_servers.HLS_PLAYLIST_LENGTH_S}s; worker_processes 1",
        "peer_encoding": f"one ffmpeg from the same PCM: AAC-LC {AAC_BITRATE_BPS} "
        f"bit/s ADTS and libopus {OPUS_BITRATE_BPS} bit/s Ogg (20 ms pages) to "
        "Icecast; AAC-LC over RTMP (FLV) to nginx-rtmp",
    }


DEFINITIONS = {
    "mouth": "Rostra: when the speaker bot hands the frame holding a mark's first sample to "
    "aiortc's encoder; peers: when the feeder writes that 20 ms chunk to ffmpeg's stdin",
    "latency_arrival": "the HTTP chunk holding the mark's onset arrives at a client that "
    "decodes as bytes arrive: arrival at an HTTP client with no player buffer",
    "latency_played_from_first_byte": "as an ideal player with no buffer of its own plays it: "
    "from the first byte on, in real time, waiting when starved; a server's burst on connect "
    "is audio the player must play first, so it shows here, as does any faster-than-real-time "
    "delivery after it joined (a source catching up after a hiccup)",
    "latency_hls_js_played": "hls.js in headless Chromium with the listener page's config; an "
    "AudioWorklet on the <audio> output times each mark in the wall clock (bench/hls_player.py)",
    "connect_burst_s": "audio a progressive listener received within 0.5 s of its first byte, "
    "beyond those 0.5 s: the server's burst on connect, which a player plays before live audio",
    "pesq_wb": "ITU-T P.862.2 on the speech clip as the listener decoded it (progressive: the "
    "probe's own decoding; HLS: ffmpeg as the client)",
    "cpu_cores_per_1000_listeners": "server processes' CPU (user+system, from /proc; Rostra: "
    "supervisor, origin and workers; Icecast; nginx master and worker) over the window while N "
    "listeners read, minus the same server's CPU with no listener, per 1,000 listeners",
    "bytes_per_listener_hour": "bytes the listeners received in the window (HLS: headers "
    "included) / N × 3600 / window",
    "hls_pollers": "each fetches the media playlist once per target duration and each new "
    "segment once on a kept-alive connection (a legacy HLS client: no LL-HLS parts)",
}


def cell(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\n{'path':28} {'arrival p50/p95 s':>18} {'played p50/p95 s':>17} "
        f"{'burst s':>7} {'cores/1000':>10} {'MB/listener-h':>13} {'PESQ-WB':>8}"
    )
    for name, figures in result["paths"].items():
        arrival = figures.get("latency_arrival", {}).get("latency_s", {})
        played = (
            figures.get("latency_played_from_first_byte")
            or figures.get("latency_hls_js_played")
            or {}
        ).get("latency_s", {})
        load = figures.get("load", {})
        pesq = figures.get("quality", {}).get("pesq_wb")
        megabytes = load.get("bytes_per_listener_hour")
        print(
            f"{name:28} {cell(arrival.get('p50')) + ' / ' + cell(arrival.get('p95')):>18} "
            f"{cell(played.get('p50')) + ' / ' + cell(played.get('p95')):>17} "
            f"{cell(figures.get('connect_burst_s')):>7} "
            f"{cell(load.get('cpu_cores_per_1000_listeners'), 3):>10} "
            f"{cell(megabytes / 1e6 if megabytes else None, 1):>13} {cell(pesq):>8}"
        )
    print("played: progressive as an ideal player from the first byte; HLS as hls.js played it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=1000, help="listeners per server")
    parser.add_argument("--marks", type=int, default=20, help="latency marks to send")
    parser.add_argument("--window-s", type=float, default=20.0, help="CPU window per server")
    parser.add_argument("--idle-s", type=float, default=10.0, help="CPU window with no listener")
    parser.add_argument("--hls-players", type=int, default=2, help="hls.js pages per server")
    parser.add_argument("--seed", type=int, default=7, help="seed of the mark intervals")
    parser.add_argument(
        "--quick", action="store_true", help="8 marks, 100 listeners, short windows"
    )
    args = parser.parse_args()
    if args.quick:
        args.marks, args.listeners, args.window_s, args.idle_s = 8, 100, 6.0, 4.0
        args.hls_players = 1
    # a SIGTERM (`timeout`, a CI runner) unwinds like Ctrl-C: every server is stopped by PID
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    niceness = prioritize_clients()
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print(
        f"peers bench: Rostra, Icecast and nginx-rtmp from one source, {args.listeners} listeners"
    )
    result = asyncio.run(measure(args))
    result["load_average_at_start"] = load_at_start
    result["niceness"] = niceness
    print_table(result)
    path = write_results(NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
