// The listener page: status, the play button (live HLS, or the replay once the space ended), who is
// on stage, the counts, reactions and the raised hand, and plain stream links for other players.
// Playing live keeps the listener counted: a ticket on play, heartbeats while the audio plays.
import { CaptionsView } from './captions.js';
import { mountClipButton } from './clip-button.js';
import { renderCounts } from './count-view.js';
import { Countdown, firstJoinDelayMs } from './countdown.js';
import { Heartbeat } from './heartbeat.js';
import { ProgramPlayer } from './player.js';
import { ReactionPanel } from './reactions.js';
import { spaceIdFromPath, spaceUrls } from './space-url.js';
import { StageJoin } from './stage-join.js';
import { formatClock, formatWhen, renderStage, renderStatus } from './stage-view.js';
import { watchState } from './state.js';
import { TicketKeeper } from './ticket.js';
import { renderWaiting } from './waiting-view.js';

const $ = (id) => document.getElementById(id);
const BLOCKED_TEXT = 'The host blocked this browser in this space: you can no longer react, raise your hand or speak here.';
const spaceId = spaceIdFromPath();
const urls = spaceUrls(spaceId);
const countdown = new Countdown(spaceId);
const audio = $('player');
const playButton = $('play');
const seekBar = $('seek-bar');
// the live playlist has its first segments about this long after the start (1 s segments);
// asking earlier only earns a 409 "no segment yet", so a listener waiting for the start waits
// this long after it, measured on the server's clock (state.json's counted_at)
const FIRST_SEGMENTS_S = 2.5;
// after this page's first heartbeat or a reaction, read the state again once the gate has counted
// it (writes are batched for ~0.1 s, the count cached for ~1 s)
const COUNTED_AFTER_MS = 1300;

let state = null;
let stageKey = '';
let isWaitingToStart = false; // play was pressed before the space went live
let isSeeking = false;
let startTimer = 0;
let isStateMessage = false; // the message shown is about loading the state: clear it on success
let playingFromS = null; // media time at the last 'playing' event, until it is seen advancing
let countedTimer = 0;

const keeper = new TicketKeeper(spaceId, {
  onStatus: (text) => {
    if (text) $('player-status').textContent = text; // a join waiting (proof-of-work, queue)
  },
  // in the waiting room the program plays on; the line says when this listener is counted
  onWaiting: (wait) => {
    renderWaiting($('waiting-line'), wait);
    reactions.setWaiting(Boolean(wait));
  },
  onBlocked: () => onBlocked(),
});
const heartbeat = new Heartbeat(keeper, {
  onBeat: ({ isFirst }) => {
    if (isFirst) refreshSoon();
  },
  onStop: () => refreshSoon(),
});
const reactions = new ReactionPanel(
  keeper,
  {
    buttons: $('reaction-buttons'),
    tally: $('tally'),
    hand: $('hand'),
    note: $('react-note'),
    wait: $('react-wait'),
  },
  { onSent: () => refreshSoon() },
);
// a raised hand the host invited: "Join the stage", with the program playing on
const stageJoin = new StageJoin({
  keeper,
  reactions,
  program: audio,
  anchor: $('hand').closest('.hand-row'),
  onChange: () => watcher.refresh({ fresh: true }),
});
const countElements = {
  listeners: $('listeners'),
  error: $('listeners-error'),
  stale: $('count-stale'),
  streamListeners: $('stream-listeners'),
  waiting: $('waiting'),
  waitingRow: $('waiting-count'),
};

const player = new ProgramPlayer(audio, {
  onEvent(kind, detail) {
    if (kind === 'error') {
      say(detail, 'error');
      setButton('paused');
    } else {
      $('player-status').textContent = detail;
    }
  },
});

// the "Captions" toggle under the player (hidden where the server has captions off)
new CaptionsView({ spaceId, audio, anchor: document.querySelector('.player'), isReplay: () => player.mode === 'replay' });

function say(message, kind = 'info') {
  const box = $('message');
  box.hidden = !message;
  box.dataset.kind = kind;
  box.textContent = message;
}

function setButton(buttonState) {
  playButton.dataset.state = buttonState;
  const isPlaying = buttonState === 'playing' || buttonState === 'loading';
  playButton.setAttribute('aria-label', isPlaying ? 'Pause' : 'Play');
}

function isActive() {
  return !audio.paused || playButton.dataset.state === 'loading';
}

