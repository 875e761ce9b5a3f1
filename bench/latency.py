"""Mouth-to-ear latency of a live space, per listening path, p50/p95 over 30+ marks.

A speaker bot sends marks (40 ms tone bursts, 0.8–1.3 s apart) over WHIP in real time, noting
when the frame holding each mark's first sample is handed to WebRTC. At the same time, on the
same server:
  - two progressive listeners (ADTS and Ogg/Opus) decode as bytes arrive;
  - headless Chromium plays the live HLS with hls.js and the listener page's config;
  - a second speaker bot hears the first in its mix-minus (decoded on packet arrival, and through
    aiortc's stock jitter buffer as a plain aiortc client would play it);
  - with `--players ffplay` (the default; `ffplay,mpv` for both), each player with its default
    buffer plays the Ogg/Opus and ADTS streams and the HLS `index.m3u8`, its audio device emulated
    in real time (bench/player_probe.py): what a listener with a player hears.
Every listener timestamps the marks in the machine's wall clock.

Run from the repository root:  .venv/bin/python bench/latency.py [--marks 40] [--players ffplay,mpv]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiortc.mediastreams import MediaStreamError

from bots import ReturnTap, TimedPcmTrack, join, sender_lateness
from harness import (
    create_space,
    percentiles,
    prioritize_clients,
    running_server,
    wait_for_segments,
    write_results,
)
from hls_player import Heard, HlsPlayer, hls_js_version
from marks import (
    MARK_DURATION_S,
    MARK_FREQUENCIES_HZ,
    SAMPLE_RATE_HZ,
    Mark,
    MarkTrain,
    OnsetDetector,
    mark_train,
    match_marks,
)
from player_probe import PLAYERS, Played, PlayerProbe, player_available, player_version
from progressive import ProgressiveListener
from rostra.media.opus import OpusDecoder, OpusError

# isort: split
# the tests' helpers, importable once harness has put the repository on sys.path
from tests.conftest import free_port
from tests.e2e.conftest import start_edge, stop_edge

NAME = "latency"
LEAD_S = 2.0
MIN_MARKS = 30
MAX_HLS_PLAYERS = 6
HLS_START_TIMEOUT_S = 30.0
LISTENER_START_TIMEOUT_S = 15.0
SEND_SLACK_S = 30.0
INT16_FULL_SCALE = 32_767
STALL_WINDOW_AFTER_LAST_MARK_S = 6.0  # the HLS listener hears the last mark a few seconds late
# the paths a player with its default buffer plays: the space's URL for each
PLAYER_PATHS = {
    "progressive_opus": "opus_stream_url",
    "progressive_aac": "stream_url",
    "hls": "hls_url",
}
PLAYER_PATH_LABELS = {
    "progressive_opus": "Ogg/Opus",
    "progressive_aac": "ADTS (AAC)",
    "hls": "HLS index.m3u8",
}

# (what the target says, its bound in seconds, whether the bound itself misses)
TARGETS_S = {
    "progressive": ("p50 <= 0.5 s", 0.5, False),
    "hls": ("p50 <= 1.2 s (LL-HLS; the peers: bench/peers.py)", 1.2, False),
    "speaker_to_speaker": ("p50 <= 0.25 s", 0.25, False),
}


class Listening:
    """Every listener's detector, and the tasks and threads that feed them."""

    def __init__(
        self,
        space: dict[str, Any],
        base_url: str,
        budget_s: float,
        *,
        players: int,
        player_names: tuple[str, ...] = (),
        mse_audio_limit_mb: int = 0,
    ) -> None:
        self.detectors = {
            name: OnsetDetector()
            for name in ("progressive_aac", "progressive_opus", "s2s_arrival", "s2s_stock")
        }
        self.streams = {
            "progressive_aac": ProgressiveListener(
                space["stream_url"], on_chunk=self.detectors["progressive_aac"].feed, max_s=budget_s
            ),
            "progressive_opus": ProgressiveListener(
                space["opus_stream_url"],
                on_chunk=self.detectors["progressive_opus"].feed,
                max_s=budget_s,
            ),
        }
        self.player = HlsPlayer(base_url, players=players, mse_audio_limit_mb=mse_audio_limit_mb)
        self.player_probes = {
            (name, path): PlayerProbe(space[key], player=name, max_s=budget_s)
            for name in player_names
            for path, key in PLAYER_PATHS.items()
        }
        self.player_start_errors: dict[tuple[str, str], str] = {}
        self.played: dict[tuple[str, str], Played] = {}
        self._decoder = OpusDecoder(channels=1)
        self.decode_errors = 0

    async def start_player_probes(self) -> None:
        """Each player on each path; one that plays nothing (HLS live, say) is reported."""
        for key, probe in self.player_probes.items():
            try:
                await probe.start()
            except RuntimeError as error:
                self.player_start_errors[key] = str(error)
                self.played[key] = probe.stop()
        for key, probe in self.player_probes.items():
            if key in self.played:
                continue
            try:
                await probe.wait_playing(HLS_START_TIMEOUT_S)
            except RuntimeError as error:
                self.player_start_errors[key] = str(error)
                self.played[key] = probe.stop()

    def stop_player_probes(self) -> None:
        """Kill every player process (idempotent; called on every way out)."""
        for key, probe in self.player_probes.items():
            if key not in self.played:
                self.played[key] = probe.stop()

    def on_return_packet(self, payload: bytes, arrived_at: float) -> None:
        try:
            pcm = self._decoder.decode(payload)
        except OpusError:
            self.decode_errors += 1
            return
        self.detectors["s2s_arrival"].feed(pcm, arrived_at)

    async def play_stock(self, track: Any, stop_at: float) -> None:
        """What aiortc's own receiver (jitter buffer, decoder thread) hands a plain client."""
        detector = self.detectors["s2s_stock"]
        while time.monotonic() < stop_at:
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=5)
            except (TimeoutError, MediaStreamError):
                return
            arrived_at = time.time()
            samples = frame.to_ndarray().reshape(-1)
            if frame.layout.name == "stereo":
                samples = samples.reshape(-1, 2).mean(axis=1)
            detector.feed((samples / INT16_FULL_SCALE).astype(np.float32), arrived_at)


