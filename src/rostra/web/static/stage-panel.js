// "Join the stage": the microphone, the WHIP session, the others' voices (the mix-minus), a level
// meter, mute and leave. Used by the host page, the speaker page and, for a listener the host
// invited from the hand queue, the listen page (stage-join.js). When the origin restarts, the
// panel says "Reconnecting…" and publishes the same microphone track again (whip.js publishAgain);
// when the server ends the session on purpose (removed, space ended), it leaves the stage.
import { ApiError, api, describeError } from './api.js';
import { LevelMeter, openMicrophone } from './microphone.js';
import { spaceUrls } from './space-url.js';
import { publish, publishAgain, watchSession } from './whip.js';

const DEFAULT_VOICES = 13;
// state.json trails the origin by a second or two: after lifting a mute oneself, a state that still
// says "muted" (not locked) is that lag, not a new mute, for this long
const SELF_UNMUTE_GRACE_MS = 4000;
// a session the server closed this soon before state.json says "ended" was closed by the end
const ENDED_WITHIN_MS = 10000;
// polls of state.json without our session (connection still up) before we publish again
const MISSING_POLLS_TO_LEAVE = 2;
const TEXTS = {
  removed: 'You are no longer on the stage: the host removed you, or the connection dropped.',
  left: 'You left the stage.',
  ended: 'This space has ended. Thank you for speaking!',
};

function stageFullMessage(detail) {
  const match = /allows (\d+) voices/.exec(detail || '');
  const voices = match ? match[1] : String(DEFAULT_VOICES);
  return `The stage is full (${voices} voices). Try again when someone leaves.`;
}

const MESSAGES_BY_SLUG = {
  'credential-expired': 'This invite has expired. Ask the host for a new link.',
  'credential-missing': 'This link has no invite in it. Ask the host for the full link.',
  'credential-invalid': 'This invite link is not valid. Check that you copied all of it.',
  'credential-wrong-space': 'This invite is for another space.',
  'device-blocked': 'The host blocked this browser in this space: you cannot speak here.',
  'invite-revoked': 'The host withdrew this invite. Ask them for a new link.',
  'invite-used-up': 'This invite has already been used as many times as it allows.',
  'role-not-allowed': 'This link does not allow you to speak here.',
  'space-ended': 'This space has ended.',
  'space-not-found': 'This space does not exist (check the link).',
};

const MICROPHONE_MESSAGES = {
  NotAllowedError: 'Microphone access was blocked. Allow the microphone for this site, then try again.',
  SecurityError: 'Microphone access was blocked. Allow the microphone for this site, then try again.',
  NotFoundError: 'No microphone was found. Plug one in, then try again.',
  NotReadableError: 'The microphone is busy or unavailable (another app may be using it).',
  OverconstrainedError: 'The microphone cannot be opened with echo cancellation on this device.',
  AbortError: 'The microphone could not be started. Try again.',
};

// What to tell a person whose join failed: { message, detail } (detail: the server's own words).
export function describeJoinError(error) {
  if (error instanceof ApiError) {
    let message = MESSAGES_BY_SLUG[error.slug];
    if (!message && error.slug === 'stage-full') message = stageFullMessage(error.detail);
    if (!message && error.status === 401) message = MESSAGES_BY_SLUG['credential-invalid'];
    if (!message && error.status === 403) message = 'This invite does not allow you on stage.';
    if (!message && error.status === 409) message = 'The space cannot take speakers right now.';
    if (!message && error.status === 0) return { message: error.detail, detail: '' };
    if (!message) message = 'The server refused to put you on stage.';
    return { message, detail: error.detail === message ? '' : error.detail };
  }
  if (error && MICROPHONE_MESSAGES[error.name]) {
    return { message: MICROPHONE_MESSAGES[error.name], detail: error.message || '' };
  }
  return { message: 'Joining the stage failed.', detail: describeError(error) };
}

// The panel's elements on the host and speaker pages, which share its markup and ids.
export function panelElements() {
  const $ = (id) => document.getElementById(id);
  return {
    join: $('join'),
    idle: $('panel-idle'),
    live: $('panel-live'),
    meter: $('meter'),
    mute: $('mute'),
    leave: $('leave'),
    message: $('join-message'),
    remoteAudio: $('remote-audio'),
    muteNote: $('mute-note'),
  };
}

// "Muted by the host or a co-host": one of them took this voice out of the program (state.json
// `stage[].muted`, which does not say who; only the host may mute a co-host). Shown under the
// "You are on stage" line, with Unmute unless the mute is locked.
function buildHostMute(live, onUnmute) {
  const box = document.createElement('div');
  box.id = 'host-mute';
  box.className = 'notice moderation-notice';
  box.setAttribute('role', 'status');
  box.setAttribute('aria-live', 'polite');
  box.hidden = true;
  const text = document.createElement('span');
  const unmute = document.createElement('button');
  unmute.type = 'button';
  unmute.className = 'btn btn-secondary btn-small';
  unmute.textContent = 'Unmute';
  unmute.addEventListener('click', onUnmute);
  box.append(text, unmute);
  const line = live.querySelector('.on-stage-line');
  if (line) line.after(box);
  else live.prepend(box);
  return { box, text, unmute };
}

