"""Audio quality through the whole path: speaker → WHIP → jitter buffer → mixer → encoder →
listener decode. PESQ wideband (ITU-T P.862.2) on real speech, the 4–16 kHz (sibilant) band
energy and the clip level at the listener against the source, per listening format; and PESQ
of the Opus stream with 3 % of the speaker's packets dropped by the server.

Two senders: the stock aiortc encoder (`rostra speak`'s path: Opus 96 kbit/s stereo, no FEC)
and a browser-like one (pre-encoded Opus 32 kbit/s mono with in-band FEC, as WebRTC browsers
send by default).

Run from the repository root:  .venv/bin/python bench/quality.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import numpy as np

import codec_reference
from assessment import Clip, assess
from bots import (
    OpusPacketTrack,
    ReturnTap,
    TimedPcmTrack,
    encode_opus,
    join,
    sender_lateness,
)
from harness import (
    Server,
    audio_check,
    create_space,
    metric_values,
    prioritize_clients,
    running_server,
    write_results,
)
from rostra.media.ingest import PacketDropper
from speech import (
    SAMPLE_RATE_HZ,
    SENTENCES_A,
    SENTENCES_B,
    synthesize,
    with_sibilants,
)

NAME = "quality"
LEAD_S = 1.5
CONNECT_ALLOWANCE_S = 4.0
PROGRESSIVE_MARGIN_S = 2.0
HLS_MARGIN_S = 8.0  # ffmpeg starts three segments behind the live edge, then follows it
CAPTURE_TIMEOUT_S = 90.0
SEGMENTS_TIMEOUT_S = 15.0
STOCK_TAIL_S = 0.5
BROWSER_BITRATE_BPS = 32_000
BROWSER_OPTIONS = {"application": "voip", "fec": "1", "packet_loss": "5"}
TARGETS = {
    "pesq_opus": ">= 4.0",
    "pesq_aac_hls": "report (FFmpeg's native AAC-LC near 3.7 at 96 kbit/s)",
    "pesq_opus_3pct_loss": ">= 3.0",
    "sibilant_band_db": "within ±1.5 dB",
    "level_db": "within ±1 dB",
}


async def send_session(
    space: dict[str, Any],
    clip: Clip,
    *,
    sender: str,
    formats: tuple[str, ...],
    folder: Path,
    server: Server,
) -> dict[str, Any]:
    """Capture the chosen formats with ffmpeg while one bot speaks the clip; assess each."""
    urls = {
        "opus_stream": space["opus_stream_url"],
        "adts_stream": space["stream_url"],
        "aac_hls": space["hls_url"],
    }
    if "aac_hls" in formats:
        await wait_for_segments(space["hls_url"].replace("index.m3u8", "audio.m3u8"))
    seconds = CONNECT_ALLOWANCE_S + LEAD_S + clip.duration_s
    captures = {}
    for name in formats:
        margin = HLS_MARGIN_S if name == "aac_hls" else PROGRESSIVE_MARGIN_S
        out = folder / f"{space['id']}-{sender}-{name}.wav"
        captures[name] = (audio_check.capture(urls[name], seconds + margin, out), out)
    lead = np.zeros(int(LEAD_S * SAMPLE_RATE_HZ), dtype=np.float32)
    source = np.concatenate([lead, clip.pcm])
    if sender == "browser_like":
        packets = encode_opus(source, bitrate_bps=BROWSER_BITRATE_BPS, options=BROWSER_OPTIONS)
        track: Any = OpusPacketTrack(packets, is_looped=False)
    else:
        track = TimedPcmTrack(source, then_silence_s=STOCK_TAIL_S)
    async with httpx.AsyncClient() as client:
        bot = await join(client, space["speaker_invite_url"], track, name=sender, tap=ReturnTap())
        await bot.wait_connected()
        await asyncio.wait_for(track.finished.wait(), timeout=clip.duration_s + 30)
        frames = track.packets_sent if sender == "browser_like" else len(track.handed_at)
        await bot.leave(client)
    results: dict[str, Any] = {
        "sender": sender,
        "frames_sent": frames,
        "sender_lateness": sender_lateness(track.lateness_s),
        "mixer_clock": metric_values(server, space["id"]),
    }
    for name, (process, out) in captures.items():
        try:
            _, stderr = await asyncio.to_thread(process.communicate, timeout=CAPTURE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        results[name] = assess(audio_check.decode(out), clip)
        if process.returncode != 0:
            results[name]["ffmpeg"] = stderr.decode(errors="replace")[-300:]
    return results


async def wait_for_segments(playlist_url: str, count: int = 3) -> None:
    """ffmpeg gives up on a live playlist that is not there yet: wait for a few segments."""
    deadline = asyncio.get_running_loop().time() + SEGMENTS_TIMEOUT_S
    async with httpx.AsyncClient() as client:
        while asyncio.get_running_loop().time() < deadline:
            response = await client.get(playlist_url)
            if response.status_code == 200 and response.text.count("#EXTINF") >= count:
                return
            await asyncio.sleep(0.25)
    raise RuntimeError(f"{playlist_url} listed fewer than {count} segments in time")


def replayed_drops(packets: int, rate: float, seed: int) -> int:
    """How many of the first `packets` the server's seeded dropper discards (same generator)."""
    dropper = PacketDropper(rate, seed)
    return sum(dropper.should_drop() for _ in range(packets))


