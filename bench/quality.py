"""Audio quality as a listener hears it: speaker → WHIP → jitter buffer → leveller → mixer →
program encoders → listener decode, for each sender × listening path × packet loss.

Senders, one at a time:
- `chromium`: real headless Chromium (Debian's) on the speak page, its fake microphone playing
  the clip in a loop, with the page's default microphone constraints (echo cancellation, noise
  suppression, automatic gain: what a guest gets);
- `chromium_studio`: the same, with the page's studio mode checked (no echo cancellation, noise
  suppression or automatic gain: a guest on headphones);
- `chromium_like`: an aiortc bot sending libopus packets encoded as Chromium's WebRTC encodes with
  Rostra's answer (mono, full band, the server's bitrate, constrained VBR, application voip,
  in-band FEC allowed, no DTX)
  on a clean network (expected loss 0 %);
- `rostra_speak`: aiortc's stock encoder, as `rostra speak` sends (Opus 96 kbit/s stereo L=R);
- `chromium_like_told` (lossy runs, full mode): the same bot with its expected loss set to the
  server's drop rate, as Chromium's encoder sets it from the loss Rostra reports.

Paths: the Opus stream (`stream.opus`), Opus HLS (`opus.m3u8`, when the server has it), AAC HLS
(`audio.m3u8`) and ADTS (`stream.aac`), each decoded by ffmpeg as a listener's player would.

Loss: the server's seeded `PacketDropper` (ROSTRA_INGEST_DROP_RATE) discards that share of each
speaker's RTP packets; the bench prints the share actually dropped, from the origin's
`rostra_ingest_packets{fate="test_dropped"}` against the packets that reached the jitter buffer.
What the loss figures mean: the dropper discards packets before aiortc counts them, as a network
would, so the RTCP receiver reports Rostra sends carry the loss. Chromium's WebRTC feeds that
reported loss fraction to libopus as its expected packet loss, and libopus codes in-band FEC
(SILK LBRR) only when it is above 0 % (from 64 kbit/s with 0 % it stays in CELT-only mode, which
carries no FEC); so Chromium adds FEC a few seconds into a lossy session, once reports arrive,
which the origin's `rostra_speaker_fec_packets` shows. The bots cannot adapt (their packets are
encoded beforehand): `chromium_like` at a drop rate is a sender that ignores the reports
(concealment alone), `chromium_like_told` one that has adapted from the first packet (FEC).
Uniform random loss, seeded; real loss comes in bursts, which FEC (one packet back) covers less.

Per cell: PESQ-WB (ITU-T P.862.2) of clean speech, the 4–16 kHz (sibilant) band of speech with
noise bursts (dB against the source, relative to the 100–4000 Hz band's change), the level (dB
against the source) and the integrated loudness (LUFS, BS.1770). Beside each, the codec alone:
the same source through the sender's encoder settings (with the same seeded drops) and the path's
program encoder (FFmpeg's libopus or native AAC at Rostra's settings), decoded offline, no network
and no browser audio processing: the difference is Rostra's (and the browser's) share.
Also, offline: the Chromium-like encoder at each bitrate the server may ask speakers for
(`--speaker-bitrate-kbps` sets the one this run's server asks for), and FFmpeg's native AAC at 96
and 128 kbit/s alone, with the cost per listener-hour.

Run from the repository root:  .venv/bin/python bench/quality.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import wave
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import numpy as np

import codec_reference
from assessment import Clip, assess
from bots import (
    CHROMIUM_LIKE_BITRATE_BPS,
    OpusPacketTrack,
    ReturnTap,
    TimedPcmTrack,
    chromium_like_options,
    encode_opus,
    join,
    sender_lateness,
)
from harness import (
    CHROMIUM,
    Server,
    audio_check,
    create_space,
    metric_values,
    metrics_text,
    prioritize_clients,
    running_server,
    wait_for_segments,
    write_results,
)
from rostra.media.leveller import Leveller
from rostra.media.loudness import Limiter
from speech import SAMPLE_RATE_HZ, SENTENCES_A, SENTENCES_B, synthesize, with_sibilants

NAME = "quality"
LEAD_S = 1.5
TAIL_S = 1.5
CONNECT_ALLOWANCE_S = 4.0
BROWSER_ALLOWANCE_S = 10.0  # launch, page load, join, ICE and DTLS
PROGRESSIVE_MARGIN_S = 2.0
HLS_MARGIN_S = 8.0  # ffmpeg starts three segments behind the live edge, then follows it
CAPTURE_TIMEOUT_S = 120.0
SEGMENTS_TIMEOUT_S = 15.0
JOIN_TIMEOUT_MS = 20_000
HTTP_TIMEOUT_S = 15.0
CHROMIUM_DEFAULT_BITRATE_BPS = 32_000  # WebRTC's Opus default for mono, without maxaveragebitrate
PATHS = {
    "opus_stream": "stream.opus",
    "opus_hls": "opus.m3u8",
    "aac_hls": "audio.m3u8",
    "adts_stream": "stream.aac",
}
PROGRAM_OF_PATH = {
    "opus_stream": "opus",
    "opus_hls": "opus",
    "aac_hls": "aac",
    "adts_stream": "aac",
}
OPUS_PATHS = ("opus_stream", "opus_hls")
LOSSES = (0.0, 0.03, 0.10)
CHROMIUM_SENDERS = ("chromium", "chromium_studio")
TOLD_SENDERS = (*CHROMIUM_SENDERS, "chromium_like_told")
# the full matrix: studio mode and the told bot where they say something (clean / lossy)
FULL_PLAN: dict[float, tuple[str, ...]] = {
    0.0: ("chromium", "chromium_studio", "chromium_like", "rostra_speak"),
    0.03: ("chromium", "chromium_studio", "chromium_like", "chromium_like_told", "rostra_speak"),
    0.10: ("chromium", "chromium_like", "chromium_like_told", "rostra_speak"),
}
QUICK_PLAN: dict[float, tuple[str, ...]] = {0.0: ("chromium",), 0.03: ("chromium",)}
AAC_BITRATES_BPS = (96_000, 128_000)
# the bitrates a server may ask speakers for, swept offline with the Chromium-like encoder
SPEAKER_BITRATES_KBPS = (32, 40, 48, 56, 64, 80, 96, 128)
SWEEP_LOSS = 0.03
# 128 kbit/s is worth its cost only for an audible gain: a PESQ-WB step or the sibilants kept
AAC_WORTH_PESQ = 0.1
AAC_WORTH_SIBILANT_DB = 0.5
TARGETS = {
    "chromium_pesq_wb_opus_paths_clean": 4.0,
    "chromium_pesq_wb_opus_paths_3pct": 3.0,
    "chromium_sibilant_band_abs_db_clean": 1.5,
}
# Every RTCPeerConnection the page makes, so the bench can read what Chromium sent (getStats).
PEER_CONNECTION_SPY = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__benchPeerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__benchPeerConnections.push(this); }
  };
})();
"""
SENDER_STATS = """
async () => {
  const found = [];
  for (const pc of window.__benchPeerConnections || []) {
    const stats = await pc.getStats();
    const codecs = {};
    stats.forEach((s) => { if (s.type === "codec") codecs[s.id] = s; });
    stats.forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "audio") {
        const codec = codecs[s.codecId] || {};
        found.push({
          packets_sent: s.packetsSent, payload_bytes_sent: s.bytesSent,
          mime_type: codec.mimeType, sdp_fmtp_line: codec.sdpFmtpLine,
          target_bitrate: s.targetBitrate,
        });
      }
      if (s.type === "remote-inbound-rtp" && s.kind === "audio") {
        found.push({
          reported_fraction_lost: s.fractionLost, reported_packets_lost: s.packetsLost,
        });
      }
    });
    const answer = (pc.remoteDescription && pc.remoteDescription.sdp) || "";
    found.push({ answer_fmtp: answer.split(/\\r?\\n/).filter((l) => l.startsWith("a=fmtp")) });
  }
  return found;
}
"""


