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
  backBufferLength: 30,
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
