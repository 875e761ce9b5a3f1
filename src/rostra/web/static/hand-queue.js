// The raised-hands queue, first raised first, each with "Invite to speak": its listener's page
// offers "Join the stage" within about a second. Shared by the host's page and a co-host's; read
// from the API (`GET …/hands`, host or co-host) only while hands are raised.
import { api, describeError } from './api.js';
import { spaceUrls } from './space-url.js';

function raisedAgo(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (!Number.isFinite(seconds)) return '';
  return seconds < 60 ? `raised ${seconds} s ago` : `raised ${Math.round(seconds / 60)} min ago`;
}

// the first hands shown; the rest (up to the gate's 1,000 a space) are counted on one line
const SHOWN_HANDS = 50;

// "#2 · raised 40 s ago", told again on every read (the list itself is kept while it is the same)
function renderRaised(line) {
  line.textContent = [`#${line.dataset.rank}`, raisedAgo(line.dataset.raisedAt)].filter(Boolean).join(' · ');
}

export class HandQueue {
  // `after`: the card is placed after this element; `isEnabled()`: false once the token was refused
  constructor({ spaceId, token, after, isEnabled = () => true }) {
    this.base = spaceUrls(spaceId).api;
    this.token = token;
    this.isEnabled = isEnabled;
    this.key = '';
    this.isLoading = false;
    this.build(after);
    this.show([]);
  }

  build(after) {
    const section = document.createElement('section');
    section.className = 'card';
    section.setAttribute('aria-labelledby', 'hands-heading');
    const heading = document.createElement('h2');
    heading.id = 'hands-heading';
    heading.textContent = 'Raised hands';
    this.list = document.createElement('ol');
    this.list.id = 'hand-queue';
    this.list.className = 'stage hand-queue';
    this.list.setAttribute('aria-live', 'polite');
    this.message = document.createElement('div');
    this.message.id = 'hand-message';
    this.message.className = 'notice';
    this.message.setAttribute('role', 'alert');
    this.message.hidden = true;
    section.append(heading, this.list, this.message);
    after.after(section);
    this.section = section;
  }

  say(text) {
    this.message.hidden = !text;
    this.message.dataset.kind = 'error';
    this.message.textContent = text;
  }

  item(hand, index) {
    const short = hand.hand.slice(0, 4);
    const item = document.createElement('li');
    item.className = 'member hand-item';
    item.dataset.hand = hand.hand;
    const avatar = document.createElement('span');
    avatar.className = 'avatar hand-avatar';
    avatar.setAttribute('aria-hidden', 'true');
    avatar.textContent = '✋';
    const text = document.createElement('span');
    text.className = 'member-text';
    const name = document.createElement('span');
    name.className = 'member-name';
    name.textContent = `Listener ${short}`;
    const line = document.createElement('span');
    line.className = 'member-role';
    line.dataset.raisedAt = hand.raised_at || '';
    line.dataset.rank = String(index + 1);
    renderRaised(line);
    text.append(name, line);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'btn btn-small btn-primary';
    button.textContent = hand.invited ? 'Invited' : 'Invite to speak';
    button.disabled = Boolean(hand.invited);
    button.setAttribute('aria-label', `Invite listener ${short} to speak`);
    button.addEventListener('click', () => this.invite(hand, button));
    item.append(avatar, text, button);
    return item;
  }

  show(hands) {
    this.isEmpty = !hands.length;
    const more = Math.max(0, hands.length - SHOWN_HANDS);
    const shown = hands.slice(0, SHOWN_HANDS);
    const key = JSON.stringify([shown.map((hand) => [hand.hand, hand.invited]), more]);
    if (key === this.key && hands.length) {
      this.list.querySelectorAll('.member-role').forEach(renderRaised);
      return;
    }
    this.key = key;
    if (!hands.length) {
      const empty = document.createElement('li');
      empty.className = 'stage-empty';
      empty.textContent = 'No hands raised.';
      this.list.replaceChildren(empty);
      return;
    }
    const items = shown.map((hand, index) => this.item(hand, index));
    if (more) {
      const rest = document.createElement('li');
      rest.className = 'stage-empty';
      rest.textContent = `and ${new Intl.NumberFormat().format(more)} more raised after these`;
      items.push(rest);
    }
    this.list.replaceChildren(...items);
  }

  // Shown while the space is scheduled or live: an ended space has no hands to invite.
  setOpen(isOpen) {
    this.section.hidden = !isOpen;
  }

  // Called with state.json's `hands` count: asks the API only while some are raised (and once
  // more when the last goes down, to clear the list), and never once the space ended (setOpen).
  async update(raised) {
    if (this.section.hidden || !this.isEnabled() || this.isLoading || (!raised && this.isEmpty)) return;
    this.isLoading = true;
    try {
      const body = await api(`${this.base}/hands`, { token: this.token });
      this.show(Array.isArray(body.hands) ? body.hands : []);
    } catch (error) {
      this.say(describeError(error));
    } finally {
      this.isLoading = false;
    }
  }

  async invite(hand, button) {
    button.disabled = true;
    this.say('');
    try {
      await api(`${this.base}/hands/${encodeURIComponent(hand.hand)}/invite`, { method: 'POST', token: this.token });
      button.textContent = 'Invited';
    } catch (error) {
      this.say(describeError(error));
      button.disabled = false;
    }
  }
}