async def run_server(
    clips: dict[str, Clip], *, drop_rate: float, seed: int, folder: Path
) -> dict[str, Any]:
    env = {"ROSTRA_INGEST_DROP_RATE": str(drop_rate), "ROSTRA_INGEST_DROP_SEED": str(seed)}
    results: dict[str, Any] = {}
    with running_server(env if drop_rate else None) as server:
        plan: list[tuple[str, Clip, tuple[str, ...]]]
        if drop_rate:
            plan = [("stock_aiortc", clips["speech"], ("opus_stream", "aac_hls"))]
        else:
            plan = [("stock_aiortc", clips["full"], ("opus_stream", "adts_stream", "aac_hls"))]
        plan.append(("browser_like", clips["speech"], ("opus_stream",)))
        for sender, clip, formats in plan:
            print(f"  {sender} sender, drop rate {drop_rate:.0%}: {clip.duration_s:.0f} s …")
            space = create_space(server, f"Quality bench {sender}")
            session = await send_session(
                space, clip, sender=sender, formats=formats, folder=folder, server=server
            )
            if drop_rate:
                dropped = replayed_drops(session["frames_sent"], drop_rate, seed)
                session["packets_dropped_by_server"] = dropped
                session["drop_pct"] = round(100 * dropped / max(1, session["frames_sent"]), 2)
            results[sender] = session
    return results


def codec_alone(clip: Clip, *, rate: float, seed: int) -> dict[str, Any]:
    """PESQ of each sender's own packets decoded offline by plain libopus, clean and with the
    drops the server makes (the same seeded generator, from the session's first packet)."""
    lead = np.zeros(int(LEAD_S * SAMPLE_RATE_HZ), dtype=np.float32)
    tail = np.zeros(int(STOCK_TAIL_S * SAMPLE_RATE_HZ), dtype=np.float32)
    senders = {
        "stock_aiortc": codec_reference.aiortc_packets(np.concatenate([lead, clip.pcm, tail])),
        "browser_like": codec_reference.browser_packets(
            np.concatenate([lead, clip.pcm]),
            bitrate_bps=BROWSER_BITRATE_BPS,
            options=BROWSER_OPTIONS,
        ),
    }
    figures: dict[str, Any] = {}
    for sender, packets in senders.items():
        dropped = codec_reference.drops(len(packets), rate=rate, seed=seed)
        clean = assess(codec_reference.decode(packets), clip)
        lossy = assess(codec_reference.decode(packets, dropped), clip)
        figures[sender] = {
            "pesq_wb": clean.get("pesq_wb"),
            "pesq_wb_with_the_same_drops": lossy.get("pesq_wb"),
            "packets": len(packets),
            "dropped": sum(dropped),
        }
    return figures


def verdicts(clean: dict[str, Any], lossy: dict[str, Any]) -> dict[str, Any]:
    stock = clean["stock_aiortc"]

    def within(value: float | None, bound: float) -> bool | None:
        return None if value is None else abs(value) <= bound

    opus_loss = lossy["stock_aiortc"]["opus_stream"].get("pesq_wb")
    return {
        "pesq_opus_ge_4_0": (stock["opus_stream"].get("pesq_wb") or 0) >= 4.0,
        "pesq_opus_3pct_loss_ge_3_0": (opus_loss or 0) >= 3.0,
        "pesq_opus_3pct_loss_browser_like_ge_3_0": (
            lossy["browser_like"]["opus_stream"].get("pesq_wb") or 0
        )
        >= 3.0,
        "sibilant_band_within_1_5_db": {
            name: within(stock[name].get("sibilant_band_db"), 1.5)
            for name in ("opus_stream", "adts_stream", "aac_hls")
        },
        "level_within_1_db": {
            name: within(stock[name].get("level_db"), 1.0)
            for name in ("opus_stream", "adts_stream", "aac_hls")
        },
    }