function describeLabel() {
  const status = state ? state.status : '';
  if (status === 'ended') return 'Replay';
  if (status === 'live') return 'Listen live';
  if (status === 'scheduled') return isWaitingToStart ? 'Waiting for the start…' : 'Play when it starts';
  return 'Loading…';
}

function renderWhen() {
  if (!state) return;
  const texts = {
    scheduled: state.scheduled_at ? `Starts at ${formatWhen(state.scheduled_at)}` : 'Starts soon',
    live: state.started_at ? `Live since ${formatWhen(state.started_at)}` : 'Live now',
    ended: state.ended_at ? `Ended ${formatWhen(state.ended_at)}` : 'Ended',
  };
  $('when').textContent = texts[state.status] || '';
}

function renderPlayerStatus() {
  const status = $('player-status');
  if (player.mode === 'live' && !audio.paused) {
    const latency = player.latencyS;
    const behind = Number.isFinite(latency) ? ` · ${latency.toFixed(1)} s behind` : '';
    status.textContent = `Playing live${behind}`;
  } else if (player.mode === 'replay' && !audio.paused) {
    status.textContent = 'Playing the recording';
  } else if (player.mode === 'replay' && audio.currentTime > 0) {
    status.textContent = 'Paused';
  } else if (state && state.status === 'scheduled') {
    status.textContent = isWaitingToStart
      ? 'It will start playing as soon as the host goes live.'
      : 'The host has not started yet.';
  } else if (state && state.status === 'live') {
    status.textContent = isActive() ? 'Joining…' : 'Press play to listen.';
  } else if (state && state.status === 'ended') {
    status.textContent = 'This space has ended. Play the recording.';
  }
}

function renderSeek() {
  const isReplay = state && state.status === 'ended';
  $('seek').hidden = !isReplay;
  $('download-row').hidden = !isReplay;
  $('players').hidden = Boolean(isReplay);
  if (!isReplay) return;
  const duration = Number.isFinite(audio.duration) ? audio.duration : 0;
  seekBar.max = String(duration);
  seekBar.disabled = duration <= 0;
  if (!isSeeking) seekBar.value = String(audio.currentTime || 0);
  $('position').textContent = formatClock(isSeeking ? Number(seekBar.value) : audio.currentTime);
  $('duration').textContent = formatClock(duration);
}

function render() {
  $('play-label').textContent = describeLabel();
  renderWhen();
  renderPlayerStatus();
  renderSeek();
}

function onState(next) {
  const previous = state;
  state = next;
  if (isStateMessage) say('');
  isStateMessage = false;
  document.title = `${next.title} · Rostra`;
  $('title').textContent = next.title;
  renderStatus($('status'), next.status);
  renderCounts(countElements, next);
  countdown.update(next);
  $('react').hidden = next.status !== 'live';
  reactions.setOpen(next.status === 'live' && !keeper.blocked);
  reactions.renderTally(next.reactions);
  stageJoin.observe(next);
  const key = JSON.stringify([next.status, next.stage]);
  if (key !== stageKey) {
    stageKey = key;
    renderStage($('stage'), next.stage, {
      ownId: stageJoin.sessionId,
      emptyText: next.status === 'ended' ? 'The stage is empty: the space has ended.' : '',
    });
  }
  playButton.disabled = false;
  if (next.status === 'live' && isWaitingToStart) {
    isWaitingToStart = false;
    setButton('loading'); // the first join waits a random moment: pages do not all join at once
    startTimer = setTimeout(startLive, firstJoinDelayMs());
  }
  if (next.status === 'ended' && (!previous || previous.status !== 'ended')) {
    $('download').href = urls.download;
    if (player.mode !== 'live' || audio.paused || audio.ended) prepareReplay(false);
  }
  updateMediaSession();
  render();
}

function onStateError(error) {
  if (error.status === 404) {
    say('This space does not exist. Check the link.', 'error');
    playButton.disabled = true;
    isStateMessage = true;
  } else if (!state) {
    say(`Cannot load this space: ${error.detail || error.message}`, 'error');
    isStateMessage = true;
  }
}

function secondsUntilFirstSegments() {
  const startedMs = Date.parse(state.started_at || '');
  const nowMs = Date.parse(state.counted_at || '');
  if (!Number.isFinite(startedMs) || !Number.isFinite(nowMs)) return 0;
  return Math.max(0, FIRST_SEGMENTS_S - (nowMs - startedMs) / 1000);
}

