// The speaker page: an invite link (…/speak/{id}?invite=TOKEN) puts a person on stage with their
// microphone; they hear the other speakers and can mute or leave. A studio invite (the link ends
// in #studio) starts with studio mode checked; the speaker chooses before joining.
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
  const key = JSON.stringify([state.status, state.stage, panel.sessionId]);
  if (key !== stageKey) {
    stageKey = key;
    renderStage($('stage'), state.stage, {
      ownId: panel.sessionId,
      emptyText: state.status === 'ended' ? 'The stage is empty: the space has ended.' : '',
    });
  }
  panel.observe(state); // leaving when removed; a mute by the host or a co-host
  renderJoinable();
  if (moderation) moderation.render(state);
  if (handQueue) {
    handQueue.setOpen(state.status !== 'ended');
    handQueue.update(Number(state.hands) || 0);
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
}
// a co-host acts on speakers only; the panel renders the states this page reads
const moderation = isCohost
  ? mountModerationPanel({ spaceId, token: invite, actorRole: 'cohost', refresh: () => watcher.refresh({ fresh: true }) })
  : null;
const watcher = watchState(spaceId, { onState, onError: onStateError, intervalMs: STATE_POLL_MS });
renderJoinable();
