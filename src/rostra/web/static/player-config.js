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
