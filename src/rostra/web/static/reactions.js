// Reactions and the raised hand on the listener page: a button per allowed emoji (each click
// floats the emoji up), the tally of the last 10 s from state.json, and "Raise hand". Both go
// through the gate with the listener's ticket, joining first if they have none yet.
import { api, describeError } from './api.js';
import { DEVICE_HEADER, deviceId } from './device.js';

// the gate's REACTIONS (src/rostra/audience/gate.py), in its order, with names for screen readers
export const REACTIONS = [
  ['👏', 'applause'],
  ['❤️', 'love'],
  ['😂', 'laughter'],
  ['🔥', 'fire'],
  ['👍', 'thumbs up'],
  ['😮', 'surprise'],
  ['🙏', 'thanks'],
  ['🎉', 'celebration'],
  ['💯', 'hundred points'],
  ['🤔', 'thinking'],
];
const FLOAT_MS = 1400;
const MAX_FLOATING = 12;
const LIMIT_MAX_S = 10;
const NOTE_MS = 4000;

export class ReactionPanel {
  // elements: { buttons, tally, hand, note, wait? }; onSent() after a reaction or hand went through
  constructor(keeper, elements, { onSent = () => {} } = {}) {
    this.keeper = keeper;
    this.elements = elements;
    this.onSent = onSent;
    this.isOpen = false;
    this.isLimited = false;
    this.isWaiting = false; // in the waiting room: no ticket yet
    this.isHandRaised = false;
    this.tallyKey = '';
    this.timers = { limit: 0, note: 0 };
    this.buildButtons();
    elements.hand.addEventListener('click', () => this.toggleHand());
    this.renderHand();
  }

