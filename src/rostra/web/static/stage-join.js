// From raised hand to stage on the listener page. While this listener's hand is up, the page asks
// the gate about once a second whether the host invited it (GET …/hand with the ticket: a
// private answer, never cached, that only this ticket can read); a page with its hand down asks
// nothing. Once invited it offers "Join the stage": the microphone, then WHIP, with no reload.
// The program player keeps playing throughout, muted while this listener is on stage and hears
// the live stage (the mix-minus) instead; "Back to the audience" stops publishing and unmutes it.
import { api, describeError } from './api.js';
import { LevelMeter, openMicrophone } from './microphone.js';
import { describeJoinError } from './stage-panel.js';
import { publish, watchSession } from './whip.js';

const POLL_MS = 1000;

function element(tag, className, text = '') {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function button(className, text) {
  const node = element('button', className, text);
  node.type = 'button';
  return node;
}

// The offer and the on-stage controls, built here so the page's markup needs only an anchor.
function buildElements() {
  const box = element('div', 'stage-join');
  box.hidden = true;
  box.setAttribute('aria-live', 'polite');

  const offer = element('div', 'stage-join-offer');
  const lead = element('p', 'stage-join-lead', 'The host invites you to speak.');
  const join = button('btn btn-primary btn-large', 'Join the stage');
  join.id = 'stage-join';
  const hint = element('p', 'field-hint', 'Your browser will ask for the microphone. Headphones help.');
  offer.append(lead, join, hint);

  const live = element('div', 'stage-join-live');
  live.hidden = true;
  const line = element('p', 'on-stage-line', 'You are on stage');
  const meterLabel = element('div', 'meter-label');
  const muteNote = element('span', 'mute-note');
  meterLabel.append(element('span', '', 'Microphone level'), muteNote);
  const meter = element('div', 'meter');
  meter.setAttribute('role', 'meter');
  meter.setAttribute('aria-label', 'Microphone level');
  meter.append(element('div', 'meter-fill'));
  const actions = element('div', 'actions');
  const mute = button('btn btn-secondary mute-button', 'Mute');
  const back = button('btn btn-quiet-danger', 'Back to the audience');
  back.id = 'stage-back';
  actions.append(mute, back);
  live.append(line, meterLabel, meter, actions);

  const message = element('div', 'notice');
  message.setAttribute('role', 'status');
  message.hidden = true;
  const remoteAudio = element('audio', '');
  remoteAudio.autoplay = true;
  box.append(offer, live, message, remoteAudio);
  return { box, offer, join, live, meter, muteNote, mute, back, message, remoteAudio };
}

export class StageJoin {
  // keeper: the page's TicketKeeper; reactions: its ReactionPanel (the hand); program: the
  // <audio> of the program; anchor: the element the offer is shown after (the hand's row, hidden
  // while on stage); onChange(): after going on stage or back (the page reads the state again)
  constructor({ keeper, reactions, program, anchor, onChange = () => {} }) {
    this.anchor = anchor;
    this.onChange = onChange;
    this.keeper = keeper;
    this.reactions = reactions;
    this.program = program;
    this.el = buildElements();
    anchor.after(this.el.box);
    this.meter = new LevelMeter(this.el.meter);
    this.invite = null; // { token, whip_url, name } once the host invited this hand
    this.session = null;
    this.stream = null;
    this.isBusy = false;
    this.isPolling = false;
    this.wasProgramMuted = false;
    this.stopWatching = () => {};
    this.el.join.addEventListener('click', () => this.join());
    this.el.back.addEventListener('click', () => this.backToAudience());
    this.el.mute.addEventListener('click', () => this.toggleMute());
    window.addEventListener('pagehide', () => {
      if (this.session) this.session.leave().catch(() => {});
    });
    setInterval(() => this.poll(), POLL_MS);
  }

  get sessionId() {
    return this.session ? this.session.sessionId : '';
  }

  // One question a second, and only with the hand up and no answer yet.
  async poll() {
    const record = this.keeper.current;
    if (!this.reactions.isHandRaised || this.invite || this.session || this.isPolling || !record) return;
    this.isPolling = true;
    try {
      const answer = await api(`${this.keeper.base}/hand`, { token: record.ticket });
      if (answer.invited && !this.invite) this.offer(answer);
    } catch {
      // a refused or lost poll is asked again next second; the hand panel reports ticket trouble
    } finally {
      this.isPolling = false;
    }
  }

  offer(invite) {
    this.invite = invite;
    this.el.box.hidden = false;
    this.el.offer.hidden = false;
    this.el.live.hidden = true;
    this.say('');
  }

  say(text, kind = 'info', detail = '') {
    const box = this.el.message;
    box.hidden = !text;
    box.dataset.kind = kind;
    box.textContent = detail ? `${text} ${detail}` : text;
  }

  async join() {
    if (!this.invite || this.session || this.isBusy) return;
    this.isBusy = true;
    this.el.join.disabled = true;
    this.say('Asking for your microphone…');
    try {
      this.stream = await openMicrophone();
      this.say('Connecting to the stage…');
      const [track] = this.stream.getAudioTracks();
      this.session = await publish(this.invite.whip_url, this.invite.token, track);
    } catch (error) {
      this.releaseMicrophone();
      const { message, detail } = describeJoinError(error);
      this.say(message, 'error', detail);
      return;
    } finally {
      this.isBusy = false;
      this.el.join.disabled = false;
    }
    this.lowerHand();
    this.stopWatching = watchSession(this.session, {
      onLost: () => this.end('The connection to the stage was lost. You are back in the audience.'),
      onEnded: () => this.end('You are back in the audience: the host ended your turn.'),
    });
    this.el.remoteAudio.srcObject = this.session.remoteStream;
    this.el.remoteAudio.play().catch(() => {});
    // the live stage replaces the program (seconds behind) in this listener's ears; the program
    // keeps playing, so going back needs no reload and leaves no gap
    this.wasProgramMuted = this.program.muted;
    this.program.muted = true;
    this.meter.start(this.stream);
    this.setMuted(false);
    this.el.offer.hidden = true;
    this.el.live.hidden = false;
    this.anchor.hidden = true;
    this.say('Listeners hear you now, and you hear the other speakers.', 'success');
    this.onChange();
  }

  // On stage the hand has done its work: lower it quietly (the host's queue moves on).
  lowerHand() {
    if (!this.reactions.isHandRaised) return;
    this.reactions.send('hand', undefined, 'DELETE').catch(() => {});
    this.reactions.isHandRaised = false;
    this.reactions.renderHand();
  }

  toggleMute() {
    const track = this.stream && this.stream.getAudioTracks()[0];
    if (track) this.setMuted(track.enabled);
  }

  setMuted(isMuted) {
    const track = this.stream && this.stream.getAudioTracks()[0];
    if (track) track.enabled = !isMuted;
    this.el.mute.textContent = isMuted ? 'Unmute' : 'Mute';
    this.el.muteNote.textContent = isMuted ? 'Muted: nobody hears you' : '';
    this.el.live.dataset.muted = String(isMuted);
  }

  async backToAudience() {
    const session = this.session;
    if (!session) return;
    this.el.back.disabled = true;
    try {
      await session.leave();
      this.end('You are back in the audience.');
    } catch (error) {
      this.end('You are back in the audience, but the server did not confirm it.', describeError(error));
    } finally {
      this.el.back.disabled = false;
    }
  }

  // Off the stage (left, removed, lost, space ended): the program is heard again, and the hand's
  // row says what happened.
  end(text, detail = '') {
    this.stopWatching();
    this.stopWatching = () => {};
    if (this.session) this.session.close();
    this.session = null;
    this.invite = null; // raising the hand again asks the host again
    this.releaseMicrophone();
    this.el.remoteAudio.srcObject = null;
    this.program.muted = this.wasProgramMuted;
    this.el.box.hidden = true;
    this.anchor.hidden = false;
    this.say('');
    this.reactions.note(detail ? `${text} ${detail}` : text);
    this.onChange();
  }

  releaseMicrophone() {
    this.meter.stop();
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    this.stream = null;
  }

  // Called with every state.json: leave the stage when the space ends.
  observe(state) {
    if (this.session && state.status === 'ended') this.end('This space has ended. Thank you for speaking!');
    if (!this.session && state.status !== 'live' && this.invite) {
      this.invite = null;
      this.el.box.hidden = true;
    }
  }
}
