"""Rostra beside its peers, measured on this machine in one run: Icecast 2.4 (progressive, with
its default burst and with burst 0) and nginx-rtmp HLS with 1 s fragments, fed by ffmpeg from the
same PCM a Rostra speaker bot sends over WHIP, heard by the same probes.

Rostra's paths: progressive Ogg/Opus and ADTS straight from the origin, LL-HLS straight from the
origin and through `rostra edge` (nginx, Varnish: bench/peer_paths.py), and plain players on an
Icecast relay of the master Icecast that Rostra feeds (`rostra serve --icecast`).

Per path: listener latency p50/p95 (marks, as bench/latency.py sends them; every HLS path played
by the same hls.js in Chromium with the listener page's config, bench/hls_player.py), stalls
while the marks play, PESQ-WB of a speech clip at the listener, server CPU per 1,000 listeners
and bytes per listener-hour (N listeners in separate processes, each server in its own window).

Run from the repository root:
    .venv/bin/python bench/peers.py [--listeners 1000] [--engines nginx,varnish] [--quick]
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
from dataclasses import dataclass
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
from hls_player import Heard, HlsPlayer
from latency import STALL_WINDOW_AFTER_LAST_MARK_S, _hls_figures
from marks import SAMPLE_RATE_HZ, Mark, MarkTrain, OnsetDetector, mark_train, match_marks
from peer_cpu import LoadWindow, measure_load
from peer_paths import ENGINES, running_edges, running_master, running_relay, space_mounts, through
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
STALL_GAP_S = 0.5  # a progressive stall: no byte for longer than this while the marks play
# the HLS paths ffmpeg also captures for PESQ (through the edge, the same bytes as direct)
CAPTURED_HLS = ("rostra_ll_hls", "nginx_rtmp_hls_1s")


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
        self.gaps: list[tuple[float, float]] = []  # (arrival that ended it, its length in s)
        self.listener = ProgressiveListener(url, on_chunk=self._on_chunk, max_s=budget_s)

    def _on_chunk(self, pcm: np.ndarray, arrived_at: float) -> None:
        self.arrival.feed(pcm, arrived_at)
        play_at = max(arrived_at, self._next_play_at)
        self.played.feed(pcm, play_at)
        self._next_play_at = play_at + pcm.size / SAMPLE_RATE_HZ
        self.chunks.append(pcm)
        if self.last_audio_at and arrived_at - self.last_audio_at > STALL_GAP_S:
            self.gaps.append((arrived_at, arrived_at - self.last_audio_at))
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

    def stalls(self, sent: list[Mark]) -> dict[str, Any]:
        """Gaps in arrival longer than STALL_GAP_S while the marks played (as HLS counts them)."""
        if not sent:
            return {"stalls": None, "longest_gap_s": None}
        first, last = sent[0].at, sent[-1].at + STALL_WINDOW_AFTER_LAST_MARK_S
        gaps = [length for at, length in self.gaps if first <= at <= last]
        return {"stalls": len(gaps), "longest_gap_s": round(max(gaps, default=0.0), 3)}

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


def hls_latency(sent: list[Mark], player: HlsPlayer, heard: list[Heard]) -> dict[str, Any]:
    """bench/latency.py's figures for the pages, pooled: marks as played, waiting events."""
    figures = _hls_figures(sent, heard, player)
    played = figures["played"]
    return {
        "latency_s": played["latency_s"],
        "marks_matched": played["marks_matched"],
        "marks_sent": played["marks_expected"],
        "stalls": figures["stalls_while_marks_played"],
        "stalls_total": sum(page["stalls_total"] for page in figures["players"]),
        "renditions": [page["rendition"] for page in figures["players"]],
        "player_errors": [e for page in figures["players"] for e in page["player_errors"]][:10],
        "hls_js": figures["hls_js_version"],
    }


# what each hls.js page fetched for the stream (not the page, hls.js or its config), from the
# page's Resource Timing entries: same-origin, so transferSize holds headers and body
PAGE_TRAFFIC_JS = """() => {
  const media = performance.getEntriesByType('resource').filter(
    (e) => e.name.startsWith('http') && !e.name.includes('/static/')
      && !e.name.includes('/__bench/'));
  if (!media.length) return null;
  return {
    requests: media.length,
    bytes: media.reduce((sum, e) => sum + e.transferSize, 0),
    span_s: (performance.now() - media[0].startTime) / 1000,
  };
}"""
RESOURCE_BUFFER_JS = "() => performance.setResourceTimingBufferSize(1000000)"


