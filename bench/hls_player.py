"""The live HLS as the listener page plays it: headless Chromium (Debian's, through Playwright)
runs hls.js with the page's own config (/static/player-config.js) in a few pages joining at
different moments, and an AudioWorklet on each <audio> element's output reports when each mark
is played, in the machine's wall clock.

The bench page is served by Playwright at a path of the Rostra server's origin, so hls.js, the
config module and the media all load from the server as the listener page loads them.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import CHROMIUM, ROOT
from marks import (
    CONFIRM_FRACTION,
    CONFIRM_S,
    MARK_FREQUENCIES_HZ,
    MARK_LEVEL,
    ONSET_FRACTION,
    REFRACTORY_S,
)

BENCH_PAGE_PATH = "/__bench/hls-latency.html"
PLAYER_CONFIG = ROOT / "src" / "rostra" / "web" / "static" / "player-config.js"
FALLBACK_CONFIG = {"liveSyncDurationCount": 2}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
LAUNCH_TIMEOUT_MS = 30_000
SEGMENT_S = 1.024

WORKLET_JS = """
class MarkDetector extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const p = options.processorOptions;
    this.threshold = p.threshold;
    this.neededRms = p.neededRms;
    this.frequencies = p.frequencies;
    this.refractory = Math.round(p.refractoryS * sampleRate);
    this.window = new Float32Array(Math.round(p.confirmS * sampleRate));
    this.filled = 0;
    this.onset = -1;
    this.quietUntil = 0;
  }
  toneOf() {
    let best = 0;
    let bestPower = -1;
    this.frequencies.forEach((f, tone) => {
      let re = 0;
      let im = 0;
      for (let n = 0; n < this.window.length; n++) {
        const phase = (2 * Math.PI * f * n) / sampleRate;
        re += this.window[n] * Math.cos(phase);
        im -= this.window[n] * Math.sin(phase);
      }
      const power = re * re + im * im;
      if (power > bestPower) {
        bestPower = power;
        best = tone;
      }
    });
    return best;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const index = currentFrame + i;
      const x = channel[i];
      if (this.onset >= 0) {
        this.window[this.filled++] = x;
        if (this.filled === this.window.length) {
          let sum = 0;
          for (const v of this.window) sum += v * v;
          if (Math.sqrt(sum / this.window.length) >= this.neededRms) {
            this.port.postMessage({ frame: this.onset, tone: this.toneOf() });
            this.quietUntil = this.onset + this.refractory;
          }
          this.onset = -1;
        }
      } else if (index >= this.quietUntil && Math.abs(x) > this.threshold) {
        this.onset = index;
        this.window[0] = x;
        this.filled = 1;
      }
    }
    return true;
  }
}
registerProcessor('mark-detector', MarkDetector);
"""

PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Rostra HLS latency bench</title></head>
<body>
<audio id="player"></audio>
<script src="/static/vendor/hls.min.js"></script>
<script type="module">
CONFIG_IMPORT
const WORKLET = WORKLET_SOURCE;
window.benchMarks = [];
window.benchErrors = [];
window.benchStalls = [];
const STALL_LOADS = 16;
const HLS_LOG_LINES = 600;
window.startBench = async (url, detector) => {
  const audio = document.getElementById('player');
  const context = new AudioContext({ latencyHint: 'interactive' });
  const moduleUrl = URL.createObjectURL(new Blob([WORKLET], { type: 'text/javascript' }));
  await context.audioWorklet.addModule(moduleUrl);
  const node = new AudioWorkletNode(context, 'mark-detector', { processorOptions: detector });
  context.createMediaElementSource(audio).connect(node);
  node.connect(context.destination);
  // hls.js's own log (its LL-Part loading ON/OFF decisions among them): the last lines, for stalls
  const logLines = [];
  const keepLine = (level) => (...args) => {
    logLines.push(`${Date.now()} ${level} ${args.map(String).join(' ').slice(0, 300)}`);
    if (logLines.length > HLS_LOG_LINES) logLines.shift();
  };
  const debug = { trace: keepLine('trace'), debug: keepLine('debug'), log: keepLine('log'),
    info: keepLine('info'), warn: keepLine('warn'), error: keepLine('error') };
  const hls = new Hls({ ...HLS_CONFIG, autoStartLoad: false, debug });
  window.benchRendition = '';
  window.benchHls = hls;
  window.benchJumps = [];
  keepNearLive(hls, Hls, (seconds) => { window.benchJumps.push(seconds); });
  node.port.onmessage = (event) => {
    const receivedMs = Date.now();
    const stamp = context.getOutputTimestamp();
    const frameS = event.data.frame / context.sampleRate;
    const playedMs = performance.timeOrigin + stamp.performanceTime
      + (frameS - stamp.contextTime) * 1000;
    window.benchMarks.push({
      tone: event.data.tone,
      played_ms: playedMs,
      received_ms: receivedMs,
      hls_latency_s: hls.latency,
      // where the buffer begins: moves on only when media is evicted (by the browser, since
      // the page's backBufferLength is Infinity)
      buffered_from_s: audio.buffered.length ? audio.buffered.start(0) : 0,
      current_s: audio.currentTime,
      buffered_ahead_s: audio.buffered.length
        ? audio.buffered.end(audio.buffered.length - 1) - audio.currentTime : 0,
      playback_rate: audio.playbackRate,
    });
  };
  hls.on(Hls.Events.ERROR, (_event, data) => {
    window.benchErrors.push(`${data.type}/${data.details}${data.fatal ? ' (fatal)' : ''}`);
  });
  startOnOpus(hls, Hls, (codec) => { window.benchRendition = codec; audio.play(); });
  // what led to each stall: the last loads (parts, segments, playlists: when asked, when
  // answered), where the buffer stood, and how late the page's main thread ran just before
  const loads = [];
  const noteLoad = (kind, name, stats) => {
    const loading = stats && stats.loading;
    const wall = (ms) => (ms ? Math.round(performance.timeOrigin + ms) : 0);
    loads.push({ kind, name, asked_ms: wall(loading && loading.start),
      answered_ms: wall(loading && loading.end), at_ms: Date.now() });
    if (loads.length > STALL_LOADS) loads.shift();
  };
  hls.on(Hls.Events.FRAG_LOADED, (_event, data) => {
    const part = data.part ? `.${data.part.index}` : '';
    noteLoad('media', `${data.frag.sn}${part}`, (data.part || data.frag).stats);
  });
  // a part or segment asked for (its load may never finish: aborted, or still waiting)
  hls.on(Hls.Events.FRAG_LOADING, (_event, data) => {
    const part = data.part ? `.${data.part.index}` : '';
    loads.push({ kind: 'asking', name: `${data.frag.sn}${part}`, asked_ms: Date.now(),
      answered_ms: 0, at_ms: Date.now() });
    if (loads.length > STALL_LOADS) loads.shift();
  });
  hls.on(Hls.Events.LEVEL_LOADED, (_event, data) => {
    const d = data.details || {};
    noteLoad('playlist', `${d.lastPartSn ?? d.endSN}.${d.lastPartIndex ?? ''}`, data.stats);
  });
  const lags = [];
  let tickAt = performance.now();
  setInterval(() => {
    const now = performance.now();
    const atMs = Math.round(performance.timeOrigin + now);
    lags.push({ at_ms: atMs, late_ms: Math.round(now - tickAt - 100) });
    if (lags.length > 30) lags.shift();
    tickAt = now;
  }, 100);
  window.benchStallDetails = [];
  audio.addEventListener('waiting', () => {
    const now = Date.now();
    window.benchStalls.push(now);
    const ranges = [];
    for (let i = 0; i < audio.buffered.length; i += 1) {
      ranges.push([audio.buffered.start(i), audio.buffered.end(i)]);
    }
    const recent = lags.filter((lag) => now - lag.at_ms < 3000).map((lag) => lag.late_ms);
    window.benchStallDetails.push({ at_ms: now, current_s: audio.currentTime, buffered: ranges,
      hls_latency_s: hls.latency, loads: loads.slice(),
      main_thread_late_ms: Math.max(0, ...recent), hls_log: [] });
    // hls.js's log from 4 s before the stall to 4 s after it
    const detail = window.benchStallDetails[window.benchStallDetails.length - 1];
    setTimeout(() => {
      detail.hls_log = logLines.filter((line) => Math.abs(Number(line.split(' ')[0]) - now) < 4000);
    }, 4000);
  });
  await context.resume();
  hls.loadSource(url);
  hls.attachMedia(audio);
  return {
    // as JSON allows it: Infinity (backBufferLength) as the string "Infinity"
    config: JSON.parse(JSON.stringify(HLS_CONFIG,
      (_key, value) => (value === Infinity ? 'Infinity' : value))),
    hls_version: Hls.version,
    sample_rate_hz: context.sampleRate,
    base_latency_s: context.baseLatency,
    output_latency_s: context.outputLatency,
  };
};
</script>
</body></html>
"""

