"""Origin cost of a live space: CPU of the server process with 0, 1, 4, 8 and 13 voices on stage
(each voice gets its mix-minus back), and the mixer clock's lateness while voices join.

The load generator is one process: one asyncio loop holding every speaker's aiortc peer
connection. Speech is encoded to Opus once; each voice only packetizes those packets (from its own
offset in the clip) and counts its mix-minus packets without decoding them. The generator's own
CPU is measured over the same windows.

Run from the repository root:  .venv/bin/python bench/cost.py [--window-s 15] [--levels 0,1,4,8,13]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

import codec_reference
from bots import Bot, OpusPacketTrack, ReturnTap, encode_opus, join, sender_lateness
from harness import (
    CpuMeter,
    Server,
    create_space,
    metric_values,
    prioritize_clients,
    running_server,
    write_results,
)
from speech import SENTENCES_A, SENTENCES_B, synthesize

NAME = "cost"
VOICE_BITRATE_BPS = 32_000
VOICE_OPTIONS = {"application": "voip", "fec": "1", "packet_loss": "5"}
PACKETS_PER_S = 50
SETTLE_S = 3.0
MAX_VOICES = 13
ONE_CORE_PCT = 100.0
LATE_METRIC = "rostra_mixer_late_ticks"
LATENESS_METRIC = "rostra_mixer_max_lateness_seconds"
DROPPED_METRIC = "rostra_program_frames_dropped"


VOICES = {
    "browser": f"Opus {VOICE_BITRATE_BPS // 1000} kbit/s mono, 20 ms, options {VOICE_OPTIONS}, "
    "as WebRTC browsers send by default",
    "aiortc": "Opus as aiortc's stock encoder makes it (96 kbit/s, stereo L=R, voip, no FEC), "
    "as `rostra speak` sends",
}


def voice_packets(kind: str) -> list[bytes]:
    """About 25 s of espeak-ng speech as Opus packets, encoded once."""
    speech = np.concatenate([synthesize(SENTENCES_A), synthesize(SENTENCES_B, voice="en-us")])
    if kind == "aiortc":
        return codec_reference.aiortc_packets(speech)
    return encode_opus(speech, bitrate_bps=VOICE_BITRATE_BPS, options=VOICE_OPTIONS)


def clock_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        "late_ticks": after.get(LATE_METRIC, 0.0) - before.get(LATE_METRIC, 0.0),
        "max_lateness_s_so_far": round(after.get(LATENESS_METRIC, 0.0), 4),
        "program_frames_dropped": after.get(DROPPED_METRIC, 0.0) - before.get(DROPPED_METRIC, 0.0),
    }


class Stage:
    """The bots on stage, joined a few at a time."""

    def __init__(self, server: Server, space: dict[str, Any], packets: list[bytes]) -> None:
        self.server = server
        self.space = space
        self.packets = packets
        self.bots: list[Bot] = []
        self.invite_url = ""
        self.tracks: list[OpusPacketTrack] = []

    async def grow(self, client: httpx.AsyncClient, voices: int) -> dict[str, Any]:
        """Join bots until `voices` are on stage; the mixer clock while they join."""
        before = await asyncio.to_thread(metric_values, self.server, self.space["id"])
        started = time.monotonic()
        while len(self.bots) < voices:
            index = len(self.bots)
            # each voice starts somewhere else in the clip, so the voices do not sum in phase
            offset = index * len(self.packets) // MAX_VOICES
            track = OpusPacketTrack(self.packets, first_packet=offset)
            bot = await join(
                client,
                self._link(index),
                track,
                name=f"voice {index + 1}",
                tap=ReturnTap(),
            )
            await bot.wait_connected()
            self.bots.append(bot)
            self.tracks.append(track)
        joining_s = time.monotonic() - started
        await asyncio.sleep(SETTLE_S)
        after = await asyncio.to_thread(metric_values, self.server, self.space["id"])
        return {"joining_s": round(joining_s, 2), **clock_delta(before, after)}

    def _link(self, index: int) -> str:
        """A shared link holds at most all seats but the host's: the last voice is the host."""
        if index == MAX_VOICES - 1:
            return str(self.space["host_url"])
        if not self.invite_url:
            minted = self.server.api(
                "POST", f"/api/v1/spaces/{self.space['id']}/invites", json={"seats": MAX_VOICES - 1}
            )
            minted.raise_for_status()
            self.invite_url = str(minted.json()["speaker_invite_url"])
        return self.invite_url

    def return_packets(self) -> int:
        return sum(bot.tap.packets for bot in self.bots)

    async def leave(self, client: httpx.AsyncClient) -> None:
        for bot in self.bots:
            await bot.leave(client)


async def measure_level(stage: Stage, window_s: float, server_cpu: CpuMeter) -> dict[str, Any]:
    """CPU of server and generator over one window at the current stage size."""
    generator_cpu = CpuMeter(os.getpid())
    before = await asyncio.to_thread(metric_values, stage.server, stage.space["id"])
    returned_before = stage.return_packets()
    with server_cpu.window() as server, generator_cpu.window() as generator:
        await asyncio.sleep(window_s)
    after = await asyncio.to_thread(metric_values, stage.server, stage.space["id"])
    voices = len(stage.bots)
    returned = stage.return_packets() - returned_before
    return {
        "voices": voices,
        "voices_on_server": after.get("rostra_voices", 0.0),
        "server_cpu": server,
        "generator_cpu": generator,
        "mixer_clock": clock_delta(before, after),
        "mix_minus_packets_per_voice_per_s": round(returned / window_s / voices, 2)
        if voices
        else None,
    }