def print_summary(result: dict[str, Any]) -> None:
    clean, lossy, alone = result["clean"], result["loss"], result["codec_alone"]
    rows = [
        ("Opus stream, stock sender", clean["stock_aiortc"]["opus_stream"]),
        ("ADTS stream, stock sender", clean["stock_aiortc"]["adts_stream"]),
        ("AAC HLS, stock sender", clean["stock_aiortc"]["aac_hls"]),
        ("Opus stream, browser-like", clean["browser_like"]["opus_stream"]),
        ("Opus 3 % loss, stock sender", lossy["stock_aiortc"]["opus_stream"]),
        ("AAC HLS 3 % loss, stock", lossy["stock_aiortc"]["aac_hls"]),
        ("Opus 3 % loss, browser-like", lossy["browser_like"]["opus_stream"]),
    ]
    for sender, label in (("stock_aiortc", "stock"), ("browser_like", "browser")):
        figures = alone[sender]
        rows.append((f"{label} codec alone, offline", {"pesq_wb": figures["pesq_wb"]}))
        rows.append(
            ("  … with the same drops", {"pesq_wb": figures["pesq_wb_with_the_same_drops"]})
        )
    print(f"\n{'path':30} {'PESQ-WB':>8} {'4–16k dB':>9} {'level dB':>9}")
    for label, figures in rows:
        values = [figures.get(k) for k in ("pesq_wb", "sibilant_band_db", "level_db")]
        cells = [f"{v:>9.2f}" if isinstance(v, float | int) else f"{'—':>9}" for v in values]
        print(f"{label:30} {''.join(cells)}  {figures.get('error', '')}")
    for sender in ("stock_aiortc", "browser_like"):
        session = lossy[sender]
        print(
            f"  {sender}: the server dropped {session['packets_dropped_by_server']} of "
            f"{session['frames_sent']} packets ({session['drop_pct']} %)"
        )


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    speech = synthesize(SENTENCES_A, voice="en")
    sibilant = with_sibilants(synthesize(SENTENCES_B, voice="en-us"), seed=args.seed)
    clips = {
        "full": Clip((("speech", speech), ("speech_with_sibilants", sibilant))),
        "speech": Clip((("speech", speech),)),
    }
    with TemporaryDirectory(prefix="rostra-quality-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        clean = await run_server(clips, drop_rate=0.0, seed=args.seed, folder=folder)
        lossy = await run_server(clips, drop_rate=args.loss, seed=args.seed, folder=folder)
    return {
        "codec_alone": codec_alone(clips["speech"], rate=args.loss, seed=args.seed),
        "source": {
            "speech_s": round(speech.size / SAMPLE_RATE_HZ, 2),
            "speech_with_sibilants_s": round(sibilant.size / SAMPLE_RATE_HZ, 2),
            "speech": "espeak-ng, 5 Harvard sentences, resampled to 48 kHz, peak -6 dBFS",
            "sibilants": "4–16 kHz band-passed noise bursts (60–140 ms, Hann), 12 dB below the "
            "speech RMS, mixed into another 5 sentences",
            "senders": {
                "stock_aiortc": "TimedPcmTrack through aiortc's encoder (Opus 96 kbit/s, "
                "stereo L=R, application voip, no FEC), as `rostra speak` sends",
                "browser_like": f"pre-encoded libopus {BROWSER_BITRATE_BPS // 1000} kbit/s mono, "
                f"options {BROWSER_OPTIONS}",
            },
        },
        "drop_rate": args.loss,
        "drop_seed": args.seed,
        "clean": clean,
        "loss": lossy,
        "targets": TARGETS,
        "verdicts": verdicts(clean, lossy),
        "method": "ffmpeg decodes each listening URL to 48 kHz mono; the clip is found by "
        "cross-correlation (100–7000 Hz); PESQ wideband on 16 kHz resamples of the speech part; "
        "band energies from the whole part's spectrum, received minus source, in dB",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=float, default=0.03, help="drop rate of the lossy run")
    parser.add_argument("--seed", type=int, default=11, help="seed of the drops and the bursts")
    parser.add_argument("--keep", type=Path, help="keep the listeners' captures (WAV) here")
    parser.add_argument(
        "--same-priority", action="store_true", help="do not run the clients ahead of the server"
    )
    args = parser.parse_args()
    niceness = prioritize_clients(not args.same_priority)
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print("quality bench: PESQ-WB, sibilant band and level through the whole path")
    result = asyncio.run(measure(args))
    result["load_average_at_start"] = load_at_start
    result["niceness"] = niceness
    print_summary(result)
    path = write_results(NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