// elements: { join, idle, live, meter, mute, leave, message, remoteAudio, muteNote? }
export class StagePanel {
  // bindJoin: false when the page starts join() itself (after checking a form);
  // getMicrophoneOptions: what openMicrophone is given on join (the speak page's studio mode);
  // getEndpoint: the WHIP URL (default: the space's; an invited hand is given its own);
  // onEnd(text): after leaving the stage, with what the panel says; texts: { removed?, left? }
  constructor({
    spaceId,
    token,
    elements,
    getName = () => '',
    onChange = () => {},
    onEnd = () => {},
    bindJoin = true,
    getMicrophoneOptions = () => ({}),
    getEndpoint = () => spaceUrls(spaceId).whip,
    texts = {},
  }) {
    this.spaceId = spaceId;
    this.getMicrophoneOptions = getMicrophoneOptions;
    this.getEndpoint = getEndpoint;
    this.texts = { ...TEXTS, ...texts };
    this.onEnd = onEnd;
    this.token = token;
    this.el = elements;
    this.getName = getName;
    this.onChange = onChange;
    this.meter = new LevelMeter(elements.meter);
    this.session = null;
    this.stream = null;
    this.missingPolls = 0;
    this.seenOnStage = false;
    this.isJoining = false;
    this.isReconnecting = false;
    this.lastEnd = ''; // what the panel said when it last left the stage, and when
    this.lastEndMs = -Infinity;
    this.selfUnmutedMs = -Infinity;
    this.mayUnmuteSelf = true; // false once refused: a shared link's holders ask the host
    this.stopWatching = () => {};
    this.hostMute = buildHostMute(elements.live, () => this.unmuteSelf());
    if (bindJoin) elements.join.addEventListener('click', () => this.join());
    elements.mute.addEventListener('click', () => this.toggleMute());
    elements.leave.addEventListener('click', () => this.leave());
    window.addEventListener('pagehide', () => {
      if (this.session) this.session.leave().catch(() => {});
    });
  }

  get sessionId() {
    return this.session ? this.session.sessionId : '';
  }

  say(message, { kind = 'info', detail = '' } = {}) {
    const box = this.el.message;
    box.replaceChildren();
    box.hidden = !message;
    box.dataset.kind = kind;
    if (!message) return;
    const main = document.createElement('strong');
    main.textContent = message;
    box.append(main);
    if (detail) {
      const small = document.createElement('span');
      small.className = 'notice-detail';
      small.textContent = detail;
      box.append(small);
    }
  }

  async join() {
    if (this.session || this.isJoining) return;
    this.isJoining = true;
    try {
      await this.connect();
    } finally {
      this.isJoining = false;
    }
  }

  async connect() {
    const { join } = this.el;
    join.disabled = true;
    this.say('Asking for your microphone…');
    try {
      this.stream = await openMicrophone(this.getMicrophoneOptions());
      this.say('Connecting to the stage…');
      const [track] = this.stream.getAudioTracks();
      const name = this.getName().trim();
      const query = name ? `?name=${encodeURIComponent(name)}` : '';
      this.session = await publish(this.getEndpoint() + query, this.token, track);
    } catch (error) {
      this.releaseMicrophone();
      const { message, detail } = describeJoinError(error);
      this.say(message, { kind: 'error', detail });
      join.disabled = false;
      this.onChange();
      return;
    }
    this.attach(this.session);
    this.meter.start(this.stream);
    this.setMuted(false);
    this.show(true);
    this.say('Listeners hear you now, and you hear the other speakers.', {
      kind: 'success',
    });
    join.disabled = false;
    this.onChange();
  }

  // Hear `session`'s mix-minus and watch its connection.
  attach(session) {
    this.session = session;
    this.missingPolls = 0;
    this.seenOnStage = false;
    this.stopWatching = watchSession(session, {
      onLost: () => this.reconnect(),
      onEnded: () => this.end(this.texts.removed, 'error'),
    });
    this.el.remoteAudio.srcObject = session.remoteStream;
    this.el.remoteAudio.play().catch(() => {});
  }

  // The origin is gone (crash, restart): publish the same microphone track again, with backoff.
  async reconnect() {
    const lost = this.session;
    const track = this.stream && this.stream.getAudioTracks()[0];
    if (!lost || !track || this.isReconnecting) return;
    this.isReconnecting = true;
    this.el.live.dataset.reconnecting = 'true';
    this.say('Reconnecting…', { detail: 'The connection to the stage was lost; trying again.' });
    let session;
    try {
      session = await publishAgain(lost, track, { shouldGoOn: () => this.session === lost });
    } catch (error) {
      this.isReconnecting = false;
      delete this.el.live.dataset.reconnecting;
      if (this.session !== lost) return; // the person left meanwhile
      const { message, detail } = describeJoinError(error);
      this.end(message, 'error', detail);
      return;
    }
    this.isReconnecting = false;
    delete this.el.live.dataset.reconnecting;
    if (this.session !== lost) {
      session.leave().catch(() => {}); // the person left while the offer was on its way
      return;
    }
    this.attach(session);
    this.say('On stage again.', {
      kind: 'success',
      detail: 'Listeners hear you now, and you hear the other speakers.',
    });
    this.onChange();
  }

