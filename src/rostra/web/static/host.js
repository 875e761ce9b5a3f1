// The host page: start and end the space, join the stage, mint speaker invites, remove speakers,
// see the audience (count, peak, admitted, players, raised hands), and share the listener links.
// Every API call carries the host token from this page's URL.
import { api, describeError } from './api.js';
import { linkRow, wireCopyButton } from './clipboard.js';
import { mountClipButton } from './clip-button.js';
import { renderCounts } from './count-view.js';
import { HandQueue } from './hand-queue.js';
import { mountModerationPanel } from './moderation-panel.js';
import { queryParam, spaceIdFromPath, spaceUrls } from './space-url.js';
import { StagePanel, panelElements } from './stage-panel.js';
import { formatCount, formatWhen, renderStage, renderStatus } from './stage-view.js';
import { watchState } from './state.js';

const $ = (id) => document.getElementById(id);
const spaceId = spaceIdFromPath();
const token = queryParam('token');
const urls = spaceUrls(spaceId);
// a new count reaches state.json within ~2 s (flush, count cache, 1 s HTTP cache): polling this
// often keeps what the host sees under 5 s old
const STATE_POLL_MS = 2500;
const countElements = {
  listeners: $('listeners'),
  error: $('listeners-error'),
  stale: $('count-stale'),
  peak: $('peak'),
  admitted: $('admitted'),
  streamListeners: $('stream-listeners'),
  hands: $('hands'),
};

let space = null;
let stageKey = '';
let lastStage = [];
let isAuthorized = Boolean(token); // false once the API refused the token

function say(box, message, kind = 'error') {
  box.hidden = !message;
  box.dataset.kind = kind;
  box.textContent = message;
}

function renderSpace(next) {
  space = { ...space, ...next };
  document.title = `Host: ${space.title} · Rostra`;
  $('title').textContent = space.title;
  renderStatus($('status'), space.status);
  const when = {
    scheduled: space.scheduled_at ? `Scheduled for ${formatWhen(space.scheduled_at)}` : 'Not started yet',
    live: space.started_at ? `Live since ${formatWhen(space.started_at)}` : 'Live',
    ended: space.ended_at ? `Ended ${formatWhen(space.ended_at)}` : 'Ended',
  };
  $('when').textContent = when[space.status] || '';
  renderCalendar();
  $('start').hidden = space.status !== 'scheduled';
  $('end').hidden = space.status !== 'live';
  const isOpen = space.status !== 'ended' && isAuthorized;
  $('join').disabled = !isOpen;
  $('invite-create').disabled = !isOpen;
}

// "Add to calendar" while the space is scheduled: the event listeners get too
function renderCalendar() {
  let link = $('calendar');
  if (!link) {
    link = document.createElement('a');
    link.id = 'calendar';
    link.className = 'btn btn-secondary btn-large';
    link.textContent = 'Add to calendar';
    link.href = space.event_url || `/live/${encodeURIComponent(spaceId)}/event.ics`;
    $('open-listen').after(link);
  }
  link.hidden = space.status !== 'scheduled' || !space.scheduled_at;
}

function renderLinks(body) {
  $('open-listen').href = body.listen_url;
  $('speaker-link').value = body.speaker_invite_url || '';
  const share = $('share-links');
  share.replaceChildren(
    linkRow('Listener page', body.listen_url),
    linkRow('Stream for players (AAC)', body.stream_url),
    linkRow('Stream for players (Opus)', body.opus_stream_url),
    linkRow('HLS playlist', body.hls_url),
  );
}

async function loadSpace() {
  if (!token) {
    say($('message'), 'This host link has no token in it. Use the full host link printed when the space was created.');
    disableAll();
    return;
  }
  try {
    const body = await api(urls.api, { token });
    renderSpace(body);
    renderLinks(body);
  } catch (error) {
    say($('message'), describeError(error));
    if (error.status === 401 || error.status === 403) disableAll();
  }
}

function disableAll() {
  isAuthorized = false;
  for (const id of ['start', 'end', 'join', 'invite-create', 'copy-speaker-link']) $(id).disabled = true;
}

async function changeStatus(action, button) {
  button.disabled = true;
  say($('message'), '');
  try {
    renderSpace(await api(`${urls.api}/${action}`, { method: 'POST', token }));
    await watcher.refresh({ fresh: true });
  } catch (error) {
    say($('message'), describeError(error));
  } finally {
    button.disabled = false;
  }
}

