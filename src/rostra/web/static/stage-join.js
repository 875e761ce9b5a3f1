// From raised hand to stage on the listener page. While this listener's hand is up, the page asks
// the gate about once a second whether the host invited it (GET …/hand with the ticket: a
// private answer, never cached, that only this ticket can read); a page with its hand down asks
// nothing. Once invited it offers "Join the stage": the microphone, then WHIP, with no reload.
// The program player keeps playing throughout, muted while this listener is on stage and hears
// the live stage (the mix-minus) instead; "Back to the audience" stops publishing and unmutes it.
// Going on stage and back (microphone, meter, WHIP, mute, reconnect) is stage-panel.js's StagePanel,
// the host's and speakers' panel, given this invite's WHIP URL and token.
import { api } from './api.js';
import { StagePanel } from './stage-panel.js';

const POLL_MS = 1000;
const HIDDEN_POLL_EVERY = 5; // a hidden tab asks every 5 s: the offer waits for the person anyway
const TEXTS = {
  removed: 'You are back in the audience: the host ended your turn.',
  left: 'You are back in the audience.',
};

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
  // the names StagePanel knows them by (stage-panel.js panelElements)
  return { box, idle: offer, join, live, meter, muteNote, mute, leave: back, message, remoteAudio };
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
    this.invite = null; // { token, whip_url, name } once the host invited this hand
    this.isOnStage = false;
    this.isPolling = false;
    this.ticks = 0;
    this.wasProgramMuted = false;
    this.panel = new StagePanel({
      spaceId: keeper.spaceId,
      token: '',
      elements: this.el,
      getEndpoint: () => this.invite.whip_url,
      texts: TEXTS,
      onEnd: (text) => this.ended(text),
      onChange: () => this.changed(),
    });
    setInterval(() => this.poll(), POLL_MS);
  }

  get sessionId() {
    return this.panel.sessionId;
  }

  // One question a second (every 5 s in a hidden tab), and only with the hand up and no answer yet.
  async poll() {
    const record = this.keeper.current;
    this.ticks += 1;
    if (!this.reactions.isHandRaised || this.invite || this.panel.session || this.isPolling || !record) return;
    if (document.hidden && this.ticks % HIDDEN_POLL_EVERY) return;
    this.isPolling = true;
    try {
      const answer = await api(`${this.keeper.base}/hand`, { token: record.ticket });
      if (answer.invited && !this.invite) this.offer(answer);
    } catch (error) {
      // a refused ticket (revoked by a block, expired) is given up and the page joins again: a
      // blocked device hears why from the keeper (listen.js); a lost poll is asked again
      if (error.status === 401 || error.status === 403) {
        this.keeper.drop(record.ticket);
        this.keeper.obtain().catch(() => {});
      }
    } finally {
      this.isPolling = false;
    }
  }

  offer(invite) {
    this.invite = invite;
    this.panel.token = invite.token;
    this.panel.show(false);
    this.panel.say('');
    this.el.box.hidden = false;
  }

  // StagePanel went on stage or back (or a join failed: still in the audience, offer shown).
  changed() {
    const isOnStage = Boolean(this.panel.session);
    if (isOnStage && !this.isOnStage) this.entered();
    this.isOnStage = isOnStage;
    this.onChange();
  }

  // On stage: the hand has done its work, and the live stage (the mix-minus) replaces the program
  // (seconds behind) in this listener's ears; the program keeps playing, muted, so going back
  // needs no reload and leaves no gap.
  entered() {
    this.lowerHand();
    this.wasProgramMuted = this.program.muted;
    this.program.muted = true;
    this.anchor.hidden = true;
  }

  // Lower the hand quietly (the host's queue moves on).
  lowerHand() {
    if (!this.reactions.isHandRaised) return;
    this.reactions.send('hand', undefined, 'DELETE').catch(() => {});
    this.reactions.isHandRaised = false;
    this.reactions.renderHand();
  }

  // Off the stage (left, removed, lost, space ended): the program is heard again, and the hand's
  // row says what happened.
  ended(text) {
    this.isOnStage = false;
    this.invite = null; // raising the hand again asks the host again
    this.program.muted = this.wasProgramMuted;
    this.el.box.hidden = true;
    this.anchor.hidden = false;
    this.panel.say('');
    this.reactions.note(text);
  }

  // Called with every state.json: leave the stage when the space ends or the host removed us;
  // an offer lapses when the space is no longer live.
  observe(state) {
    this.panel.observe(state);
    if (!this.panel.session && state.status !== 'live' && this.invite) {
      this.invite = null;
      this.el.box.hidden = true;
    }
  }
}