async def page_traffic(player: HlsPlayer) -> dict[str, Any]:
    """Requests per second and bytes per listener-hour as the hls.js pages fetched them (LL-HLS:
    blocking playlist reloads and parts), beside the legacy pollers of the load window."""
    pages = [await page.evaluate(PAGE_TRAFFIC_JS) for page in player._pages]
    pages = [p for p in pages if p and p["span_s"] > 0]
    if not pages:
        return {}
    span = sum(p["span_s"] for p in pages)
    return {
        "requests_per_s": round(sum(p["requests"] for p in pages) / span, 2),
        "bytes_per_listener_hour": round(sum(p["bytes"] for p in pages) / span * 3600),
    }


@dataclass(slots=True)
class Paths:
    """Every path's URL: progressive probes, hls.js pages (base URL, index playlist) and the
    load windows (kind, URL, server PIDs whose process trees are measured)."""

    progressive: dict[str, str]
    hls: dict[str, tuple[str, str]]
    load: dict[str, tuple[str, str, int | tuple[int, ...]]]


def plan_paths(
    space: dict[str, Any],
    server: Any,
    edges: dict[str, Any],
    relay: Any,
    peer: tuple[peer_servers.Icecast, peer_servers.NginxRtmp],
    rostra_media: str,
) -> Paths:
    icecast, nginx = peer
    origin = server.process.pid
    aac_mount, opus_mount = space_mounts(space)
    progressive = {
        "rostra_opus_stream": space["opus_stream_url"],
        "rostra_adts_stream": space["stream_url"],
        "rostra_icecast_relay_aac": relay.url + aac_mount,
        "rostra_icecast_relay_opus": relay.url + opus_mount,
        **{name: icecast.url + mount for name, (mount, _) in peer_servers.ICECAST_MOUNTS.items()},
    }
    hls = {"rostra_ll_hls": (_origin_of(space["hls_url"]), space["hls_url"])}
    load: dict[str, tuple[str, str, int | tuple[int, ...]]] = {
        "rostra_opus_stream": ("progressive", space["opus_stream_url"], origin),
        "rostra_adts_stream": ("progressive", space["stream_url"], origin),
        "rostra_ll_hls": ("hls", rostra_media, origin),
    }
    for engine, edge in edges.items():
        hls[f"rostra_ll_hls_edge_{engine}"] = (edge.url, through(space["hls_url"], server, edge))
        load[f"rostra_ll_hls_edge_{engine}"] = (
            "hls",
            through(rostra_media, server, edge),
            (edge.process.pid, origin),
        )
    load["rostra_icecast_relay_aac"] = ("progressive", relay.url + aac_mount, relay.process.pid)
    for name, (mount, _) in peer_servers.ICECAST_MOUNTS.items():
        load[name] = ("progressive", icecast.url + mount, icecast.pid)
    hls["nginx_rtmp_hls_1s"] = (nginx.http_url, nginx.hls_url)
    load["nginx_rtmp_hls_1s"] = ("hls", nginx.hls_url, nginx.pid)
    return Paths(progressive=progressive, hls=hls, load=load)


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
    # the source plays on through every load window (one per path, one idle per server)
    load_windows, idle_windows = 9 + len(args.engines), 4 + len(args.engines)
    windows = load_windows * (args.window_s + 16) + idle_windows * (args.idle_s + 10) + 60
    pcm = source_pcm(train, speech, windows)
    listen_s = (train.pcm.size + speech.size) / SAMPLE_RATE_HZ + 2 * GAP_S + TAIL_S
    clients = args.listeners + 200
    with (
        running_master(clients) as chain,
        running_server(chain.server_env()) as server,
        peers(clients) as (icecast, nginx),
        tempfile.TemporaryDirectory(prefix="rostra-peers-") as folder,
        running_edges(server, args.engines, Path(folder) / "edges") as edges,
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
            await start_speaker(space["speaker_invite_url"], source, spoken_path, speakers)
            feeder.release()

        try:
            rostra_media = await media_playlist(space["hls_url"])
            async with running_relay(chain, space) as relay:
                paths = plan_paths(space, server, edges, relay, (icecast, nginx), rostra_media)
                heard = await listen(args, paths, nginx, listen_s, Path(folder), start_source)
                load = await asyncio.to_thread(measure_all_load, args, paths)
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
        "versions": {
            "icecast": icecast.version,
            "nginx": _nginx_version(),
            "varnish": _varnish_version() if "varnish" in args.engines else None,
        },
        "settings": settings(args),
        "definitions": DEFINITIONS,
    }


