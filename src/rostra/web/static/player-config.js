// hls.js settings for the listener page, kept as one plain object literal: the latency benchmark
// (bench/) reads this file too. Segments are about 1 s long, so two segments behind the live edge
// is about 2 s of latency with enough headroom to ride out one late segment.
export const HLS_CONFIG = {
  liveSyncDurationCount: 2,
  liveMaxLatencyDurationCount: 6,
  maxLiveSyncPlaybackRate: 1.1,
  lowLatencyMode: true,
  maxBufferLength: 12,
  backBufferLength: 30,
  enableWorker: true,
  startFragPrefetch: true,
};
