// A scheduled space on the listen page: a countdown to its start, a "Starts in …" line with the
// time in the listener's own time zone, and an "Add to calendar" link (event.ics). When the host
// goes live, pages that were waiting do not all join in the same second: each waits a random
// moment of the jitter window first, and the waiting room takes whatever still comes at once.

// the first joins of the waiting pages spread evenly over this window
export const JOIN_JITTER_MS = 5000;
// a device clock further off than this from the server's (state.json's counted_at, itself up to
// a couple of seconds old from a cache) is corrected; a nearer one is trusted as it is
const CLOCK_OFF_MS = 10_000;
const SECOND_MS = 1000;
const UNITS = [
  ['days', 86_400],
  ['hours', 3600],
  ['minutes', 60],
  ['seconds', 1],
];

// How long a page waiting for the start waits before its first join, in ms.
export function firstJoinDelayMs(random = Math.random) {
  return Math.floor(random() * JOIN_JITTER_MS);
}

// { days, hours, minutes, seconds } of a duration, never negative.
export function splitDuration(ms) {
  let rest = Math.max(0, Math.ceil(ms / SECOND_MS));
  const parts = {};
  for (const [unit, seconds] of UNITS) {
    parts[unit] = Math.floor(rest / seconds);
    rest -= parts[unit] * seconds;
  }
  return parts;
}

// "in 3 days", "in 2 hours", "in 5 minutes", "in 40 seconds": English, as the page's text is
// (dates and times are written the listener's way).
export function describeIn(ms) {
  const seconds = Math.max(0, Math.round(ms / SECOND_MS));
  const relative = new Intl.RelativeTimeFormat('en', { numeric: 'always' });
  if (seconds >= 2 * 86_400) return relative.format(Math.round(seconds / 86_400), 'day');
  if (seconds >= 2 * 3600) return relative.format(Math.round(seconds / 3600), 'hour');
  if (seconds >= 60) return relative.format(Math.round(seconds / 60), 'minute');
  return relative.format(seconds, 'second');
}

function localTime(date) {
  return new Intl.DateTimeFormat(undefined, {
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    hour: 'numeric',
    minute: '2-digit',
    timeZoneName: 'short',
  }).format(date);
}

export class Countdown {
  // Binds to the page's #countdown block; `update(state)` after each state.json poll.
  constructor(spaceId, doc = document) {
    const $ = (id) => doc.getElementById(id);
    this.box = $('countdown');
    this.cells = Object.fromEntries(UNITS.map(([unit]) => [unit, $(`countdown-${unit}`)]));
    this.daysCell = $('countdown-days-cell');
    this.line = $('countdown-line');
    this.when = $('countdown-when');
    $('calendar').href = `/live/${encodeURIComponent(spaceId)}/event.ics`;
    this.startsAtMs = NaN;
    this.offsetMs = 0;
    this.timer = 0;
  }

  update(state) {
    const startsAtMs = Date.parse(state.scheduled_at || '');
    const isCounting = state.status === 'scheduled' && Number.isFinite(startsAtMs);
    this.box.hidden = !isCounting;
    if (!isCounting) {
      this.stop();
      return;
    }
    const serverNowMs = Date.parse(state.counted_at || '');
    const offsetMs = Number.isFinite(serverNowMs) ? serverNowMs - Date.now() : 0;
    this.offsetMs = Math.abs(offsetMs) > CLOCK_OFF_MS ? offsetMs : 0;
    if (startsAtMs !== this.startsAtMs) {
      this.startsAtMs = startsAtMs;
      const date = new Date(startsAtMs);
      this.when.dateTime = date.toISOString();
      this.when.textContent = localTime(date);
    }
    if (!this.timer) this.tick();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = 0;
  }

  tick() {
    const leftMs = this.startsAtMs - (Date.now() + this.offsetMs);
    const parts = splitDuration(leftMs);
    for (const [unit] of UNITS) this.cells[unit].textContent = String(parts[unit]).padStart(2, '0');
    this.daysCell.hidden = parts.days === 0;
    const isDue = leftMs <= 0;
    this.box.dataset.due = String(isDue);
    this.line.textContent = isDue ? 'Starting any moment' : `Starts ${describeIn(leftMs)}`;
    // wake on the next whole second of the count, so the seconds never skip or stall
    const nextMs = leftMs > 0 ? leftMs % SECOND_MS || SECOND_MS : SECOND_MS;
    this.timer = setTimeout(() => this.tick(), nextMs + 5);
  }
}
