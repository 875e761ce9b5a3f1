// A listener's ticket for one space: asked for (join) when they press play, kept in localStorage
// so a reload reuses it, replaced when the gate renews it, given up when the gate refuses it
// (401/403) or it has expired. Leaving is a beacon, sent as the page goes away.
import { request } from './api.js';

const KEY_PREFIX = 'rostra.ticket.';
const DEFAULT_INTERVAL_S = 20;
const MIN_INTERVAL_S = 1;

// localStorage, or a stand-in that forgets (storage disabled, private mode quota, sandboxed frame)
function openStorage() {
  try {
    const storage = window.localStorage;
    const probe = `${KEY_PREFIX}probe`;
    storage.setItem(probe, '1');
    storage.removeItem(probe);
    return storage;
  } catch {
    const memory = new Map();
    return {
      get length() {
        return memory.size;
      },
      key: (index) => Array.from(memory.keys())[index] ?? null,
      getItem: (key) => (memory.has(key) ? memory.get(key) : null),
      setItem: (key, value) => memory.set(key, String(value)),
      removeItem: (key) => memory.delete(key),
    };
  }
}

function parseRecord(text) {
  try {
    const record = JSON.parse(text || 'null');
    if (!record || typeof record.ticket !== 'string' || !record.ticket) return null;
    return record;
  } catch {
    return null;
  }
}

// Expiry is judged on the server's clock: `offsetMs` (server minus this device, from the join's
// Date header) keeps a device whose clock is off from joining again at every heartbeat.
function isExpired(record, nowMs = Date.now()) {
  const expiresMs = Date.parse(record.expiresAt || '');
  const offsetMs = Number(record.offsetMs) || 0;
  return Number.isFinite(expiresMs) && expiresMs <= nowMs + offsetMs;
}

function serverOffsetMs(response) {
  const serverMs = Date.parse(response.headers.get('Date') || '');
  return Number.isFinite(serverMs) ? serverMs - Date.now() : 0;
}

// Tickets of other spaces that have expired are forgotten, so storage does not grow forever.
function forgetExpired(storage) {
  const keys = [];
  for (let index = 0; index < storage.length; index += 1) {
    const key = storage.key(index);
    if (key && key.startsWith(KEY_PREFIX)) keys.push(key);
  }
  for (const key of keys) {
    const record = parseRecord(storage.getItem(key));
    if (!record || isExpired(record)) storage.removeItem(key);
  }
}

export class TicketKeeper {
  constructor(spaceId, { storage = openStorage() } = {}) {
    this.spaceId = spaceId;
    this.base = `/api/v1/spaces/${encodeURIComponent(spaceId)}`;
    this.key = `${KEY_PREFIX}${spaceId}`;
    this.storage = storage;
    this.joining = null;
    this.isUsedHere = false; // this page joined or reused the ticket: leave when it goes away
    forgetExpired(storage);
  }

  // The kept ticket { ticket, expiresAt, intervalS }, or null when there is none or it expired.
  get current() {
    const record = parseRecord(this.storage.getItem(this.key));
    if (!record) return null;
    if (isExpired(record)) {
      this.storage.removeItem(this.key);
      return null;
    }
    return record;
  }

  get intervalMs() {
    const record = this.current;
    const seconds = Number(record && record.intervalS);
    const interval = Number.isFinite(seconds) ? seconds : DEFAULT_INTERVAL_S;
    return Math.max(MIN_INTERVAL_S, interval) * 1000;
  }

  save(record) {
    this.storage.setItem(this.key, JSON.stringify(record));
  }

  // The kept ticket, or a new one from one join (shared by everyone who asks meanwhile).
  // Throws the ApiError of a failed join; callers decide whether and when to try again.
  obtain() {
    const record = this.current;
    if (record) {
      this.isUsedHere = true;
      return Promise.resolve(record);
    }
    if (!this.joining) {
      this.joining = this.join().finally(() => {
        this.joining = null;
      });
    }
    return this.joining;
  }

  async join() {
    const response = await request(`${this.base}/join`, {
      method: 'POST',
      headers: { Accept: 'application/json' },
      cache: 'no-store',
    });
    const body = await response.json();
    const record = {
      ticket: body.ticket,
      expiresAt: body.expires_at,
      intervalS: Number(body.heartbeat_interval_s) || DEFAULT_INTERVAL_S,
      offsetMs: serverOffsetMs(response),
    };
    this.save(record);
    this.isUsedHere = true;
    return record;
  }

  // A heartbeat answered with a renewed ticket: use it from now on.
  adopt(renewed) {
    const record = this.current;
    if (!renewed || typeof renewed.ticket !== 'string') return;
    this.save({
      ticket: renewed.ticket,
      expiresAt: renewed.expires_at || '',
      intervalS: record ? record.intervalS : DEFAULT_INTERVAL_S,
      offsetMs: record ? record.offsetMs : 0,
    });
  }

  // The gate refused `ticket` (401 expired or forged, 403 another space's): forget it, unless a
  // newer one has replaced it meanwhile.
  drop(ticket) {
    const record = this.current;
    if (record && record.ticket === ticket) this.storage.removeItem(this.key);
  }

  // Tell the gate this listener is gone. sendBeacon cannot set headers, so the ticket goes in a
  // JSON body; text/plain keeps the beacon a simple request. The ticket stays kept for a reload.
  leave() {
    const record = this.current;
    if (!record || !this.isUsedHere) return false;
    this.isUsedHere = false;
    const url = `${this.base}/leave`;
    const body = JSON.stringify({ ticket: record.ticket });
    const blob = new Blob([body], { type: 'text/plain;charset=UTF-8' });
    if (navigator.sendBeacon && navigator.sendBeacon(url, blob)) return true;
    fetch(url, { method: 'POST', body, keepalive: true, headers: { 'Content-Type': 'text/plain' } })
      .catch(() => {});
    return true;
  }
}
