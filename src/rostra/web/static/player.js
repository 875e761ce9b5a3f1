// Plays a space's program: live HLS or the replay, with hls.js where the browser has Media Source
// Extensions and with native HLS otherwise (Safari on iOS). One <audio> element, one source at a
// time; a fatal network error is retried with backoff, a media error recovered once.
import { HLS_CONFIG, keepNearLive, startOnOpus } from './player-config.js';

const HLS_TYPE = 'application/vnd.apple.mpegurl';
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 8000;

export function playbackEngine(audio) {
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) return 'hls.js';
  if (audio.canPlayType(HLS_TYPE)) return 'native';
  return '';
}

export class ProgramPlayer {
  // onEvent(kind, detail): kind is 'error' (detail: message) or 'recovering'
  constructor(audio, { onEvent = () => {} } = {}) {
    this.audio = audio;
    this.onEvent = onEvent;
    this.hls = null;
    this.url = '';
    this.mode = '';
    this.retryMs = RETRY_FIRST_MS;
    this.retryTimer = 0;
    this.hasRecoveredMedia = false;
  }

  get engine() {
    return playbackEngine(this.audio);
  }

  // Seconds behind the live edge, when the engine knows it.
  get latencyS() {
    const latency = this.hls ? this.hls.latency : NaN;
    return Number.isFinite(latency) && latency > 0 ? latency : NaN;
  }

  // Load `url` ('live' or 'replay' mode) and, if `autoplay`, start playing.
  load(url, mode, { autoplay = true } = {}) {
    this.unload();
    this.url = url;
    this.mode = mode;
    this.retryMs = RETRY_FIRST_MS;
    this.hasRecoveredMedia = false;
    const engine = this.engine;
    if (engine === 'hls.js') {
      this.attachHlsJs(url, autoplay);
    } else if (engine === 'native') {
      this.audio.preload = autoplay ? 'auto' : 'metadata';
      this.audio.src = url;
      if (autoplay) this.play();
    } else {
      this.onEvent('error', 'This browser cannot play HLS. Open the stream link in a player instead.');
    }
  }

  attachHlsJs(url, autoplay) {
    const Hls = window.Hls;
    // loading starts once the level is chosen, so no AAC part is fetched before the switch
    const hls = new Hls({ ...HLS_CONFIG, autoStartLoad: false });
    this.hls = hls;
    startOnOpus(hls, Hls, () => {
      if (autoplay) this.play();
    });
    hls.on(Hls.Events.FRAG_BUFFERED, () => {
      this.retryMs = RETRY_FIRST_MS;
    });
    keepNearLive(hls, Hls);
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) this.recover(hls, data);
    });
    hls.loadSource(url);
    hls.attachMedia(this.audio);
  }

  recover(hls, data) {
    const Hls = window.Hls;
    if (hls !== this.hls) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !this.hasRecoveredMedia) {
      this.hasRecoveredMedia = true;
      hls.recoverMediaError();
      return;
    }
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      this.onEvent('recovering', 'Reconnecting…');
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (hls !== this.hls) return;
        if (!hls.levels || hls.levels.length === 0) hls.loadSource(this.url);
        else hls.startLoad();
      }, this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      return;
    }
    this.onEvent('error', `Playback failed (${data.details}). Press play to try again.`);
    this.unload();
  }

  play() {
    const started = this.audio.play();
    if (started && started.catch) {
      started.catch((error) => {
        if (error.name === 'NotAllowedError') this.onEvent('error', 'Press play to start the audio.');
        else if (error.name !== 'AbortError') this.onEvent('error', error.message);
      });
    }
  }

  pause() {
    this.audio.pause();
  }

  unload() {
    clearTimeout(this.retryTimer);
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.audio.getAttribute('src')) {
      this.audio.removeAttribute('src');
      this.audio.load();
    }
    this.url = '';
    this.mode = '';
  }
}
