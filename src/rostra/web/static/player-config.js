// hls.js settings for the listener page, kept as one plain object literal: the latency benchmark
// (bench/) reads this file too. The live playlist is Low-Latency HLS: 256 ms parts fetched by
// blocking playlist reload. With lowLatencyMode on and no liveSyncDuration* of our own, hls.js
// holds the playlist's PART-HOLD-BACK (three parts, 0.768 s) behind the live edge, and speeds
// up a little (at most 1.1x) to get back there after a stall. Without parts (the replay, or a
// playlist just continued after a restart) it falls back to the standard hold-back.
export const HLS_CONFIG = {
  lowLatencyMode: true,
  maxLiveSyncPlaybackRate: 1.1,
  maxBufferLength: 12,
  // hls.js's own back-buffer trim (backBufferLength) races its part appends: a trim that lands
  // between a part's append and its FRAG_BUFFERED drops the segment from hls.js's fragment
  // tracker, and at that segment's end the player asks for no part for ~3 s (seen in
  // bench/latency.py's stall_details with hls.js 1.7.4). With Infinity (hls.js's default) the
  // browser evicts played media itself when its SourceBuffer quota fills (Chrome: 12 MiB of
  // audio), so memory stays bounded without the race.
  backBufferLength: Infinity,
  enableWorker: true,
  startFragPrefetch: true,
};

// A cache may answer the first playlist with a copy up to a few seconds old (within its
// `stale-while-revalidate`; nginx counts whole seconds). hls.js then starts that far behind the
// live edge and, once more than about a target duration from its target latency, stays there.
// So a live player that finds itself more than RESYNC_BEHIND_S behind its target jumps to the
// live sync position (checked as each part is buffered; never for the replay, which has no
// target latency). `onJump(seconds)` hears of each jump.
export const RESYNC_BEHIND_S = 1.0;

export function keepNearLive(hls, Hls, onJump = () => {}) {
  hls.on(Hls.Events.FRAG_BUFFERED, () => {
    const media = hls.media;
    const target = hls.targetLatency;
    const latency = hls.latency;
    const position = hls.liveSyncPosition;
    if (!media || media.paused || !Number.isFinite(target) || !Number.isFinite(latency)) return;
    if (!Number.isFinite(position) || latency - target <= RESYNC_BEHIND_S) return;
    if (position <= media.currentTime) return;
    onJump(position - media.currentTime);
    media.currentTime = position;
  });
}

// The index of the Opus level among hls.js's levels when Media Source plays Opus in MP4, else -1.
const OPUS_MP4_TYPE = 'audio/mp4; codecs="opus"';

export function opusLevel(levels) {
  const MediaSource = window.ManagedMediaSource || window.MediaSource;
  if (!MediaSource || !MediaSource.isTypeSupported(OPUS_MP4_TYPE)) return -1;
  return (levels || []).findIndex((level) => /^opus$/i.test(level.audioCodec || ''));
}

// The live playlist lists AAC first (where Safari, players and ffmpeg start) and Opus second:
// hls.js would start on the first listed, so the page takes the Opus level where it plays and
// keeps it (a manual level: the ABR controller never moves off it). For a player made with
// `autoStartLoad: false`, so no AAC part is fetched before the choice. `onStarted(codec)` hears
// 'opus' or 'first'.
export function startOnOpus(hls, Hls, onStarted = () => {}) {
  hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
    const opus = opusLevel(data.levels);
    if (opus >= 0) {
      hls.startLevel = opus;
      hls.loadLevel = opus;
    }
    hls.startLoad(-1);
    onStarted(opus >= 0 ? 'opus' : 'first');
  });
}