def source_of(clip: Clip) -> np.ndarray:
    """What a sender sends: lead-in silence, the clip, a short silence."""
    lead = np.zeros(int(LEAD_S * SAMPLE_RATE_HZ), dtype=np.float32)
    tail = np.zeros(int(TAIL_S * SAMPLE_RATE_HZ), dtype=np.float32)
    return np.concatenate([lead, clip.pcm, tail])


def path_urls(server: Server, space: dict[str, Any]) -> dict[str, str]:
    """The listening URLs the server has now (Opus HLS only where it answers)."""
    base = f"{server.url}/live/{space['id']}/"
    urls = {name: base + file for name, file in PATHS.items()}
    response = httpx.get(urls["opus_hls"], timeout=HTTP_TIMEOUT_S)
    if response.status_code == 404:
        del urls["opus_hls"]
    return urls


async def start_captures(
    urls: dict[str, str], seconds: float, folder: Path, tag: str
) -> dict[str, tuple[subprocess.Popen[bytes], Path]]:
    for name, url in urls.items():
        if name.endswith("_hls"):
            await wait_for_segments(url, timeout_s=SEGMENTS_TIMEOUT_S)
    captures = {}
    for name, url in urls.items():
        margin = HLS_MARGIN_S if name.endswith("_hls") else PROGRESSIVE_MARGIN_S
        out = folder / f"{tag}-{name}.wav"
        captures[name] = (audio_check.capture(url, seconds + margin, out), out)
    return captures


