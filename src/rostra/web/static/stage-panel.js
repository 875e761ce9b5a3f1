// "Join the stage": the microphone, the WHIP session, the others' voices (the mix-minus), a level
// meter, mute and leave. Used by the host page and the speaker page. When the origin restarts, the
// panel says "Reconnecting…" and publishes the same microphone track again (whip.js publishAgain);
// when the server ends the session on purpose (removed, space ended), it leaves the stage.
import { ApiError, describeError } from './api.js';
import { LevelMeter, openMicrophone } from './microphone.js';
import { spaceUrls } from './space-url.js';
import { publish, publishAgain, watchSession } from './whip.js';

const DEFAULT_VOICES = 13;
// polls of state.json without our session (connection still up) before we publish again
const MISSING_POLLS_TO_LEAVE = 2;
const REMOVED_TEXT = 'You are no longer on the stage: the host removed you, or the connection dropped.';

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

// elements: { join, idle, live, meter, mute, leave, message, remoteAudio, muteNote? }
export class StagePanel {
  // bindJoin: false when the page starts join() itself (after checking a form);
  // getMicrophoneOptions: what openMicrophone is given on join (the speak page's studio mode)
  constructor({
    spaceId,
    token,
    elements,
    getName = () => '',
    onChange = () => {},
    bindJoin = true,
    getMicrophoneOptions = () => ({}),
  }) {
    this.spaceId = spaceId;
    this.getMicrophoneOptions = getMicrophoneOptions;
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
    this.stopWatching = () => {};
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
      this.session = await publish(spaceUrls(this.spaceId).whip + query, this.token, track);
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
      onEnded: () => this.end(REMOVED_TEXT, 'error'),
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
      this.end('You left the stage.');
    } catch (error) {
      this.end('You left the stage, but the server did not confirm it.', 'error', describeError(error));
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
    this.show(false);
    this.say(message, { kind, detail });
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

  // Called with every state.json: leave when the space ends or the host removed us.
  observe(state) {
    if (!this.session) return;
    if (state.status === 'ended') {
      this.end('This space has ended. Thank you for speaking!');
      return;
    }
    if (this.isReconnecting) return; // off the stage until the new session is up
    const stage = Array.isArray(state.stage) ? state.stage : [];
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
