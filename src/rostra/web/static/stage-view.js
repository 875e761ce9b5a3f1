// How a space looks on every page: its status badge, the people on stage, times and counts.

const STATUS_LABELS = { scheduled: 'Scheduled', live: 'Live', ended: 'Ended' };
const ROLE_LABELS = { host: 'Host', cohost: 'Co-host', speaker: 'Speaker' };
const AVATAR_HUES = [8, 32, 145, 170, 200, 222, 262, 290, 330];

export function renderStatus(badge, status) {
  const known = status in STATUS_LABELS ? status : 'unknown';
  badge.dataset.status = known;
  badge.textContent = STATUS_LABELS[status] || 'Unknown';
}

export function formatWhen(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(date);
}

export function formatClock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '0:00';
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

export function formatCount(value) {
  const number = Number(value);
  return Number.isFinite(number) ? new Intl.NumberFormat().format(number) : '0';
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((word) => Array.from(word)[0].toUpperCase());
  return letters.join('') || '?';
}

function hueOf(name) {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return AVATAR_HUES[hash % AVATAR_HUES.length];
}

function memberItem(member, { ownId, onRemove }) {
  const name = member.name || (member.role === 'host' ? 'Host' : 'Speaker');
  const item = document.createElement('li');
  item.className = 'member';
  item.dataset.sessionId = member.id;

  const avatar = document.createElement('span');
  avatar.className = 'avatar';
  avatar.setAttribute('aria-hidden', 'true');
  avatar.style.setProperty('--hue', String(hueOf(name)));
  avatar.textContent = initials(name);

  const text = document.createElement('span');
  text.className = 'member-text';
  const nameLine = document.createElement('span');
  nameLine.className = 'member-name';
  nameLine.textContent = name;
  const roleLine = document.createElement('span');
  roleLine.className = 'member-role';
  const parts = [ROLE_LABELS[member.role] || member.role];
  if (member.id === ownId) parts.push('you');
  if (member.muted) parts.push('muted');
  roleLine.textContent = parts.join(' · ');
  text.append(nameLine, roleLine);
  item.append(avatar, text);

  if (onRemove && member.id !== ownId) {
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'btn btn-small btn-quiet-danger';
    remove.textContent = 'Remove';
    remove.setAttribute('aria-label', `Remove ${name} from the stage`);
    remove.addEventListener('click', () => onRemove(member, remove));
    item.append(remove);
  }
  return item;
}

// Fills `list` with the stage; `onRemove(member, button)` adds a Remove button (host page).
export function renderStage(list, stage, { ownId = '', onRemove = null, emptyText = '' } = {}) {
  const members = Array.isArray(stage) ? stage : [];
  const items = members.map((member) => memberItem(member, { ownId, onRemove }));
  if (items.length === 0) {
    const empty = document.createElement('li');
    empty.className = 'stage-empty';
    empty.textContent = emptyText || 'Nobody is on stage yet.';
    items.push(empty);
  }
  list.replaceChildren(...items);
}
