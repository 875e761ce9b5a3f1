// Keeps a listener counted while the program is actually playing: the first heartbeat when
// playback starts, then one every heartbeat_interval_s (±10 % here, on top of the gate's own
// jitter), none while paused. A refused ticket is replaced by a new join; network trouble is
// retried with growing, jittered delays, never in a tight loop.
import { api } from './api.js';

const CLIENT_JITTER = 0.1;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
const RETRY_AFTER_MAX_MS = 120000;
const MIN_GAP_MS = 500; // never two attempts closer than this, whatever the answers
// the space is unknown or has ended: heartbeats cannot help, stop
const FINAL_STATUSES = new Set([404, 409, 410]);

export function jittered(ms, spread = CLIENT_JITTER) {
  return Math.round(ms * (1 - spread + Math.random() * 2 * spread));
}

// The wait before attempt number `failures` + 1: the server's Retry-After when it gave one, else
// exponential backoff with jitter.
export function retryDelayMs(failures, error) {
  if (error && error.retryAfterS) {
    return Math.min(RETRY_AFTER_MAX_MS, jittered(error.retryAfterS * 1000, 0.2) + MIN_GAP_MS);
  }
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.max(0, failures - 1));
  return Math.max(MIN_GAP_MS, Math.round(base * (0.5 + Math.random() * 0.5)));
}

export class Heartbeat {
  // onBeat({ isFirst }) after each accepted heartbeat; onStop(error) when the gate said the space
  // is gone.
  constructor(keeper, { onBeat = () => {}, onStop = () => {} } = {}) {
    this.keeper = keeper;
    this.onBeat = onBeat;
    this.onStop = onStop;
    this.isRunning = false;
    this.isSending = false;
    this.timer = 0;
    this.failures = 0;
    this.lastBeatMs = -Infinity;
    this.beats = 0;
  }

  // Playback is running: heartbeat now, or when the one before is due.
  start() {
    if (this.isRunning) return;
    this.isRunning = true;
    const sinceMs = performance.now() - this.lastBeatMs;
    if (sinceMs >= this.keeper.intervalMs) this.beat();
    else this.schedule(this.keeper.intervalMs - sinceMs);
  }

  // Playback paused or stopped: no more heartbeats until start().
  stop() {
    this.isRunning = false;
    clearTimeout(this.timer);
  }

  schedule(delayMs) {
    clearTimeout(this.timer);
    if (!this.isRunning) return;
    this.timer = setTimeout(() => this.beat(), Math.max(MIN_GAP_MS, delayMs));
  }

  async beat() {
    if (!this.isRunning || this.isSending) return;
    this.isSending = true;
    let delayMs = null;
    try {
      delayMs = await this.send();
    } finally {
      this.isSending = false;
    }
    if (delayMs === null) {
      this.stop();
    } else {
      this.schedule(delayMs);
    }
  }

  // One attempt; the delay until the next one, or null to stop.
  async send() {
    let ticket = '';
    try {
      const record = await this.keeper.obtain();
      ticket = record.ticket;
      const renewed = await api(`${this.keeper.base}/heartbeat`, { method: 'POST', token: ticket });
      if (renewed && renewed.ticket) this.keeper.adopt(renewed);
      this.failures = 0;
      this.lastBeatMs = performance.now();
      this.beats += 1;
      this.onBeat({ isFirst: this.beats === 1 });
      return jittered(this.keeper.intervalMs);
    } catch (error) {
      return this.afterFailure(error, ticket);
    }
  }

  afterFailure(error, ticket) {
    const status = error && error.status;
    if (FINAL_STATUSES.has(status)) {
      this.onStop(error);
      return null;
    }
    this.failures += 1;
    if ((status === 401 || status === 403) && ticket) {
      // expired, forged or another space's ticket: join again, at once the first time
      this.keeper.drop(ticket);
      if (this.failures === 1) return MIN_GAP_MS;
    }
    return retryDelayMs(this.failures, error);
  }
}