async def wait_for_streams(listening: Listening) -> None:
    deadline = time.monotonic() + LISTENER_START_TIMEOUT_S
    for name, stream in listening.streams.items():
        while stream.first_audio_at is None:
            if stream.error or time.monotonic() > deadline:
                raise RuntimeError(f"{name} never decoded audio: {stream.error}")
            await asyncio.sleep(0.1)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    train = mark_train(args.marks, lead_s=LEAD_S, seed=args.seed)
    send_s = train.pcm.size / SAMPLE_RATE_HZ
    budget_s = send_s + args.tail_s + SEND_SLACK_S + HLS_START_TIMEOUT_S
    with running_server() as server, tempfile.TemporaryDirectory(prefix="rostra-edge-") as folder:
        space = create_space(server, "Latency bench")
        base_url, edge = server.url, None
        if args.edge:  # hls.js plays through `rostra edge`; the rest stays direct
            whip_origin = f"http://127.0.0.1:{server.whip_port}"
            edge = start_edge(server.url, whip_origin, free_port(), Path(folder), args.engine)
            base_url = edge.url
            space = space | {"hls_url": space["hls_url"].replace(server.url, edge.url)}
        listening = Listening(
            space,
            base_url,
            budget_s,
            players=args.hls_players,
            player_names=args.players,
            mse_audio_limit_mb=args.mse_audio_limit_mb,
        )
        for stream in listening.streams.values():
            stream.start()
        try:
            return await _run_space(args, space, listening, train, send_s)
        finally:
            listening.stop_player_probes()
            for stream in listening.streams.values():
                stream.stop()
            await listening.player.close()
            if edge is not None:
                stop_edge(edge)