  buildButtons() {
    const buttons = REACTIONS.map(([emoji, name]) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'reaction';
      button.dataset.emoji = emoji;
      button.textContent = emoji;
      button.setAttribute('aria-label', `React with ${name}`);
      button.title = name;
      button.addEventListener('click', () => this.react(emoji, button));
      return button;
    });
    this.elements.buttons.replaceChildren(...buttons);
  }

  // Open while the space is live.
  setOpen(isOpen) {
    this.isOpen = isOpen;
    this.renderButtons();
    this.renderHand();
  }

  // In line to be counted: reactions and the hand wait for the ticket (with a hint).
  setWaiting(isWaiting) {
    if (this.isWaiting === isWaiting) return;
    this.isWaiting = isWaiting;
    if (this.elements.wait) this.elements.wait.hidden = !isWaiting;
    this.renderButtons();
    this.renderHand();
  }

  renderButtons() {
    const isDisabled = !this.isOpen || this.isLimited || this.isWaiting;
    for (const button of this.elements.buttons.querySelectorAll('.reaction')) {
      button.disabled = isDisabled;
    }
  }

  renderHand() {
    const hand = this.elements.hand;
    hand.setAttribute('aria-pressed', String(this.isHandRaised));
    hand.querySelector('.hand-label').textContent = this.isHandRaised ? 'Hand raised' : 'Raise hand';
    hand.title = this.isHandRaised ? 'Click to lower your hand' : '';
    hand.disabled = !this.isOpen || this.isWaiting;
  }

  // The gate lowers the hand when the listener leaves (or is blocked): "your hand is up" goes too.
  lowerHand() {
    if (this.isHandRaised) this.note('');
    this.isHandRaised = false;
    this.renderHand();
  }

  // The tally of the last 10 s: most frequent first, emoji the gate does not know left out.
  renderTally(reactions) {
    const known = new Map(REACTIONS);
    const entries = Object.entries(reactions || {})
      .filter(([emoji, count]) => known.has(emoji) && Number(count) > 0)
      .sort((a, b) => b[1] - a[1]);
    const key = JSON.stringify(entries);
    if (key === this.tallyKey) return;
    this.tallyKey = key;
    const tally = this.elements.tally;
    if (entries.length === 0) {
      const empty = document.createElement('li');
      empty.className = 'tally-empty';
      empty.textContent = 'none';
      tally.replaceChildren(empty);
      return;
    }
    tally.replaceChildren(
      ...entries.map(([emoji, count]) => {
        const item = document.createElement('li');
        item.className = 'tally-item';
        item.dataset.emoji = emoji;
        item.setAttribute('aria-label', `${known.get(emoji)}: ${count}`);
        const symbol = document.createElement('span');
        symbol.setAttribute('aria-hidden', 'true');
        symbol.textContent = emoji;
        const number = document.createElement('span');
        number.className = 'tally-count';
        number.setAttribute('aria-hidden', 'true');
        number.textContent = new Intl.NumberFormat().format(count);
        item.append(symbol, number);
        return item;
      }),
    );
  }

  // POST with the ticket; a refused ticket is replaced by a new join and tried once more.
  async send(path, json, method = 'POST') {
    for (let attempt = 0; ; attempt += 1) {
      const { ticket } = await this.keeper.obtain();
      try {
        // a raised hand names this browser, so a block by hand refuses it (device.js)
        const headers = path === 'hand' && method === 'POST' ? { [DEVICE_HEADER]: deviceId() } : {};
        return await api(`${this.keeper.base}/${path}`, { method, token: ticket, json, headers });
      } catch (error) {
        if ((error.status === 401 || error.status === 403) && attempt === 0) {
          this.keeper.drop(ticket);
          continue;
        }
        throw error;
      }
    }
  }

  async react(emoji, button) {
    if (!this.isOpen || this.isLimited || this.isWaiting) return;
    this.float(emoji, button);
    try {
      await this.send('reactions', { emoji });
      this.onSent();
    } catch (error) {
      if (error.status === 429) this.limit(error.retryAfterS);
      else this.note(describeError(error));
    }
  }

  toggleHand() {
    return this.isHandRaised ? this.dropHand() : this.raiseHand();
  }

  async dropHand() {
    this.elements.hand.disabled = true;
    try {
      await this.send('hand', undefined, 'DELETE');
      this.isHandRaised = false;
      this.note('Your hand is down.');
    } catch (error) {
      this.note(describeError(error));
    } finally {
      this.renderHand();
    }
  }

  async raiseHand() {
    if (!this.isOpen || this.isHandRaised || this.isWaiting) return;
    this.elements.hand.disabled = true;
    try {
      await this.send('hand');
      this.isHandRaised = true;
      this.note('Your hand is up: the host sees it in the queue.');
      this.onSent();
    } catch (error) {
      this.note(describeError(error));
    } finally {
      this.renderHand();
    }
  }

  // Over the gate's limit: rest the buttons for as long as it asked.
  limit(retryAfterS) {
    const seconds = Math.min(LIMIT_MAX_S, Math.max(1, Math.ceil(retryAfterS || 2)));
    this.isLimited = true;
    this.renderButtons();
    this.note(`That is a lot of reactions: the buttons are back in ${seconds} s.`);
    clearTimeout(this.timers.limit);
    this.timers.limit = setTimeout(() => {
      this.isLimited = false;
      this.renderButtons();
    }, seconds * 1000);
  }

  note(text) {
    const note = this.elements.note;
    note.textContent = text;
    note.hidden = !text;
    clearTimeout(this.timers.note);
    if (text) this.timers.note = setTimeout(() => this.note(''), NOTE_MS);
  }

  // The emoji rises from the button and fades (skipped when the reader asked for less motion).
  float(emoji, button) {
    if (window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches) return;
    const layer = this.elements.buttons;
    if (layer.querySelectorAll('.floating').length >= MAX_FLOATING) return;
    const bubble = document.createElement('span');
    bubble.className = 'floating';
    bubble.setAttribute('aria-hidden', 'true');
    bubble.textContent = emoji;
    const drift = Math.round((Math.random() - 0.5) * 24);
    bubble.style.left = `${button.offsetLeft + button.offsetWidth / 2}px`;
    bubble.style.top = `${button.offsetTop}px`;
    bubble.style.setProperty('--drift', `${drift}px`);
    layer.append(bubble);
    setTimeout(() => bubble.remove(), FLOAT_MS);
  }
}