async def start_speaker(
    invite_url: str, source: Path, spoken_path: Path, speakers: list[asyncio.subprocess.Process]
) -> None:
    """peer_speaker.py sending `source` (PCM, .npy) into Rostra over WHIP, once it says it is
    connected; added to `speakers` first, so that the caller stops it whatever happens."""
    speaker = await asyncio.create_subprocess_exec(
        *(sys.executable, str(SPEAKER_SCRIPT), invite_url, str(source), str(spoken_path)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    speakers.append(speaker)
    assert speaker.stdout is not None
    line = await asyncio.wait_for(speaker.stdout.readline(), SPEAKER_TIMEOUT_S)
    if line.strip() != b"connected":
        raise RuntimeError(f"the Rostra speaker did not connect: {line!r}")


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
    paths: Paths,
    nginx: peer_servers.NginxRtmp,
    listen_s: float,
    folder: Path,
    start_source: Callable[[], Awaitable[None]],
) -> dict[str, Any]:
    """Every probe joins first, then the source starts: progressive probes, hls.js in Chromium
    on every HLS path, and ffmpeg capturing the direct HLS paths for PESQ, all on the same
    marks."""
    probes = {
        name: ProgressiveProbe(url, listen_s + 120) for name, url in paths.progressive.items()
    }
    for probe in probes.values():
        probe.listener.start()
    await wait_for_segments(nginx.hls_url)
    players = {
        name: HlsPlayer(base_url, players=args.hls_players)
        for name, (base_url, _) in paths.hls.items()
    }
    hls_urls = {name: url for name, (_, url) in paths.hls.items()}
    captures = {}
    failed: dict[str, str] = {}
    try:
        for name, player in list(players.items()):
            try:
                await player.start(hls_urls[name])
                for page in player._pages:
                    await page.evaluate(RESOURCE_BUFFER_JS)
                await player.wait_playing(HLS_START_TIMEOUT_S)
            except Exception as error:  # noqa: BLE001 (a path that does not play is a result)
                failed[name] = f"{type(error).__name__}: {str(error)[:300]}"
                print(f"  {name} did not play: {failed[name]}", flush=True)
                await players.pop(name).close()
        await wait_for_probes(probes)
        for name in CAPTURED_HLS:
            url, out = hls_urls[name], folder / f"{name}.wav"
            captures[name] = (audio_check.capture(url, listen_s + HLS_CAPTURE_MARGIN_S, out), out)
        await start_source()
        print(f"  every probe listening; marks and speech for {listen_s:.0f} s …", flush=True)
        await asyncio.sleep(listen_s)
        heard = {name: (player, await player.heard()) for name, player in players.items()}
        traffic = {name: await page_traffic(player) for name, player in players.items()}
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
    return {
        "probes": probes,
        "players": heard,
        "traffic": traffic,
        "recorded": recorded,
        "did_not_play": failed,
    }


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
            **probe.stalls(marks),
            "quality": assess(probe.received(), clip),
            "listener_error": probe.listener.error,
            "probe_bitrate_bps": probe.bitrate_bps(),
            "connect_burst_s": probe.connect_burst_s(),
        }
    for name, (player, pages) in heard["players"].items():
        marks = rostra_sent if name.startswith("rostra") else peer_sent
        paths[name] = {
            "latency_hls_js_played": hls_latency(marks, player, pages),
            "hls_js_traffic": heard["traffic"][name],
        }
        if name in heard["recorded"]:
            paths[name]["quality"] = assess(heard["recorded"][name], clip)
    for name, error in heard["did_not_play"].items():
        paths[name] = {"latency_hls_js_played": {"did_not_play": error}}
    return paths


def measure_all_load(args: argparse.Namespace, paths: Paths) -> dict[str, LoadWindow]:
    """Each server's listeners in its own window, one server at a time; through an edge, the
    edge's and the origin's processes together."""
    loads: dict[str, LoadWindow] = {}
    idle: dict[tuple[int, ...], Any] = {}
    for name, (kind, url, pid) in paths.load.items():
        pids = pid if isinstance(pid, tuple) else (pid,)
        if pids not in idle:
            idle[pids] = measure_load(kind, url, 0, args.idle_s, pids)
        print(
            f"  {args.listeners} {kind} listeners on {name} for {args.window_s:.0f} s …", flush=True
        )
        loads[name] = measure_load(kind, url, args.listeners, args.window_s, pids, idle=idle[pids])
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