async def finish_captures(
    captures: dict[str, tuple[subprocess.Popen[bytes], Path]], clip: Clip
) -> dict[str, Any]:
    results: dict[str, Any] = {}
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


async def bot_session(
    space: dict[str, Any],
    urls: dict[str, str],
    clip: Clip,
    *,
    sender: str,
    drop_rate: float,
    bitrate_bps: int,
    folder: Path,
) -> dict[str, Any]:
    """One bot speaks the clip once while ffmpeg listens on every path."""
    source = source_of(clip)
    track: Any
    if sender == "rostra_speak":
        track = TimedPcmTrack(source)
    else:
        packets = sender_packets(sender, source, {}, drop_rate=drop_rate, bitrate_bps=bitrate_bps)
        track = OpusPacketTrack(packets, is_looped=False)
    seconds = CONNECT_ALLOWANCE_S + source.size / SAMPLE_RATE_HZ
    captures = await start_captures(urls, seconds, folder, f"{space['id']}-{sender}")
    async with httpx.AsyncClient() as client:
        bot = await join(client, space["speaker_invite_url"], track, name=sender, tap=ReturnTap())
        await bot.wait_connected()
        await asyncio.wait_for(track.finished.wait(), timeout=source.size / SAMPLE_RATE_HZ + 30)
        await bot.leave(client)
    paths = await finish_captures(captures, clip)
    return {"paths": paths, "sender_lateness": sender_lateness(track.lateness_s)}


def microphone_file(clip: Clip, out: Path) -> float:
    """The fake microphone's WAV: the source, padded to whole 10 ms buffers so that Chromium
    loops it with an exact period; returns that period in seconds."""
    from tests.web.conftest import LOOP_BLOCK_SAMPLES  # on the path once harness is imported

    source = source_of(clip)
    source = np.concatenate([source, np.zeros((-source.size) % LOOP_BLOCK_SAMPLES, np.float32)])
    with wave.open(str(out), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE_HZ)
        handle.writeframes((np.clip(source, -1, 1) * 32_767).astype("<i2").tobytes())
    return source.size / SAMPLE_RATE_HZ