  toggleMute() {
    const track = this.stream && this.stream.getAudioTracks()[0];
    if (track) this.setMuted(track.enabled);
  }

  setMuted(isMuted) {
    const track = this.stream && this.stream.getAudioTracks()[0];
    if (track) track.enabled = !isMuted;
    this.el.mute.textContent = isMuted ? 'Unmute' : 'Mute';
    this.el.live.dataset.muted = String(isMuted);
    if (this.el.muteNote) this.el.muteNote.textContent = isMuted ? 'Muted: nobody hears you' : '';
  }

  async leave() {
    const session = this.session;
    if (!session) return;
    this.el.leave.disabled = true;
    try {
      await session.leave();
      this.end(this.texts.left);
    } catch (error) {
      this.end(`${this.texts.left} The server did not confirm it.`, 'error', describeError(error));
    } finally {
      this.el.leave.disabled = false;
    }
  }

  // Tear down locally; the server side is already gone or told.
  end(message, kind = 'info', detail = '') {
    this.stopWatching();
    if (this.session) this.session.close();
    this.session = null;
    this.releaseMicrophone();
    this.el.remoteAudio.srcObject = null;
    this.hostMute.box.hidden = true;
    this.show(false);
    this.say(message, { kind, detail });
    this.lastEnd = message;
    this.lastEndMs = performance.now();
    this.onEnd(detail ? `${message} ${detail}` : message);
    this.onChange();
  }

  releaseMicrophone() {
    this.meter.stop();
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    this.stream = null;
  }

  show(isOnStage) {
    this.el.idle.hidden = isOnStage;
    this.el.live.hidden = !isOnStage;
  }

  renderHostMute(own) {
    this.ownMember = own;
    const isLagging = performance.now() - this.selfUnmutedMs < SELF_UNMUTE_GRACE_MS;
    const isMuted = Boolean(own && own.muted) && (Boolean(own.locked) || !isLagging);
    this.hostMute.box.hidden = !isMuted;
    if (!isMuted) return;
    this.el.message.hidden = true; // "Listeners hear you now" is no longer true
    this.hostMute.box.dataset.kind = own.locked ? 'error' : 'info';
    const who = own.role === 'speaker' ? 'the host or a co-host' : 'the host';
    let text = `Muted by ${who}. Listeners do not hear you.`;
    if (own.locked) text = `Muted by ${who}, and locked: only ${who} can unmute you.`;
    else if (!this.mayUnmuteSelf) text = `Muted by ${who}. This link is shared: ask ${who} to unmute you.`;
    this.hostMute.text.textContent = text;
    this.hostMute.unmute.hidden = Boolean(own.locked) || !this.mayUnmuteSelf;
  }

  // A speaker may lift a mute that is not locked (POST …/stage/{session}/mute with their invite),
  // unless they came in on a shared link (403: its holders are several people).
  async unmuteSelf() {
    const { box, text, unmute } = this.hostMute;
    unmute.disabled = true;
    try {
      const path = `${spaceUrls(this.spaceId).api}/stage/${encodeURIComponent(this.sessionId)}/mute`;
      await api(path, { method: 'POST', token: this.token, json: { muted: false } });
      this.selfUnmutedMs = performance.now();
      box.hidden = true;
      this.onChange(); // the page reads the state again
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) {
        this.mayUnmuteSelf = false;
        this.renderHostMute(this.ownMember);
      } else {
        text.textContent = describeError(error);
      }
    } finally {
      unmute.disabled = false;
    }
  }

  // Called with every state.json: leave when the space ends or the host removed us; show a mute
  // by the host or a co-host.
  observe(state) {
    const stage = Array.isArray(state.stage) ? state.stage : [];
    this.renderHostMute(this.session && stage.find((member) => member.id === this.sessionId));
    if (!this.session) {
      // the end of the space closes the connection before state.json says so: tell it plainly
      const isRecent = performance.now() - this.lastEndMs < ENDED_WITHIN_MS;
      if (state.status === 'ended' && this.lastEnd === this.texts.removed && isRecent) {
        this.lastEnd = this.texts.ended;
        this.say(this.texts.ended);
      }
      return;
    }
    if (state.status === 'ended') {
      this.end(this.texts.ended);
      return;
    }
    if (this.isReconnecting) return; // off the stage until the new session is up
    const isOnStage = stage.some((member) => member.id === this.sessionId);
    if (isOnStage) {
      this.seenOnStage = true;
      this.missingPolls = 0;
      return;
    }
    if (!this.seenOnStage) return;
    this.missingPolls += 1;
    // a removal closes our connection first (onEnded); still connected but off the stage means
    // the origin restarted without us: publish again
    if (this.missingPolls >= MISSING_POLLS_TO_LEAVE) {
      this.missingPolls = 0;
      this.reconnect();
    }
  }
}