def _varnish_version() -> str:
    result = subprocess.run(["varnishd", "-V"], capture_output=True, text=True, check=False)
    return (result.stderr or result.stdout).strip().splitlines()[0]


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "listeners": args.listeners,
        "window_s": args.window_s,
        "idle_window_s": args.idle_s,
        "marks": args.marks,
        "hls_players_per_server": args.hls_players,
        "edge_engines": list(args.engines),
        "icecast_relay": "Rostra feeds a master Icecast (burst 0); one relay Icecast relays the "
        "space's two mounts (<relay>, on-demand 0, burst 0): docs/relays.md",
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
    "stalls": "hls.js: the <audio> element's 'waiting' events while the marks played (first "
    "mark to 6 s after the last), all pages; progressive: gaps in arrival longer than 0.5 s in "
    "the same window",
    "through_the_edge": "hls.js plays index.m3u8 through `rostra edge` (LL-HLS: blocking "
    "playlist reloads held at the origin, collapsed by the edge); the load window's CPU is the "
    "edge's processes plus the origin's",
    "icecast_relay": "a plain player on the relay Icecast; its load window's CPU is the relay's "
    "(Rostra's cost stays one source connection per mount to the master: bench/relay.py)",
    "hls_js_traffic": "what each hls.js page fetched for the stream (playlists, parts, "
    "segments; headers included), from its Resource Timing entries, per second of listening",
    "hls_pollers": "each fetches the media playlist once per target duration and each new "
    "segment once on a kept-alive connection (a legacy HLS client: no LL-HLS parts)",
}


def cell(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\n{'path':28} {'played p50/p95 s':>17} {'arrival p50/p95 s':>18} {'stalls':>6} "
        f"{'cores/1000':>10} {'MB/listener-h':>13} {'PESQ-WB':>8}"
    )
    for name, figures in result["paths"].items():
        arrival = figures.get("latency_arrival", {}).get("latency_s", {})
        hls = figures.get("latency_hls_js_played", {})
        played = (figures.get("latency_played_from_first_byte") or hls).get("latency_s", {})
        stalls = figures.get("stalls", hls.get("stalls"))
        load = figures.get("load", {})
        pesq = (figures.get("quality") or {}).get("pesq_wb")
        megabytes = load.get("bytes_per_listener_hour")
        print(
            f"{name:28} {cell(played.get('p50')) + ' / ' + cell(played.get('p95')):>17} "
            f"{cell(arrival.get('p50')) + ' / ' + cell(arrival.get('p95')):>18} "
            f"{'—' if stalls is None else stalls:>6} "
            f"{cell(load.get('cpu_cores_per_1000_listeners'), 3):>10} "
            f"{cell(megabytes / 1e6 if megabytes else None, 1):>13} {cell(pesq):>8}"
        )
    for name, figures in result["paths"].items():
        if "connect_burst_s" in figures:
            print(
                f"{name:28} longest gap {cell(figures.get('longest_gap_s'))} s; on connect "
                f"{cell(figures['connect_burst_s'])} s of audio beyond real time"
            )
    for name, figures in result["paths"].items():
        if traffic := figures.get("hls_js_traffic"):
            print(
                f"{name:28} as hls.js fetched it: {traffic['requests_per_s']:.1f} requests/s, "
                f"{traffic['bytes_per_listener_hour'] / 1e6:.1f} MB per listener-hour"
            )
    print(
        "played: progressive as an ideal player from the first byte; HLS as hls.js played it. "
        "stalls: hls.js waiting events, progressive gaps > 0.5 s, while the marks played"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=1000, help="listeners per server")
    parser.add_argument("--marks", type=int, default=20, help="latency marks to send")
    parser.add_argument("--window-s", type=float, default=20.0, help="CPU window per server")
    parser.add_argument("--idle-s", type=float, default=10.0, help="CPU window with no listener")
    parser.add_argument("--hls-players", type=int, default=2, help="hls.js pages per server")
    parser.add_argument("--seed", type=int, default=7, help="seed of the mark intervals")
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"`rostra edge` engines to play LL-HLS through, comma-separated ({', '.join(ENGINES)})"
        ", or 'none'",
    )
    parser.add_argument(
        "--quick", action="store_true", help="8 marks, 100 listeners, short windows"
    )
    args = parser.parse_args()
    args.engines = tuple(e for e in args.engines.split(",") if e and e != "none")
    if unknown := set(args.engines) - set(ENGINES):
        parser.error(f"unknown engines {sorted(unknown)} (known: {ENGINES})")
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
    # a quick run keeps its own file, so the full run's figures stay where the README reads them
    path = write_results(f"{NAME}_quick" if args.quick else NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