async function createInvite(event) {
  event.preventDefault();
  const message = $('invite-message');
  say(message, '');
  const name = $('invite-name').value.trim();
  const usesText = $('invite-uses').value.trim();
  const json = {};
  if (name) json.name = name;
  if (usesText) {
    const uses = Number(usesText);
    if (!Number.isInteger(uses) || uses < 1) {
      say(message, 'Uses must be a whole number, 1 or more (or empty for unlimited).');
      return;
    }
    json.uses = uses;
  }
  if ($('invite-studio').checked) json.studio = true;
  const button = $('invite-create');
  button.disabled = true;
  try {
    const invite = await api(`${urls.api}/invites`, { method: 'POST', token, json });
    const who = invite.name || name;
    const label = who ? `Invite for ${who}` : 'New invite';
    const row = linkRow(label, invite.speaker_invite_url);
    const meta = document.createElement('span');
    meta.className = 'link-meta';
    const usesNote = invite.uses ? `${invite.uses} use${invite.uses === 1 ? '' : 's'}` : 'unlimited uses';
    const studioNote = invite.studio ? ' · studio mode' : '';
    meta.textContent = `${usesNote}${studioNote} · expires ${formatWhen(invite.expires_at)}`;
    row.append(meta);
    row.classList.add('invite');
    $('invites').prepend(row);
    $('invite-form').reset();
    row.querySelector('input').focus();
  } catch (error) {
    say(message, describeError(error));
  } finally {
    button.disabled = false;
  }
}

async function removeSpeaker(member, button) {
  button.disabled = true;
  say($('stage-message'), '');
  try {
    await api(`${urls.api}/stage/${encodeURIComponent(member.id)}`, { method: 'DELETE', token });
    lastStage = lastStage.filter((other) => other.id !== member.id);
    showStage(lastStage);
    await watcher.refresh({ fresh: true });
  } catch (error) {
    say($('stage-message'), describeError(error));
    button.disabled = false;
  }
}

function showStage(stage) {
  $('stage-count').textContent = formatCount(stage.length);
  const isEnded = Boolean(space) && space.status === 'ended';
  const key = JSON.stringify([stage, panel.sessionId, isEnded]);
  if (key === stageKey) return;
  stageKey = key;
  renderStage($('stage'), stage, {
    ownId: panel.sessionId,
    onRemove: removeSpeaker,
    emptyText: isEnded ? 'The stage is empty: the space has ended.' : '',
  });
}

// The hand queue, first raised first, each with "Invite to speak" (shared with a co-host's page)
const handQueue = new HandQueue({ spaceId, token, after: $('stage').closest('section'), isEnabled: () => isAuthorized });

function onState(state) {
  lastStage = Array.isArray(state.stage) ? state.stage : [];
  handQueue.setOpen(state.status !== 'ended');
  handQueue.update(Number(state.hands) || 0);
  if (moderation) moderation.render(state);
  if (!space || state.status !== space.status) {
    // a cached state.json can lag one second behind an action taken here; never go back
    const order = ['scheduled', 'live', 'ended'];
    if (!space || order.indexOf(state.status) > order.indexOf(space.status)) renderSpace(state);
  }
  renderCounts(countElements, state);
  showStage(lastStage);
  panel.observe(state);
}

const panel = new StagePanel({
  spaceId,
  token,
  getName: () => 'Host',
  getMicrophoneOptions: () => ({ isStudio: $('host-studio').checked }),
  elements: panelElements(),
  onChange: () => {
    stageKey = '';
    showStage(lastStage);
    watcher.refresh({ fresh: true });
  },
});

$('start').addEventListener('click', () => changeStatus('start', $('start')));
$('end').addEventListener('click', () => {
  $('end-dialog').returnValue = '';
  $('end-dialog').showModal();
});
$('end-dialog').addEventListener('close', () => {
  if ($('end-dialog').returnValue === 'end') changeStatus('end', $('end'));
});
$('invite-form').addEventListener('submit', createInvite);
wireCopyButton($('copy-speaker-link'), $('speaker-link'));

// mute, lock, remove, block; the moderation log (it renders the states this page reads)
const moderation = mountModerationPanel({ spaceId, token, refresh: () => watcher.refresh({ fresh: true }) });
const watcher = watchState(spaceId, { onState, onError: () => {}, intervalMs: STATE_POLL_MS });
loadSpace();
mountClipButton({
  spaceId,
  after: $('open-listen').closest('.actions'),
  getToken: () => (isAuthorized ? token : null),
  isAvailable: () => Boolean(space) && space.status !== 'scheduled',
});
