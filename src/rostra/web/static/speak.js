// The speaker page: an invite link (…/speak/{id}?invite=TOKEN) puts a person on stage with their
// microphone; they hear the other speakers and can mute or leave. A studio invite (the link ends
// in #studio) starts with studio mode checked; the speaker chooses before joining.
import { api, describeError } from './api.js';
import { HandQueue } from './hand-queue.js';
import { mountModerationPanel } from './moderation-panel.js';
import { queryParam, spaceIdFromPath, spaceUrls } from './space-url.js';
import { StagePanel, panelElements } from './stage-panel.js';
import { formatWhen, renderStage, renderStatus } from './stage-view.js';
import { watchState } from './state.js';

const $ = (id) => document.getElementById(id);
const NAME_KEY = 'rostra.speaker-name';
const spaceId = spaceIdFromPath();
const invite = queryParam('invite');
const nameField = $('name');
const studioBox = $('studio');
// the fragment stays in the browser: the host's choice for this guest, never sent anywhere
const STUDIO_FRAGMENT = '#studio';

let stageKey = '';
let status = '';

// A co-host's invite (its token says `rol: cohost`) opens this page too: the co-host speaks here
// and runs the stage with the host (the hand queue, the moderation panel). The claim only chooses
// what the page shows; the server checks the signed token on every call.
function roleOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part)).rol === 'cohost' ? 'cohost' : 'speaker';
  } catch {
    return 'speaker';
  }
}
const isCohost = Boolean(invite) && roleOf(invite) === 'cohost';
// state.json is polled this often: a mute by the host shows here within about 2 s
const STATE_POLL_MS = 1500;

function storedName() {
  try {
    return localStorage.getItem(NAME_KEY) || '';
  } catch {
    return ''; // storage blocked (private mode): the name is simply not remembered
  }
}

function rememberName() {
  try {
    localStorage.setItem(NAME_KEY, nameField.value.trim());
  } catch {
    // see storedName
  }
}

const panel = new StagePanel({
  spaceId,
  token: invite,
  bindJoin: false,
  getName: () => nameField.value,
  getMicrophoneOptions: () => ({ isStudio: studioBox.checked }),
  elements: panelElements(),
  onChange: () => {
    stageKey = '';
    watcher.refresh({ fresh: true });
    renderJoinable();
  },
});

const STATUS_TEXTS = {
  scheduled:
    'The host has not started yet. You can join the stage now; listeners hear you once it is live.',
  live: 'The space is live. Join the stage to speak.',
  ended: 'This space has ended. Thank you!',
};

const COHOST_TEXT = 'You are a co-host: you run the stage with the host (raised hands and moderation, below).';

function renderJoinable() {
  $('join').disabled = status === 'ended' || !invite;
}

function onState(state) {
  status = state.status;
  document.title = `${isCohost ? 'Co-host' : 'Speak'}: ${state.title} · Rostra`;
  $('title').textContent = state.title;
  renderStatus($('status'), state.status);
  const when = {
    scheduled: state.scheduled_at ? `Starts at ${formatWhen(state.scheduled_at)}` : 'Not started yet',
    live: state.started_at ? `Live since ${formatWhen(state.started_at)}` : 'Live',
    ended: state.ended_at ? `Ended ${formatWhen(state.ended_at)}` : 'Ended',
  };
  $('when').textContent = when[state.status] || '';
  const cohostNote = isCohost && state.status !== 'ended' ? `${COHOST_TEXT} ` : '';
  $('status-text').textContent = panel.session ? '' : `${cohostNote}${STATUS_TEXTS[state.status] || ''}`;
  const key = JSON.stringify([state.stage, panel.sessionId]);
  if (key !== stageKey) {
    stageKey = key;
    renderStage($('stage'), state.stage, { ownId: panel.sessionId });
  }
  panel.observe(state);
  renderHostMute(state.stage);
  renderJoinable();
  if (handQueue) {
    handQueue.update(Number(state.hands) || 0);
    handQueue.setOpen(state.status !== 'ended');
  }
}

// "Muted by the host": the host or a co-host took this voice out of the program; the speaker may
// unmute themselves unless the mute is locked.
const hostMute = buildHostMute();

function buildHostMute() {
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
  unmute.addEventListener('click', unmuteSelf);
  box.append(text, unmute);
  $('panel-live').querySelector('.on-stage-line').after(box);
  return { box, text, unmute };
}

function renderHostMute(stage) {
  const own = (Array.isArray(stage) ? stage : []).find((m) => panel.sessionId && m.id === panel.sessionId);
  const isMuted = Boolean(own && own.muted);
  hostMute.box.hidden = !isMuted;
  if (!isMuted) return;
  $('join-message').hidden = true; // "Listeners hear you now" is no longer true
  hostMute.box.dataset.kind = own.locked ? 'error' : 'info';
  hostMute.text.textContent = own.locked
    ? 'Muted by the host. The host has locked it: only the host can unmute you.'
    : 'Muted by the host. Listeners do not hear you.';
  hostMute.unmute.hidden = Boolean(own.locked);
}

async function unmuteSelf() {
  hostMute.unmute.disabled = true;
  try {
    const path = `${spaceUrls(spaceId).api}/stage/${encodeURIComponent(panel.sessionId)}/mute`;
    await api(path, { method: 'POST', token: invite, json: { muted: false } });
    hostMute.box.hidden = true;
    stageKey = '';
    watcher.refresh({ fresh: true });
  } catch (error) {
    hostMute.text.textContent = describeError(error);
  } finally {
    hostMute.unmute.disabled = false;
  }
}

function onStateError(error) {
  if (error.status === 404) panel.say('This space does not exist. Check the link.', { kind: 'error' });
}

$('panel-idle').addEventListener('submit', (event) => {
  event.preventDefault();
  if (!nameField.value.trim()) {
    panel.say('Type your name first: listeners see it on the stage.', { kind: 'error' });
    nameField.focus();
    return;
  }
  rememberName();
  panel.join();
});
nameField.value = storedName();
studioBox.checked = window.location.hash === STUDIO_FRAGMENT;
nameField.addEventListener('change', rememberName);
$('listen-link').href = spaceUrls(spaceId).listen;

if (!invite) {
  panel.say('This link has no invite in it. Ask the host for the full speaker link.', { kind: 'error' });
}
const handQueue = isCohost ? new HandQueue({ spaceId, token: invite, after: $('stage').closest('section') }) : null;
if (isCohost) {
  $('header-note').textContent = 'You are a co-host · keep this link private';
  mountModerationPanel({ spaceId, token: invite, actorRole: 'cohost' }); // speakers only
}
const watcher = watchState(spaceId, { onState, onError: onStateError, intervalMs: STATE_POLL_MS });
renderJoinable();