async def chromium_session(
    space: dict[str, Any], urls: dict[str, str], clip: Clip, *, is_studio: bool, folder: Path
) -> dict[str, Any]:
    """Chromium joins the stage on the speak page; its microphone loops the clip, so ffmpeg
    listens for a loop period plus the longest part: every part is heard whole at least once."""
    from playwright.async_api import async_playwright
    from tests.web.conftest import chromium_args

    period_s = microphone_file(clip, folder / "microphone.wav")
    longest_s = max(part.size for _, part in clip.parts) / SAMPLE_RATE_HZ
    seconds = BROWSER_ALLOWANCE_S + period_s + longest_s
    captures = await start_captures(urls, seconds, folder, f"{space['id']}-chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=chromium_args(folder / "microphone.wav"),
            timeout=30_000,
        )
        try:
            page = await browser.new_page()
            await page.add_init_script(PEER_CONNECTION_SPY)
            await page.goto(space["speaker_invite_url"])
            await page.fill("#name", "Chromium")
            if is_studio:
                await page.check("#studio")
            await page.click("#join")
            await page.locator("#panel-live").wait_for(state="visible", timeout=JOIN_TIMEOUT_MS)
            paths = await finish_captures(captures, clip)
            sent = await page.evaluate(SENDER_STATS)
        finally:
            await browser.close()
    return {"paths": paths, "chromium_sent": summarize_sent(sent)}


def received_figures(server: Server, space_id: str) -> dict[str, Any]:
    """What the speaker sent, as the origin received it: payload bitrate and FEC share."""
    values = metric_values(server, space_id)
    packets = values.get("rostra_speaker_received_packets", 0.0)
    payload = values.get("rostra_speaker_received_bytes", 0.0)
    fec = values.get("rostra_speaker_fec_packets", 0.0)
    if not packets:
        return {}
    return {
        "packets": int(packets),
        "payload_kbps": round(payload * 8 / (packets * 0.020) / 1000, 1),
        "fec_packets_pct": round(100 * fec / packets, 1),
    }