CONFIG_MODULE_IMPORT = (
    "import { HLS_CONFIG, keepNearLive, startOnOpus } from '/static/player-config.js';"
)
EXPORT_RE = re.compile(r"export\s+const\s+HLS_CONFIG\s*=")


def page_config_source() -> tuple[str, str]:
    """The line that gives the page its HLS_CONFIG, and where the config came from."""
    if PLAYER_CONFIG.is_file() and EXPORT_RE.search(PLAYER_CONFIG.read_text()):
        return CONFIG_MODULE_IMPORT, "/static/player-config.js"
    fallback = f"const HLS_CONFIG = {json.dumps(FALLBACK_CONFIG)};"
    return fallback, f"fallback {json.dumps(FALLBACK_CONFIG)} (player-config.js has no HLS_CONFIG)"


@dataclass(frozen=True, slots=True)
class Heard:
    """What one bench page heard: its marks, its stalls (wall-clock s) and hls.js's errors."""

    marks: list[dict[str, float]]
    stalls_at: list[float]
    errors: list[str]
    latency_when_playing_s: float
    # jumps to the live sync position the page's keepNearLive made, in seconds skipped
    jumps_s: list[float] = field(default_factory=list)
    # the level the page's startOnOpus chose: 'opus', or 'first' (the AAC one) where MSE has no Opus
    rendition: str = ""
    # per stall: the last loads (wall-clock ms asked / answered), the buffer, the main thread's lag
    stall_details: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class HlsPlayer:
    """Bench pages in one headless Chromium, each a listener joining the live HLS a fraction of
    a segment after the previous one, since where a player joins sets its latency."""

    base_url: str
    players: int = 3
    # Chromium's SourceBuffer quota for audio (its --mse-audio-buffer-size-limit-mb; 0: its own
    # 12 MiB): a small one makes the browser evict played media within a short run
    mse_audio_limit_mb: int = 0
    config_source: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    _playwright: Any = None
    _browser: Any = None
    _pages: list[Any] = field(default_factory=list)
    _latencies: list[float] = field(default_factory=list)

    def _chromium_args(self) -> list[str]:
        if self.mse_audio_limit_mb <= 0:
            return CHROMIUM_ARGS
        return [*CHROMIUM_ARGS, f"--mse-audio-buffer-size-limit-mb={self.mse_audio_limit_mb}"]

    async def start(self, hls_url: str) -> None:
        from playwright.async_api import async_playwright

        config_line, self.config_source = page_config_source()
        html = PAGE_HTML.replace("CONFIG_IMPORT", config_line).replace(
            "WORKLET_SOURCE", json.dumps(WORKLET_JS)
        )
        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=self._chromium_args(), timeout=LAUNCH_TIMEOUT_MS
        )
        page_url = self.base_url + BENCH_PAGE_PATH

        async def serve_page(route: Any) -> None:
            await route.fulfill(body=html, content_type="text/html; charset=utf-8")

        for index in range(self.players):
            if index:
                await asyncio.sleep(SEGMENT_S / self.players)
            page = await self._browser.new_page()
            await page.route(page_url, serve_page)
            await page.goto(page_url)
            await page.wait_for_function("() => window.startBench !== undefined")
            self.info = await page.evaluate(
                "(a) => window.startBench(a.url, a.detector)",
                {"url": hls_url, "detector": _detector()},
            )
            self._pages.append(page)

    async def wait_playing(self, timeout_s: float) -> None:
        """Waits until every page has played a second."""
        for page in self._pages:
            await page.wait_for_function(
                "() => document.getElementById('player').currentTime > 1",
                timeout=timeout_s * 1000,
            )
            self._latencies.append(float(await page.evaluate("() => window.benchHls.latency")))

    async def heard(self) -> list[Heard]:
        results: list[Heard] = []
        for page, latency in zip(self._pages, self._latencies, strict=False):
            state = await page.evaluate(
                "() => ({marks: window.benchMarks, stalls: window.benchStalls,"
                " errors: window.benchErrors, jumps: window.benchJumps || [],"
                " rendition: window.benchRendition || '',"
                " stallDetails: window.benchStallDetails || []})"
            )
            results.append(
                Heard(
                    marks=state["marks"],
                    stalls_at=[t / 1000 for t in state["stalls"]],
                    errors=state["errors"],
                    latency_when_playing_s=latency,
                    jumps_s=[float(j) for j in state["jumps"]],
                    rendition=str(state["rendition"]),
                    stall_details=list(state["stallDetails"]),
                )
            )
        return results

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()


def _detector() -> dict[str, Any]:
    return {
        "threshold": ONSET_FRACTION * MARK_LEVEL,
        "confirmS": CONFIRM_S,
        "neededRms": CONFIRM_FRACTION * MARK_LEVEL / 2**0.5,
        "refractoryS": REFRACTORY_S,
        "frequencies": list(MARK_FREQUENCIES_HZ),
    }


def hls_js_version() -> str:
    package = Path(ROOT / "node_modules" / "hls.js" / "package.json")
    if not package.is_file():
        return "missing"
    return str(json.loads(package.read_text()).get("version", "unknown"))