function startLive() {
  setButton('loading');
  // join now; the heartbeats retry with backoff if this failed (a blocked device: onBlocked)
  keeper.obtain().catch(() => {});
  clearTimeout(startTimer);
  const waitS = secondsUntilFirstSegments();
  if (waitS > 0) startTimer = setTimeout(() => player.load(urls.hls, 'live'), waitS * 1000);
  else player.load(urls.hls, 'live');
  render();
}

function prepareReplay(autoplay) {
  if (player.mode === 'replay') {
    if (autoplay) player.play();
    return;
  }
  if (autoplay) setButton('loading');
  player.load(urls.replay, 'replay', { autoplay });
}

function togglePlay() {
  if (!state) return;
  say('');
  if (isActive()) {
    clearTimeout(startTimer);
    if (player.mode === 'live') player.unload(); // resume later at the live edge, not behind it
    else player.pause();
    setButton('paused');
    render();
    return;
  }
  if (state.status === 'scheduled') {
    isWaitingToStart = !isWaitingToStart;
    render();
    return;
  }
  if (state.status === 'live') startLive();
  else prepareReplay(true);
}

function updateMediaSession() {
  if (!('mediaSession' in navigator) || !state || !window.MediaMetadata) return;
  navigator.mediaSession.metadata = new MediaMetadata({
    title: state.title,
    artist: state.status === 'ended' ? 'Rostra replay' : 'Rostra live',
    artwork: [{ src: '/static/icon.svg', sizes: 'any', type: 'image/svg+xml' }],
  });
}

function refreshSoon() {
  clearTimeout(countedTimer);
  countedTimer = setTimeout(() => watcher.refresh({ fresh: true }), COUNTED_AFTER_MS);
}

// The first heartbeat goes out once the live audio is really playing: after 'playing', when the
// media time has moved on.
function onPlaying() {
  setButton('playing');
  playingFromS = audio.currentTime;
}

function onTimeUpdate() {
  if (playingFromS !== null && !audio.paused && audio.currentTime > playingFromS) {
    playingFromS = null;
    if (player.mode === 'live' && !keeper.blocked) heartbeat.start();
  }
  render();
}

// The gate refused this browser (the host blocked it, by its hand or ticket): say so at once, with
// the hand down and reactions off; the keeper asks the gate no more. The program is public and
// plays on (docs/stage.md, "What a block cannot stop").
function onBlocked() {
  heartbeat.stop();
  reactions.lowerHand();
  reactions.setOpen(false);
  say(BLOCKED_TEXT, 'error');
}

function onStopped() {
  playingFromS = null;
  heartbeat.stop();
}

// Leaving: always when the page goes away; when it is hidden only if nothing is playing (a phone
// may never send pagehide). Leaving lowers the hand at the gate.
function leave() {
  onStopped();
  if (keeper.leave()) reactions.lowerHand();
}

function onVisibilityChange() {
  if (document.visibilityState === 'hidden' && audio.paused && !reactions.isHandRaised) leave();
}

playButton.addEventListener('click', togglePlay);
audio.addEventListener('playing', onPlaying);
audio.addEventListener('emptied', onStopped);
audio.addEventListener('waiting', () => {
  if (!audio.paused) setButton('loading');
});
audio.addEventListener('pause', () => {
  onStopped();
  if (playButton.dataset.state !== 'loading' || !player.mode) setButton('paused');
  render();
});
audio.addEventListener('ended', () => {
  onStopped();
  setButton('paused');
  if (player.mode === 'live' && state && state.status === 'ended') prepareReplay(false);
  render();
});
audio.addEventListener('timeupdate', onTimeUpdate);
audio.addEventListener('durationchange', render);
seekBar.addEventListener('input', () => {
  isSeeking = true;
  renderSeek();
});
seekBar.addEventListener('change', () => {
  audio.currentTime = Number(seekBar.value);
  isSeeking = false;
  renderSeek();
});

$('aac-link').href = urls.aac;
$('aac-url').textContent = urls.aac;
$('opus-link').href = urls.opus;
$('opus-url').textContent = urls.opus;
setButton('paused');
window.addEventListener('pagehide', leave);
document.addEventListener('visibilitychange', onVisibilityChange);

const watcher = watchState(spaceId, { onState, onError: onStateError });
// "Clip the last 30 s" for a listener with a ticket, live or after the end
mountClipButton({
  spaceId,
  after: $('download-row'),
  getToken: () => keeper.current && keeper.current.ticket,
  isAvailable: () => Boolean(state) && state.status !== 'scheduled',
});
// when the live program ends, hls.js sees the end of the playlist: fetch the new status at once
audio.addEventListener('ended', () => watcher.refresh({ fresh: true }));