def per_voice(levels: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """CPU per voice: the least-squares slope of core % against voices, and each level's
    increment over the empty stage divided by its voices."""
    voices = np.array([level["voices"] for level in levels], dtype=np.float64)
    cpu = np.array([level[key]["core_pct"] for level in levels], dtype=np.float64)
    slope, intercept = np.polyfit(voices, cpu, 1) if voices.size > 1 else (0.0, cpu[0])
    empty = cpu[voices == 0][0] if (voices == 0).any() else intercept
    increments = {
        str(int(v)): round(float((c - empty) / v), 2)
        for v, c in zip(voices, cpu, strict=True)
        if v > 0
    }
    return {
        "slope_core_pct_per_voice": round(float(slope), 2),
        "intercept_core_pct": round(float(intercept), 2),
        "increment_over_empty_per_voice_core_pct": increments,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    packets = voice_packets(args.voice)
    levels: list[dict[str, Any]] = []
    with running_server() as server:
        space = create_space(server, "Cost bench")
        stage = Stage(server, space, packets)
        server_cpu = CpuMeter(server.process.pid)
        async with httpx.AsyncClient() as client:
            try:
                for voices in args.levels:
                    joining = await stage.grow(client, voices)
                    level = await measure_level(stage, args.window_s, server_cpu)
                    level["while_joining"] = joining
                    levels.append(level)
                    print(
                        f"  {voices:2d} voices: server {level['server_cpu']['core_pct']:6.1f} % "
                        f"of a core, generator {level['generator_cpu']['core_pct']:5.1f} %, "
                        f"late ticks {level['mixer_clock']['late_ticks']:.0f} "
                        f"(+{joining['late_ticks']:.0f} while joining)",
                        flush=True,
                    )
            finally:
                lateness = [x for track in stage.tracks for x in track.lateness_s]
                await stage.leave(client)
    return summarize(levels, lateness, args)


def summarize(
    levels: list[dict[str, Any]], lateness: list[float], args: argparse.Namespace
) -> dict[str, Any]:
    full = next((level for level in levels if level["voices"] == MAX_VOICES), None)
    dropped = sum(
        level["mixer_clock"]["program_frames_dropped"]
        + level["while_joining"]["program_frames_dropped"]
        for level in levels
    )
    return {
        "window_s": args.window_s,
        "levels": levels,
        "space_idle_core_pct": next(
            (level["server_cpu"]["core_pct"] for level in levels if level["voices"] == 0), None
        ),
        "server_per_voice": per_voice(levels, "server_cpu"),
        "generator_per_voice": per_voice(levels, "generator_cpu"),
        "generator_sender_lateness": sender_lateness(lateness),
        "voice": {
            "kind": args.voice,
            "codec": VOICES[args.voice] + "; pre-encoded once from espeak-ng speech",
            "return": "mix-minus RTP packets counted at the bot's receiver, never decoded",
        },
        "targets": {
            "13_voices_within_one_core": "server core % at 13 voices <= 100",
            "no_dropped_program_frames": "rostra_program_frames_dropped stays 0",
        },
        "verdicts": {
            "13_voices_within_one_core": None
            if full is None
            else full["server_cpu"]["core_pct"] <= ONE_CORE_PCT,
            "no_dropped_program_frames": dropped == 0,
        },
        "not_measured": "per-voice jitter-buffer underruns and concealment: /metrics does not "
        "expose rostra.media.jitter.JitterStats",
    }


def print_summary(result: dict[str, Any]) -> None:
    print(f"\n{'voices':>6} {'server %':>9} {'generator %':>12} {'late ticks':>11} {'dropped':>8}")
    for level in result["levels"]:
        clock = level["mixer_clock"]
        print(
            f"{level['voices']:6d} {level['server_cpu']['core_pct']:9.1f} "
            f"{level['generator_cpu']['core_pct']:12.1f} {clock['late_ticks']:11.0f} "
            f"{clock['program_frames_dropped']:8.0f}"
        )
    server, generator = result["server_per_voice"], result["generator_per_voice"]
    print(f"idle space: {result['space_idle_core_pct']} % of a core")
    print(f"per voice: server {server['slope_core_pct_per_voice']} % of a core (slope), ", end="")
    print(f"generator {generator['slope_core_pct_per_voice']} %")
    print(f"verdicts: {result['verdicts']}")


def parse_levels(text: str) -> list[int]:
    levels = sorted({int(part) for part in text.split(",") if part.strip()})
    if not levels or levels[0] < 0 or levels[-1] > MAX_VOICES:
        raise argparse.ArgumentTypeError(f"levels must be between 0 and {MAX_VOICES}")
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-s", type=float, default=15.0, help="CPU window per level")
    parser.add_argument("--levels", type=parse_levels, default=[0, 1, 4, 8, 13])
    parser.add_argument(
        "--voice", choices=sorted(VOICES), default="browser", help="how each voice is encoded"
    )
    parser.add_argument(
        "--same-priority", action="store_true", help="do not run the clients ahead of the server"
    )
    args = parser.parse_args()
    niceness = prioritize_clients(not args.same_priority)
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print(f"cost bench: {args.voice} voices {args.levels}, {args.window_s:.0f} s per level")
    result = asyncio.run(measure(args))
    result["load_average_at_start"] = load_at_start
    result["niceness"] = niceness
    print_summary(result)
    path = write_results(NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