async def _run_space(
    args: argparse.Namespace,
    space: dict[str, Any],
    listening: Listening,
    train: MarkTrain,
    send_s: float,
) -> dict[str, Any]:
    await wait_for_segments(space["hls_url"].replace("index.m3u8", "audio.m3u8"))
    await listening.player.start(space["hls_url"])
    await listening.player.wait_playing(HLS_START_TIMEOUT_S)
    await wait_for_streams(listening)
    await listening.start_player_probes()
    invite = space["speaker_invite_url"]
    async with httpx.AsyncClient() as client:
        hearer_track = TimedPcmTrack(
            np.zeros(int((send_s + args.tail_s + SEND_SLACK_S) * SAMPLE_RATE_HZ), np.float32)
        )
        hearer = await join(
            client,
            invite,
            hearer_track,
            name="hearer",
            tap=ReturnTap(listening.on_return_packet),
            stock_playout=True,
        )
        await hearer.wait_connected()
        stock_task = None
        if hearer.returned is not None:
            stock_task = asyncio.ensure_future(
                listening.play_stock(hearer.returned, time.monotonic() + send_s + 60)
            )
        talker_track = TimedPcmTrack(train.pcm, then_silence_s=0.5)
        talker = await join(client, invite, talker_track, name="talker", tap=ReturnTap())
        await talker.wait_connected()
        print(f"  sending {len(train.starts)} marks over {send_s:.0f} s …", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(talker_track.finished.wait(), send_s + SEND_SLACK_S)
        await asyncio.sleep(args.tail_s)
        heard = await listening.player.heard()
        listening.stop_player_probes()
        for bot in (talker, hearer):
            await bot.leave(client)
        if stock_task is not None:
            stock_task.cancel()
    sent = [
        Mark(at=talker_track.handed_at[start], tone=tone)
        for start, tone in zip(train.starts, train.tones, strict=True)
        if start in talker_track.handed_at
    ]
    result = summarize(sent, listening, heard, hearer.tap.packets)
    result["talker_sender_lateness"] = sender_lateness(talker_track.lateness_s)
    return result


def _figures(
    sent: list[Mark], heard: list[Mark], target: tuple[str, float, bool] | None
) -> dict[str, Any]:
    matched = match_marks(sent, heard)
    steps = np.abs(np.diff(matched.latencies_s)) if matched.matched > 1 else np.zeros(1)
    figures: dict[str, Any] = {
        "latency_s": percentiles(matched.latencies_s),
        "marks_matched": matched.matched,
        "marks_missed": matched.missed_marks,
        "unmatched_detections": matched.unmatched_detections,
        "largest_step_between_marks_s": round(float(steps.max()), 4),
        "per_mark_s": [None if x is None else round(x, 4) for x in matched.per_mark_s],
    }
    if target is not None and matched.latencies_s:
        text, bound, is_strict = target
        p50 = figures["latency_s"]["p50"]
        figures["target"] = text
        figures["meets_target"] = bool(p50 < bound if is_strict else p50 <= bound)
    return figures


def _hls_figures(sent: list[Mark], heard: list[Heard], player: HlsPlayer) -> dict[str, Any]:
    """Each page's latency, and all pages' marks pooled (where a player joins sets its latency)."""
    first, last = (sent[0].at, sent[-1].at) if sent else (0.0, 0.0)
    pooled: dict[str, list[float]] = {"played": [], "detected_in_worklet": []}
    pages: list[dict[str, Any]] = []
    for page in heard:
        page_figures: dict[str, Any] = {}
        for label, key in (("played", "played_ms"), ("detected_in_worklet", "received_ms")):
            marks = [Mark(at=m[key] / 1000, tone=int(m["tone"])) for m in page.marks]
            figures = _figures(sent, marks, None)
            pooled[label] += [x for x in figures["per_mark_s"] if x is not None]
            page_figures[label] = figures
        page_figures.update(
            hls_js_latency_estimate_s=percentiles([m["hls_latency_s"] for m in page.marks]),
            hls_js_latency_when_playing_began_s=round(page.latency_when_playing_s, 3),
            buffered_ahead_at_marks_s=percentiles([m["buffered_ahead_s"] for m in page.marks]),
            # how much played media the page still held at its last mark (the browser evicts
            # the rest once its quota fills)
            held_behind_at_last_mark_s=round(
                page.marks[-1]["current_s"] - page.marks[-1]["buffered_from_s"], 2
            )
            if page.marks
            else None,
            playback_rates_seen=sorted({m["playback_rate"] for m in page.marks}),
            stalls_total=len(page.stalls_at),
            jumps_to_live_s=[round(j, 3) for j in page.jumps_s],
            rendition=page.rendition,
            stalls_while_marks_played=sum(
                first <= t <= last + STALL_WINDOW_AFTER_LAST_MARK_S for t in page.stalls_at
            ),
            player_errors=page.errors[:20],
            stall_details=[
                d
                for d in page.stall_details
                if first <= d["at_ms"] / 1000 <= last + STALL_WINDOW_AFTER_LAST_MARK_S
            ][:5],
        )
        pages.append(page_figures)
    text, bound, _ = TARGETS_S["hls"]
    played = percentiles(pooled["played"])
    return {
        "played": {
            "latency_s": played,
            "target": text,
            "meets_target": bool(played.get("p50", float("inf")) <= bound),
            "marks_matched": len(pooled["played"]),
            "marks_expected": len(sent) * len(heard),
        },
        "detected_in_worklet": {
            "latency_s": percentiles(pooled["detected_in_worklet"]),
            "marks_matched": len(pooled["detected_in_worklet"]),
        },
        "players": pages,
        "stalls_while_marks_played": sum(p["stalls_while_marks_played"] for p in pages),
        "config": player.info.get("config"),
        "config_source": player.config_source,
        "hls_js_version": player.info.get("hls_version") or hls_js_version(),
        "audio_context": {
            k: player.info.get(k) for k in ("sample_rate_hz", "base_latency_s", "output_latency_s")
        },
    }


def _player_figures(sent: list[Mark], listening: Listening) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for (name, path), played in listening.played.items():
        path_figures = _figures(sent, played.marks, None)
        path_figures["url"] = played.url
        path_figures["player"] = played.summary()
        error = listening.player_start_errors.get((name, path))
        if error is not None:
            path_figures["did_not_play"] = error
        figures.setdefault(name, {})[path] = path_figures
    if figures:
        figures["versions"] = {name: player_version(name) for name in list(figures)}
    return figures


def summarize(
    sent: list[Mark], listening: Listening, heard: list[Heard], return_packets: int
) -> dict[str, Any]:
    detectors = listening.detectors
    return {
        "marks_sent": len(sent),
        "mark": {"tones_hz": MARK_FREQUENCIES_HZ, "duration_s": MARK_DURATION_S},
        "paths": {
            "progressive_aac": _figures(
                sent, detectors["progressive_aac"].onsets, TARGETS_S["progressive"]
            ),
            "progressive_opus": _figures(
                sent, detectors["progressive_opus"].onsets, TARGETS_S["progressive"]
            ),
            "hls": _hls_figures(sent, heard, listening.player),
            "played_by_player_default_buffer": _player_figures(sent, listening),
            "speaker_to_speaker": {
                "decoded_on_packet_arrival": _figures(
                    sent, detectors["s2s_arrival"].onsets, TARGETS_S["speaker_to_speaker"]
                ),
                "aiortc_stock_playout": _figures(sent, detectors["s2s_stock"].onsets, None),
                "return_packets": return_packets,
                "return_decode_errors": listening.decode_errors,
            },
        },
        "peers": "measured in the same run by bench/peers.py (results/peers.json)",
        "definitions": {
            "mouth": "wall-clock time the frame holding a mark's first sample is handed to "
            "aiortc's encoder by the speaker bot (a microphone's 20 ms capture frame comes "
            "before that and is not counted)",
            "progressive": "time the HTTP chunk holding the mark's onset arrived; it is decoded "
            "at once (ADTS frames / Ogg pages split in the listener, no demuxer buffering)",
            "hls.played": "AudioWorklet on the <audio> element's output: the onset's render "
            "frame mapped to wall-clock output time with AudioContext.getOutputTimestamp()",
            "hls.detected_in_worklet": "Date.now() when the worklet's message reached the page",
            "speaker_to_speaker.decoded_on_packet_arrival": "the second bot decodes each "
            "mix-minus RTP packet as it arrives (no client jitter buffer)",
            "speaker_to_speaker.aiortc_stock_playout": "the same packets through aiortc's own "
            "jitter buffer and decoder thread, as a plain aiortc client receives them",
            "played_by_player_default_buffer": "each player (ffplay, mpv; default settings) on "
            "each path, its audio device emulated in real time by bench/player_probe.py: a mark "
            "is heard when the device plays its onset sample (device buffer: two of the "
            "player's SDL buffers, as SDL asks of ALSA; a sound server adds about one more)",
        },
    }


def print_summary(result: dict[str, Any]) -> None:
    paths = result["paths"]
    rows = [
        ("ADTS (AAC), arrival, no buffer", paths["progressive_aac"]),
        ("Ogg/Opus, arrival, no buffer", paths["progressive_opus"]),
        ("HLS, hls.js, played", paths["hls"]["played"]),
        ("HLS, hls.js, in worklet", paths["hls"]["detected_in_worklet"]),
        ("speaker→speaker, on arrival", paths["speaker_to_speaker"]["decoded_on_packet_arrival"]),
        ("speaker→speaker, aiortc", paths["speaker_to_speaker"]["aiortc_stock_playout"]),
    ]
    print(f"\nmouth-to-ear latency, {result['marks_sent']} marks sent")
    print(f"{'path':32} {'p50 s':>7} {'p95 s':>7} {'marks':>6}  target")
    for label, figures in rows:
        latency = figures["latency_s"]
        verdict = ""
        if "target" in figures:
            verdict = f"{figures['target']}: {'met' if figures['meets_target'] else 'MISSED'}"
        p50, p95 = latency.get("p50", float("nan")), latency.get("p95", float("nan"))
        print(f"{label:32} {p50:7.3f} {p95:7.3f} {figures['marks_matched']:6d}  {verdict}")
    hls = paths["hls"]
    per_player = [p["played"]["latency_s"].get("p50") for p in hls["players"]]
    print(f"HLS p50 per player: {per_player}; stalls while marks played: ", end="")
    print(hls["stalls_while_marks_played"])
    held = [p.get("held_behind_at_last_mark_s") for p in hls["players"]]
    print(f"played media each page still held at its last mark (s): {held}")
    print(f"hls.js config from {hls['config_source']}: {hls['config']}")
    for name, by_path in paths["played_by_player_default_buffer"].items():
        if name == "versions":
            continue
        print(f"played by {name} with its default buffer:")
        for path, figures in by_path.items():
            latency = figures["latency_s"]
            p50, p95 = latency.get("p50", float("nan")), latency.get("p95", float("nan"))
            note = figures.get("did_not_play", "")[:80]
            underruns = figures["player"]["underrun_periods_between_marks"]
            print(
                f"  {PLAYER_PATH_LABELS[path]:30} {p50:7.3f} {p95:7.3f} "
                f"{figures['marks_matched']:6d}  underruns between marks: {underruns} {note}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marks", type=int, default=40, help="marks to send (at least 30)")
    parser.add_argument("--tail-s", type=float, default=8.0, help="listen on after the last mark")
    parser.add_argument("--seed", type=int, default=7, help="seed of the mark intervals")
    parser.add_argument(
        "--hls-players",
        type=int,
        default=3,
        help="HLS listeners, joining a third of a segment apart",
    )
    parser.add_argument(
        "--players",
        default="ffplay",
        help=f"players to hear each stream with their default buffer, comma-separated "
        f"({', '.join(PLAYERS)}), or 'none'",
    )
    parser.add_argument(
        "--same-priority", action="store_true", help="do not run the clients ahead of the server"
    )
    parser.add_argument(
        "--edge",
        action="store_true",
        help="hls.js plays through `rostra edge` in front; results in latency_edge.json",
    )
    parser.add_argument(
        "--engine",
        choices=("nginx", "varnish"),
        default="nginx",
        help="the edge's engine with --edge; varnish writes latency_edge_varnish.json",
    )
    parser.add_argument(
        "--mse-audio-limit-mb",
        type=int,
        default=0,
        help="Chromium's audio SourceBuffer quota in MB (0: its own, 12 MiB); a small one makes "
        "the browser evict played media within the run, as it does in a long event",
    )
    parser.add_argument(
        "--label",
        default="",
        help="appended to the results' name (a 5-minute run: --label 5min, latency_5min.json)",
    )
    args = parser.parse_args()
    if args.label and not args.label.replace("_", "").isalnum():
        parser.error("--label is letters, digits and _ only")
    niceness = prioritize_clients(not args.same_priority)
    args.marks = max(args.marks, MIN_MARKS)
    args.hls_players = min(max(args.hls_players, 1), MAX_HLS_PLAYERS)
    args.players = tuple(p for p in args.players.split(",") if p and p != "none")
    for name in args.players:
        if not player_available(name):
            parser.error(f"player {name!r} is unknown or not installed (known: {PLAYERS})")
    started_at = datetime.now(UTC)
    print(f"latency bench: {args.marks} marks, every 0.8–1.3 s, through a live space")
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    result = asyncio.run(measure(args))
    result["load_average_at_start"] = load_at_start
    result["niceness"] = niceness
    print_summary(result)
    result["through_edge"] = args.edge
    result["mse_audio_limit_mb"] = args.mse_audio_limit_mb or None
    result["edge_engine"] = args.engine if args.edge else None
    name = NAME
    if args.edge:
        name = f"{NAME}_edge" if args.engine == "nginx" else f"{NAME}_edge_{args.engine}"
    if args.label:
        name = f"{name}_{args.label}"
    path = write_results(name, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
