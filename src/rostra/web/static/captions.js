// Live captions on the listen page: a captions toggle that shows the line being said.
// Live, it reads /live/{id}/captions.vtt about once a second (the document is cacheable for a
// second) and shows the newest cue; in the replay it shows the cue at the player's position,
// from /replay/{id}/captions.vtt. Nothing is shown when the server has captions off.

const POLL_MS = 1000;
// a line older than this (nobody has spoken since) is cleared
const STALE_MS = 8000;
const STORAGE_KEY = 'rostra.captions';
const CUE_RE = /^(\d+):(\d\d):(\d\d)\.(\d{3}) --> (\d+):(\d\d):(\d\d)\.(\d{3})/;

function seconds(h, m, s, ms) {
  return Number(h) * 3600 + Number(m) * 60 + Number(s) + Number(ms) / 1000;
}

function decode(text) {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

// The cues of a WebVTT document as Rostra writes it: [{start, end, text}], in order.
export function parseCues(document) {
  const lines = document.split(/\r?\n/);
  const cues = [];
  for (let i = 0; i < lines.length; i += 1) {
    const match = CUE_RE.exec(lines[i]);
    if (match && i + 1 < lines.length) {
      cues.push({
        start: seconds(...match.slice(1, 5)),
        end: seconds(...match.slice(5, 9)),
        text: decode(lines[i + 1]),
      });
    }
  }
  return cues;
}

export class CaptionsView {
  // `anchor`: the element the toggle and the line go after; `isReplay()`: the player's mode.
  constructor({ spaceId, audio, anchor, isReplay }) {
    const id = encodeURIComponent(spaceId);
    this.hlsUrl = `/live/${id}/index.m3u8`;
    this.liveUrl = `/live/${id}/captions.vtt`;
    this.replayUrl = `/replay/${id}/captions.vtt`;
    this.audio = audio;
    this.isReplay = isReplay;
    this.timer = 0;
    // each toggle starts a new round of polls; one still awaiting its fetch then ends
    this.round = 0;
    this.lastText = '';
    this.changedAt = 0;
    this.replayCues = null;
    this.isOn = localStorage.getItem(STORAGE_KEY) === 'on';
    this.box = this.render(anchor);
    this.probe();
  }

  render(anchor) {
    const box = document.createElement('div');
    box.className = 'captions';
    box.hidden = true;
    box.style.margin = '0.75rem 0 0';
    this.button = document.createElement('button');
    this.button.type = 'button';
    this.button.className = 'btn btn-secondary btn-small';
    this.button.textContent = 'Captions';
    this.button.addEventListener('click', () => this.toggle());
    this.line = document.createElement('p');
    this.line.className = 'caption-line';
    this.line.setAttribute('aria-live', 'polite');
    Object.assign(this.line.style, {
      margin: '0.5rem 0 0',
      padding: '0.5rem 0.75rem',
      minHeight: '1.5em',
      borderRadius: '8px',
      background: '#1d2230',
      color: '#ffffff',
      fontSize: '1.05rem',
      lineHeight: '1.4',
    });
    box.append(this.button, this.line);
    anchor.after(box);
    return box;
  }

  // Captions are on where the live HLS offers its subtitles rendition (asking captions.vtt
  // itself would earn a 404 where they are off).
  async probe() {
    try {
      const response = await fetch(this.hlsUrl);
      if (!response.ok || !(await response.text()).includes('TYPE=SUBTITLES')) return;
    } catch {
      return;
    }
    this.box.hidden = false;
    this.audio.addEventListener('timeupdate', () => this.showReplayCue());
    this.apply();
  }

  toggle() {
    this.isOn = !this.isOn;
    localStorage.setItem(STORAGE_KEY, this.isOn ? 'on' : 'off');
    this.apply();
  }

  apply() {
    this.button.setAttribute('aria-pressed', String(this.isOn));
    this.button.textContent = this.isOn ? 'Hide captions' : 'Show captions';
    this.line.hidden = !this.isOn;
    clearTimeout(this.timer);
    this.round += 1;
    if (this.isOn) this.poll(this.round);
  }

  async poll(round) {
    if (!this.isOn || round !== this.round) return;
    if (document.visibilityState === 'visible') {
      try {
        if (this.isReplay()) {
          await this.loadReplay();
        } else {
          const response = await fetch(this.liveUrl);
          if (response.ok) this.showNewest(parseCues(await response.text()));
        }
      } catch {
        // the next poll tries again
      }
    }
    if (round !== this.round) return;
    if (!this.isReplay() || !this.replayCues) {
      this.timer = setTimeout(() => this.poll(round), POLL_MS);
    }
  }

  showNewest(cues) {
    const newest = cues.length ? cues[cues.length - 1].text : '';
    const now = Date.now();
    if (newest !== this.lastText) {
      this.lastText = newest;
      this.changedAt = now;
    }
    this.line.textContent = now - this.changedAt < STALE_MS ? this.lastText : '';
  }

  async loadReplay() {
    if (this.replayCues) return;
    const response = await fetch(this.replayUrl);
    this.replayCues = response.ok ? parseCues(await response.text()) : [];
    this.showReplayCue();
  }

  showReplayCue() {
    if (!this.isOn || !this.isReplay() || !this.replayCues) return;
    const t = this.audio.currentTime;
    const cue = this.replayCues.find((c) => c.start <= t && t < c.end);
    this.line.textContent = cue ? cue.text : '';
  }
}
