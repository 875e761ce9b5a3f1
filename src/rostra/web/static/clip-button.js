// "Clip the last 30 s": a listener (with their ticket) or the host (with the host token) cuts the
// last seconds of the recording into a clip (`POST /api/v1/spaces/{id}/clips`) and gets its page's
// link with a Copy button. Mounted by listen.js and host.js with one call each.
import { api, describeError } from './api.js';
import { linkRow } from './clipboard.js';
import { spaceUrls } from './space-url.js';

const DEFAULT_DURATION_S = 30;
const CHECK_MS = 1000;

function element(tag, className = '', text = '') {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function describeClipError(error) {
  if (error && error.status === 429) return `Too many clips for now: ${describeError(error)}`;
  if (error && error.status === 409) return `No clip: ${describeError(error)}`;
  return describeError(error);
}

class ClipButton {
  constructor({ spaceId, after, getToken, isAvailable, durationS }) {
    this.path = `${spaceUrls(spaceId).api}/clips`;
    this.getToken = getToken;
    this.isAvailable = isAvailable;
    this.box = element('div', 'clip-box');
    this.box.hidden = true;
    this.button = element('button', 'btn btn-secondary clip-button', `Clip the last ${durationS} s`);
    this.button.type = 'button';
    this.button.id = 'clip';
    this.button.dataset.durationS = String(durationS); // a test may shorten it
    this.button.addEventListener('click', () => this.make());
    this.result = element('div', 'clip-result');
    this.result.setAttribute('aria-live', 'polite');
    this.message = element('div', 'notice');
    this.message.setAttribute('role', 'alert');
    this.message.hidden = true;
    this.box.append(this.button, this.message, this.result);
    after.after(this.box);
    this.check();
    this.timer = setInterval(() => this.check(), CHECK_MS);
  }

  check() {
    this.box.hidden = !(this.getToken() && this.isAvailable());
  }

  say(text) {
    this.message.hidden = !text;
    this.message.dataset.kind = 'error';
    this.message.textContent = text;
  }

  async make() {
    const token = this.getToken();
    if (!token) return;
    const durationS = Number(this.button.dataset.durationS) || DEFAULT_DURATION_S;
    this.button.disabled = true;
    this.say('');
    try {
      const clip = await api(this.path, { method: 'POST', token, json: { duration_s: durationS } });
      const row = linkRow(`Your clip of the last ${durationS} s`, clip.page_url);
      row.classList.add('clip-link');
      const open = element('a', 'clip-open', 'Open the clip');
      open.href = clip.page_url;
      open.target = '_blank';
      open.rel = 'noopener';
      row.append(open);
      this.result.prepend(row);
      while (this.result.children.length > 3) this.result.lastElementChild.remove();
    } catch (error) {
      this.say(describeClipError(error));
    } finally {
      this.button.disabled = false;
    }
  }
}

// `getToken()`: the listener's ticket or the host token (no button without one);
// `isAvailable()`: false while there is nothing to clip (a scheduled space).
export function mountClipButton({
  spaceId,
  after,
  getToken,
  isAvailable = () => true,
  durationS = DEFAULT_DURATION_S,
}) {
  return after ? new ClipButton({ spaceId, after, getToken, isAvailable, durationS }) : null;
}
