// The host's moderation panel: for each voice on stage Mute / Unmute, Lock (a mute the speaker
// cannot undo), Remove and Block; "Mute all speakers" (never the host or co-hosts); and the
// space's moderation log. Mounted with one call by host.js (and speak.js for a co-host); the page
// hands it each state.json it reads (render), so the panel adds no poll of its own.
import { api, describeError } from './api.js';
import { spaceUrls } from './space-url.js';
import { formatWhen } from './stage-view.js';

const ROLE_LABELS = { host: 'Host', cohost: 'Co-host', speaker: 'Speaker' };
const ACTION_LABELS = {
  mute: 'muted', unmute: 'unmuted', lock: 'muted and locked', remove: 'removed', block: 'blocked',
  invite: 'invited',
};

// Who acted, as the log names them: "Host", or a co-host's name with their role ("Cat (co-host)")
function actorLabel(entry) {
  const role = ROLE_LABELS[entry.actor_role] || '';
  if (!entry.actor || entry.actor === entry.actor_role) return role || String(entry.actor || '');
  return role ? `${entry.actor} (${role.toLowerCase()})` : String(entry.actor);
}

function element(tag, className = '', text = '') {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function button(label, className, onClick, ariaLabel = '') {
  const node = element('button', `btn btn-small ${className}`, label);
  node.type = 'button';
  if (ariaLabel) node.setAttribute('aria-label', ariaLabel);
  node.addEventListener('click', () => onClick(node));
  return node;
}

class ModerationPanel {
  // refresh(): reads state.json again, fresh, and renders it (the page's watchState refresh)
  constructor({ spaceId, token, refresh, actorRole = 'host' }) {
    this.base = spaceUrls(spaceId).api;
    // a co-host acts on speakers only (may_act_on): the host and co-hosts are not listed for them
    this.mayActOn = actorRole === 'cohost' ? (m) => m.role === 'speaker' : (m) => m.role !== 'host';
    this.token = token;
    this.refresh = refresh;
    this.stageKey = '';
    this.build();
  }

  build() {
    const section = element('section', 'card moderation');
    section.setAttribute('aria-labelledby', 'moderation-heading');
    const heading = element('h2', '', 'Moderation');
    heading.id = 'moderation-heading';
    const tools = element('div', 'moderation-tools');
    this.tools = tools;
    tools.append(
      button('Mute all speakers', 'btn-secondary', (node) => this.muteAll(true, node)),
      button('Unmute all', 'btn-secondary', (node) => this.muteAll(false, node)),
    );
    this.list = element('ul', 'stage moderation-list');
    this.list.id = 'moderation-list';
    this.message = element('div', 'notice');
    this.message.setAttribute('role', 'alert');
    this.message.hidden = true;
    const log = element('details', 'moderation-log');
    const summary = element('summary', '', 'Moderation log');
    this.logList = element('ol', 'moderation-entries');
    log.append(summary, this.logList);
    log.addEventListener('toggle', () => { if (log.open) this.loadLog(); });
    this.log = log;
    section.append(heading, tools, this.list, this.message, log);
    const anchor = document.getElementById('stage');
    (anchor ? anchor.closest('section') : document.querySelector('main')).after(section);
  }

  say(text, kind = 'error') {
    this.message.hidden = !text;
    this.message.dataset.kind = kind;
    this.message.textContent = text;
  }

  render(state) {
    this.tools.hidden = state.status === 'ended'; // nobody left to mute
    const stage = (Array.isArray(state.stage) ? state.stage : []).filter(this.mayActOn);
    const key = JSON.stringify(stage);
    if (key === this.stageKey) return;
    this.stageKey = key;
    if (!stage.length) {
      this.list.replaceChildren(element('li', 'stage-empty', 'No speakers to moderate.'));
      return;
    }
    this.list.replaceChildren(...stage.map((member) => this.item(member)));
  }

  item(member) {
    const name = member.name || 'Speaker';
    const item = element('li', 'member moderation-item');
    item.dataset.sessionId = member.id;
    item.dataset.muted = String(Boolean(member.muted));
    const text = element('span', 'member-text');
    const status = [ROLE_LABELS[member.role] || member.role];
    if (member.muted) status.push(member.locked ? 'muted, locked' : 'muted');
    text.append(element('span', 'member-name', name), element('span', 'member-role', status.join(' · ')));
    const actions = element('span', 'moderation-actions');
    actions.append(
      member.muted
        ? button('Unmute', 'btn-secondary', (n) => this.mute(member, false, false, n), `Unmute ${name}`)
        : button('Mute', 'btn-secondary', (n) => this.mute(member, true, false, n), `Mute ${name}`),
      member.locked
        ? button('Unlock', 'btn-secondary', (n) => this.mute(member, true, false, n), `Let ${name} unmute`)
        : button('Lock', 'btn-secondary', (n) => this.mute(member, true, true, n), `Lock ${name} muted: they cannot unmute themselves`),
      button('Remove', 'btn-quiet-danger', (n) => this.remove(member, n), `Remove ${name} from the stage`),
      button('Block', 'btn-quiet-danger', (n) => this.block(member, n), `Block ${name} for the rest of the space`),
    );
    item.append(text, actions);
    return item;
  }

  async act(node, call) {
    node.disabled = true;
    this.say('');
    try {
      await call();
      this.stageKey = '';
      await this.refresh();
      if (this.log.open) await this.loadLog();
    } catch (error) {
      this.say(describeError(error));
    } finally {
      node.disabled = false;
    }
  }

  mute(member, muted, locked, node) {
    const json = muted ? { muted, locked } : { muted };
    const path = `${this.base}/stage/${encodeURIComponent(member.id)}/mute`;
    return this.act(node, () => api(path, { method: 'POST', token: this.token, json }));
  }

  muteAll(muted, node) {
    return this.act(node, () => api(`${this.base}/stage/mute`, { method: 'POST', token: this.token, json: { muted } }));
  }

  remove(member, node) {
    const path = `${this.base}/stage/${encodeURIComponent(member.id)}`;
    return this.act(node, () => api(path, { method: 'DELETE', token: this.token }));
  }

  block(member, node) {
    const name = member.name || 'this speaker';
    if (!window.confirm(`Block ${name}? Their invite is revoked and this device may not listen or speak here again.`)) return null;
    return this.act(node, () => api(`${this.base}/blocks`, { method: 'POST', token: this.token, json: { session: member.id } }));
  }

  async loadLog() {
    try {
      const body = await api(`${this.base}/moderation`, { token: this.token });
      const entries = Array.isArray(body.entries) ? body.entries.slice(-20).reverse() : [];
      if (!entries.length) {
        this.logList.replaceChildren(element('li', 'muted', 'Nothing yet.'));
        return;
      }
      this.logList.replaceChildren(...entries.map((entry) => element(
        'li',
        '',
        `${formatWhen(entry.at)}: ${actorLabel(entry)} ${ACTION_LABELS[entry.action] || entry.action} ${entry.target_name || entry.target}`,
      )));
    } catch (error) {
      this.say(describeError(error));
    }
  }
}

// One call from the host page (or a co-host's speak page, `actorRole: 'cohost'`): the panel builds
// itself after the "On stage" card; the page then calls its render(state) with every state.json.
export function mountModerationPanel({ spaceId, token, refresh, actorRole = 'host' }) {
  return token ? new ModerationPanel({ spaceId, token, refresh, actorRole }) : null;
}