def summarize_sent(found: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for entry in found:
        summary.update({k: v for k, v in entry.items() if v is not None})
    packets, payload = summary.get("packets_sent"), summary.get("payload_bytes_sent")
    if packets and payload:
        summary["payload_kbps"] = round(payload * 8 / (packets * 0.020) / 1000, 1)
    return summary


def chromium_bitrate(session: dict[str, Any]) -> int:
    """The bitrate Chromium was asked for (maxaveragebitrate in the answer), else its default."""
    sent = session.get("chromium_sent", {})
    lines = " ".join([sent.get("sdp_fmtp_line", ""), *sent.get("answer_fmtp", [])])
    match = re.search(r"maxaveragebitrate=(\d+)", lines)
    return int(match.group(1)) if match else CHROMIUM_DEFAULT_BITRATE_BPS


def ingest_counts(server: Server, space_id: str) -> dict[str, int]:
    """The origin's count of the space's speaker packets, by fate."""
    text = metrics_text(server)
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("rostra_ingest_packets") or f'space="{space_id}"' not in line:
            continue
        fate = re.search(r'fate="(\w+)"', line)
        if fate:
            counts[fate.group(1)] = int(float(line.rsplit(" ", 1)[1]))
    return counts


def loss_figures(counts: dict[str, int]) -> dict[str, Any]:
    dropped, arrived = counts.get("test_dropped", 0), counts.get("received", 0)
    return {
        "packets_arrived": arrived + dropped,
        "packets_dropped": dropped,
        "dropped_pct": round(100 * dropped / max(1, arrived + dropped), 2),
        "ingest": counts,
    }


async def run_loss(
    clip: Clip,
    senders: tuple[str, ...],
    *,
    drop_rate: float,
    seed: int,
    bitrate_bps: int,
    folder: Path,
) -> dict[str, Any]:
    """One server at this drop rate, asking speakers for `bitrate_bps`; each sender in turn, in
    its own space."""
    env = {"ROSTRA_SPEAKER_BITRATE_KBPS": str(bitrate_bps // 1000)}
    if drop_rate:
        env |= {"ROSTRA_INGEST_DROP_RATE": str(drop_rate), "ROSTRA_INGEST_DROP_SEED": str(seed)}
    results: dict[str, Any] = {}
    with running_server(env) as server:
        for sender in senders:
            print(f"  {sender}, drop rate {drop_rate:.0%} …", flush=True)
            space = create_space(server, f"Quality bench {sender}")
            urls = path_urls(server, space)
            if sender.startswith("chromium") and not sender.startswith("chromium_like"):
                is_studio = sender == "chromium_studio"
                session = await chromium_session(
                    space, urls, clip, is_studio=is_studio, folder=folder
                )
            else:
                session = await bot_session(
                    space,
                    urls,
                    clip,
                    sender=sender,
                    drop_rate=drop_rate,
                    bitrate_bps=bitrate_bps,
                    folder=folder,
                )
            session["loss"] = loss_figures(ingest_counts(server, space["id"]))
            session["origin_received"] = received_figures(server, space["id"])
            results[sender] = session
    return results


def sender_packets(
    sender: str,
    source: np.ndarray,
    session: dict[str, Any],
    *,
    drop_rate: float,
    bitrate_bps: int,
) -> list[bytes]:
    """The Opus packets `sender` makes of `source` (for Chromium: as its encoder was set)."""
    if sender == "rostra_speak":
        return codec_reference.aiortc_packets(source)
    is_browser = "chromium_sent" in session
    bitrate = chromium_bitrate(session) if is_browser else bitrate_bps
    # Chromium sets its expected loss from the receiver reports within seconds: as if told
    told = round(100 * drop_rate) if sender in TOLD_SENDERS else 0
    return encode_opus(source, bitrate_bps=bitrate, options=chromium_like_options(told))


def codec_alone(
    clip: Clip,
    sender: str,
    session: dict[str, Any],
    *,
    drop_rate: float,
    seed: int,
    bitrate_bps: int,
) -> dict[str, Any]:
    """Per program ("opus", "aac"): the sender's packets (with the same seeded drops), decoded,
    through the program encoder and decoded again, offline."""
    packets = sender_packets(
        sender, source_of(clip), session, drop_rate=drop_rate, bitrate_bps=bitrate_bps
    )
    dropped = codec_reference.drops(len(packets), rate=drop_rate, seed=seed)
    spoken = codec_reference.decode(packets, dropped if drop_rate else None)
    figures: dict[str, Any] = {"sender_codec": assess(spoken, clip)}
    for program in ("opus", "aac"):
        figures[program] = assess(codec_reference.program_roundtrip(spoken, program), clip)
    # Rostra's mixer (leveller, limiter) between the two codecs, still without network
    mixed = codec_reference.through_mixer(spoken)
    figures["mixer"] = assess(mixed, clip)
    figures["mixer_opus"] = assess(codec_reference.program_roundtrip(mixed, "opus"), clip)
    return figures


def speaker_bitrate_sweep(clip: Clip, *, seed: int) -> dict[str, Any]:
    """The Chromium-like encoder alone at each bitrate the server may ask for, offline: what it
    sends (kbit/s of Opus payload) and what a listener of the program's Opus path gets, clean
    and at 3 % loss with the encoder told of it (so with in-band FEC). libopus keeps a mono
    voice in hybrid mode (SILK to 8 kHz, CELT above) below about 64 kbit/s and goes CELT-only
    from there, which is why the scores are not monotonic."""
    source = source_of(clip)
    seconds = source.size / SAMPLE_RATE_HZ
    sweep: dict[str, Any] = {}
    for kbps in SPEAKER_BITRATES_KBPS:
        row: dict[str, Any] = {}
        for rate in (0.0, SWEEP_LOSS):
            told = round(100 * rate)
            packets = encode_opus(
                source, bitrate_bps=kbps * 1000, options=chromium_like_options(told)
            )
            dropped = codec_reference.drops(len(packets), rate=rate, seed=seed) if rate else None
            spoken = codec_reference.decode(packets, dropped)
            heard = codec_reference.program_roundtrip(codec_reference.through_mixer(spoken), "opus")
            figures = assess(heard, clip)
            row[loss_label(rate)] = {
                "sent_kbps": round(sum(map(len, packets)) * 8 / seconds / 1000, 1),
                "pesq_wb": figures.get("pesq_wb"),
                "sibilant_band_db": figures.get("sibilant_band_db"),
            }
        sweep[str(kbps)] = row
    return sweep


def aac_choice(clip: Clip, *, bitrate_bps: int) -> dict[str, Any]:
    """FFmpeg's native AAC-LC alone at each candidate bitrate, from the source and after the
    chromium-like sender's Opus; the cost is the ADTS stream's bytes per listener-hour."""
    source = source_of(clip)
    packets = encode_opus(source, bitrate_bps=bitrate_bps, options=chromium_like_options())
    spoken = codec_reference.decode(packets)
    figures: dict[str, Any] = {}
    for bitrate in AAC_BITRATES_BPS:
        heard, size = codec_reference.through_ffmpeg(source, codec="aac", bitrate_bps=bitrate)
        tandem, _ = codec_reference.through_ffmpeg(spoken, codec="aac", bitrate_bps=bitrate)
        figures[str(bitrate)] = {
            "from_source": assess(heard, clip),
            "after_chromium_like_opus": assess(tandem, clip),
            "megabytes_per_listener_hour": round(
                size / (source.size / SAMPLE_RATE_HZ) * 3600 / 1e6, 1
            ),
        }
    low, high = (figures[str(b)]["from_source"] for b in AAC_BITRATES_BPS)
    gain = (high.get("pesq_wb") or 0) - (low.get("pesq_wb") or 0)
    kept = abs(low.get("sibilant_band_db") or 0) - abs(high.get("sibilant_band_db") or 0)
    pick = (
        AAC_BITRATES_BPS[1]
        if gain >= AAC_WORTH_PESQ or kept >= AAC_WORTH_SIBILANT_DB
        else (AAC_BITRATES_BPS[0])
    )
    figures["recommendation"] = (
        f"AAC at {pick // 1000} kbit/s: 128 over 96 gains PESQ-WB {gain:+.2f} and "
        f"{kept:+.2f} dB of sibilant band (worth it from +{AAC_WORTH_PESQ} or "
        f"+{AAC_WORTH_SIBILANT_DB} dB), for "
        f"{figures[str(AAC_BITRATES_BPS[1])]['megabytes_per_listener_hour']} vs "
        f"{figures[str(AAC_BITRATES_BPS[0])]['megabytes_per_listener_hour']} MB per listener-hour"
    )
    return figures


def stage_split(clip: Clip, *, bitrate_bps: int) -> dict[str, Any]:
    """Where the program stage loses quality, offline, on the chromium-like sender's decoded
    Opus: its leveller alone, then its look-ahead true-peak limiter, then the mixer as built,
    then the program Opus encoder."""
    packets = encode_opus(source_of(clip), bitrate_bps=bitrate_bps, options=chromium_like_options())
    spoken = codec_reference.decode(packets)
    mixed = codec_reference.through_mixer(spoken)
    stages = {
        "sender_codec": spoken,
        "leveller": codec_reference.through_stages(spoken, [Leveller()]),
        "leveller_limiter": codec_reference.through_stages(spoken, [Leveller(), Limiter()]),
        "mixer": mixed,
        "mixer_program_opus": codec_reference.program_roundtrip(mixed, "opus"),
    }
    return {name: assess(pcm, clip) for name, pcm in stages.items()}


def loss_label(rate: float) -> str:
    return "clean" if rate == 0 else f"loss_{round(rate * 100)}pct"


def verdicts(matrix: dict[str, Any]) -> dict[str, Any]:
    """The Chromium speakers' targets, cell by cell (cells not measured are left out)."""
    found: dict[str, Any] = {}
    for sender in CHROMIUM_SENDERS:
        clean = matrix.get("clean", {}).get(sender, {}).get("paths", {})
        lossy = matrix.get("loss_3pct", {}).get(sender, {}).get("paths", {})
        for path in OPUS_PATHS:
            if path in clean:
                score = clean[path].get("pesq_wb")
                found[f"{sender}_clean_{path}_pesq_wb_ge_4_0"] = score is not None and score >= 4.0
            if path in lossy:
                score = lossy[path].get("pesq_wb")
                found[f"{sender}_loss_3pct_{path}_pesq_wb_ge_3_0"] = (
                    score is not None and score >= 3.0
                )
        for path, figures in clean.items():
            band = figures.get("sibilant_band_db")
            found[f"{sender}_clean_{path}_sibilant_within_1_5_db"] = (
                band is not None and abs(band) <= 1.5
            )
    return found


def print_table(matrix: dict[str, Any]) -> None:
    columns = ("pesq_wb", "sibilant_band_db", "level_db", "loudness_lufs")
    print(
        f"\n{'loss':9} {'sender':18} {'path':12} {'PESQ-WB':>8} {'alone':>6} "
        f"{'sib dB':>7} {'alone':>6} {'level':>6} {'LUFS':>6}  dropped, sent (origin)"
    )
    for label, senders in matrix.items():
        for sender, session in senders.items():
            drop = session["loss"]
            sent = session.get("origin_received", {})
            dropped = (
                f"{drop['packets_dropped']}/{drop['packets_arrived']} ({drop['dropped_pct']} %)"
                f" {sent.get('payload_kbps', '—')}k FEC {sent.get('fec_packets_pct', '—')} %"
            )
            for path, figures in session["paths"].items():
                alone = session["codec_alone"][PROGRAM_OF_PATH[path]]
                values = [figures.get(k) for k in columns]
                cells = [
                    cell(values[0], 8),
                    cell(alone.get("pesq_wb"), 6),
                    cell(values[1], 7),
                    cell(alone.get("sibilant_band_db"), 6),
                    cell(values[2], 6),
                    cell(values[3], 6),
                ]
                error = figures.get("error", "")
                print(f"{label:9} {sender:18} {path:12} {' '.join(cells)}  {dropped} {error}")


def cell(value: Any, width: int) -> str:
    return f"{value:>{width}.2f}" if isinstance(value, float | int) else f"{'—':>{width}}"


def print_speaker_sweep(result: dict[str, Any]) -> None:
    lossy = loss_label(SWEEP_LOSS)
    print(
        "\nSpeaker bitrate asked for (Chromium-like encoder, program Opus path, offline; "
        f"* = this run's): sent kbit/s, PESQ-WB, sibilant dB — clean | {lossy} told"
    )
    for kbps, row in result["speaker_bitrates"].items():
        mark = "*" if int(kbps) == result["speaker_bitrate_kbps"] else " "
        cells = [
            f"{row[label]['sent_kbps']:6.1f} {cell(row[label]['pesq_wb'], 5)} "
            f"{cell(row[label]['sibilant_band_db'], 5)}"
            for label in ("clean", lossy)
        ]
        print(f"  {kbps:>4}{mark} {' | '.join(cells)}")


def print_summary(result: dict[str, Any]) -> None:
    print_table(result["matrix"])
    chromium = result["matrix"].get("clean", {}).get("chromium", {}).get("chromium_sent")
    if chromium:
        print(f"\nChromium sent: {chromium}")
    print_speaker_sweep(result)
    print("\nAAC alone (FFmpeg native):")
    for bitrate in AAC_BITRATES_BPS:
        figures = result["aac"][str(bitrate)]
        source, tandem = figures["from_source"], figures["after_chromium_like_opus"]
        print(
            f"  {bitrate // 1000} kbit/s: PESQ-WB {cell(source.get('pesq_wb'), 5)} "
            f"(after Opus {result['speaker_bitrate_kbps']}k: {cell(tandem.get('pesq_wb'), 5)}), "
            "sibilant band "
            f"{cell(source.get('sibilant_band_db'), 5)} dB, "
            f"{figures['megabytes_per_listener_hour']} MB per listener-hour"
        )
    print(f"  recommendation: {result['aac']['recommendation']}")
    print("\nProgram stages alone (chromium-like Opus decoded, offline):")
    for stage, figures in result["program_stages"].items():
        print(
            f"  {stage:20} PESQ-WB {cell(figures.get('pesq_wb'), 5)}, sibilant band "
            f"{cell(figures.get('sibilant_band_db'), 5)} dB, level "
            f"{cell(figures.get('level_db'), 5)} dB, {cell(figures.get('loudness_lufs'), 6)} LUFS"
        )
    print("\nChromium speaker targets:")
    for name, passed in result["verdicts"].items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    speech = synthesize(SENTENCES_A, voice="en")
    sibilant = with_sibilants(synthesize(SENTENCES_B, voice="en-us"), seed=args.seed)
    clip = Clip((("speech", speech), ("speech_with_sibilants", sibilant)))
    plan = dict(QUICK_PLAN if args.quick else FULL_PLAN)
    if args.losses:
        plan = {rate: plan.get(rate, FULL_PLAN[0.03]) for rate in args.losses}
    if args.senders:
        plan = {rate: tuple(args.senders) for rate in plan}
    bitrate = args.speaker_bitrate_kbps * 1000
    matrix: dict[str, Any] = {}
    with TemporaryDirectory(prefix="rostra-quality-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for rate, senders in plan.items():
            sessions = await run_loss(
                clip, senders, drop_rate=rate, seed=args.seed, bitrate_bps=bitrate, folder=folder
            )
            for sender, session in sessions.items():
                session["codec_alone"] = codec_alone(
                    clip, sender, session, drop_rate=rate, seed=args.seed, bitrate_bps=bitrate
                )
            matrix[loss_label(rate)] = sessions
    return {
        "mode": "quick" if args.quick else "full",
        "source": {
            "speech_s": round(speech.size / SAMPLE_RATE_HZ, 2),
            "speech_with_sibilants_s": round(sibilant.size / SAMPLE_RATE_HZ, 2),
            "speech": "espeak-ng, 5 Harvard sentences, resampled to 48 kHz, peak -6 dBFS",
            "sibilants": "4–16 kHz band-passed noise bursts (60–140 ms, Hann), 12 dB below the "
            "speech RMS, mixed into another 5 sentences",
        },
        "drop_seed": args.seed,
        "matrix": matrix,
        "speaker_bitrate_kbps": args.speaker_bitrate_kbps,
        "speaker_bitrates": speaker_bitrate_sweep(clip, seed=args.seed),
        "aac": aac_choice(clip, bitrate_bps=bitrate),
        "program_stages": stage_split(clip, bitrate_bps=bitrate),
        "targets": TARGETS,
        "verdicts": verdicts(matrix),
        "method": "ffmpeg decodes each listening URL to 48 kHz mono; each part is found by "
        "cross-correlation and followed in half-second windows; PESQ wideband on 16 kHz "
        "resamples of the speech part; band energies from the part's spectrum, received minus "
        "source, the sibilant band relative to the 100–4000 Hz band; loudness by pyloudnorm",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="Chromium only, clean and 3 %% loss (~3 min)"
    )
    parser.add_argument(
        "--senders",
        type=lambda text: text.split(","),
        help="only these senders (comma-separated: chromium, chromium_studio, chromium_like, "
        "chromium_like_told, rostra_speak)",
    )
    parser.add_argument(
        "--losses",
        type=lambda text: [float(x) for x in text.split(",")],
        help="only these drop rates (comma-separated, e.g. 0,0.03)",
    )
    parser.add_argument("--seed", type=int, default=11, help="seed of the drops and the bursts")
    parser.add_argument(
        "--speaker-bitrate-kbps",
        type=int,
        default=CHROMIUM_LIKE_BITRATE_BPS // 1000,
        help="the Opus bitrate the server asks speakers for (default: the server's own)",
    )
    parser.add_argument("--keep", type=Path, help="keep the listeners' captures (WAV) here")
    parser.add_argument(
        "--same-priority", action="store_true", help="do not run the clients ahead of the server"
    )
    args = parser.parse_args()
    niceness = prioritize_clients(not args.same_priority)
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print("quality bench: each sender × path × loss, as a listener hears it")
    result = asyncio.run(measure(args))
    result["load_average_at_start"] = load_at_start
    result["niceness"] = niceness
    print_summary(result)
    path = write_results(NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
