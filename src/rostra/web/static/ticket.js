// A listener's ticket for one space: asked for (join) when they press play, kept in localStorage
// (a page that went away without leaving reuses it), replaced when the gate renews it, given up
// when the gate refuses it (401/403) or it has expired. Leaving is a beacon, sent as the page goes
// away: it gives the ticket back, and the page keeps it apart as a returning record, so a reload
// after it joins again with that ticket and gets a new one for the same listener at once (no
// line, no proof-of-work, counted once; each ticket is exchanged once). A space under
// attack may ask for a proof-of-work first (401 challenge-required): it is solved in Web Workers
// (pow.js) and the join is sent again with the solution. Above the space's admission rate the
// join waits in line (503 waiting-room): it keeps the arrival token and asks again after
// Retry-After × U(1, 1.5), or sooner when queue.json shows the line has reached it.
import { ApiError, UNREACHABLE } from './api.js';
import { deviceId } from './device.js';
import { solveChallenge } from './pow.js';
import { waitInLine } from './waiting-view.js';

const KEY_PREFIX = 'rostra.ticket.';
// the ticket given back on leave, kept until a join exchanges it (or it expires)
const RETURNING_PREFIX = 'rostra.returning.';
const DEFAULT_INTERVAL_S = 20;
const MIN_INTERVAL_S = 1;
// challenges solved for one join at most (a new one comes when a solution arrived expired)
const MAX_CHALLENGE_ROUNDS = 3;
// times an arrival token may be refused (expired, already admitted) before the join gives up
const MAX_FRESH_ARRIVALS = 3;

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

// Tickets (and returning records) of other spaces that have expired are forgotten, so storage
// does not grow forever.
function forgetExpired(storage) {
  const keys = [];
  for (let index = 0; index < storage.length; index += 1) {
    const key = storage.key(index);
    if (key && (key.startsWith(KEY_PREFIX) || key.startsWith(RETURNING_PREFIX))) keys.push(key);
  }
  for (const key of keys) {
    const record = parseRecord(storage.getItem(key));
    if (!record || isExpired(record)) storage.removeItem(key);
  }
}

export class TicketKeeper {
  // `onStatus(text)` shows what a join is waiting for ('' once done): a proof-of-work, a queue
  // `onWaiting({ seconds, position })` while in the waiting room, `onWaiting(null)` once out
  // `onBlocked(error)` once the gate refused this device (403 device-blocked): the host blocked it
  // for the rest of the space, so the keeper asks no more (obtain() throws that error from then on)
  constructor(
    spaceId,
    { storage = openStorage(), onStatus = () => {}, onWaiting = () => {}, onBlocked = () => {} } = {},
  ) {
    this.spaceId = spaceId;
    this.onStatus = onStatus;
    this.onWaiting = onWaiting;
    this.onBlocked = onBlocked;
    this.blocked = null; // the ApiError of the refused join, once blocked
    this.queueUrl = `/live/${encodeURIComponent(spaceId)}/queue.json`;
    this.base = `/api/v1/spaces/${encodeURIComponent(spaceId)}`;
    this.key = `${KEY_PREFIX}${spaceId}`;
    this.returningKey = `${RETURNING_PREFIX}${spaceId}`;
    this.storage = storage;
    this.joining = null;
    this.arrival = null; // the arrival token of this page's place in the waiting room
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

  // The ticket this listener gave back on leave, not yet exchanged and not expired, or null.
  get returning() {
    const record = parseRecord(this.storage.getItem(this.returningKey));
    if (!record) return null;
    if (isExpired(record)) {
      this.storage.removeItem(this.returningKey);
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
    if (this.blocked) return Promise.reject(this.blocked);
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
    const fields = { device: deviceId() }; // the join's JSON body: {device, altcha?, arrival?, ticket?}
    // a join that failed (network) while in line keeps the place for the next attempt
    if (this.arrival) fields.arrival = this.arrival;
    // a returning listener (a reload after leave) exchanges the ticket it gave back
    const returning = this.arrival ? null : this.returning;
    if (returning) fields.ticket = returning.ticket;
    let response = null;
    let freshArrivals = 0;
    for (let challenges = 0; response === null; ) {
      try {
        response = await this.postJoin(fields);
      } catch (error) {
        // the given-back ticket refused (already exchanged, expired, forged): join as anyone does
        if (error instanceof ApiError && fields.ticket && (error.status === 401
          || error.status === 403)) {
          delete fields.ticket;
          this.storage.removeItem(this.returningKey);
          continue;
        }
        // 503 waiting-room: in line; keep the arrival token (the place, and a passed challenge)
        const line = error instanceof ApiError && error.status === 503
          && error.slug === 'waiting-room' && error.problem;
        if (line && typeof line.arrival === 'string') {
          fields.arrival = line.arrival;
          this.arrival = line.arrival;
          delete fields.altcha;
          await this.waitInLine(line, error.retryAfterS);
          continue;
        }
        // an arrival token refused (expired, spent): join again at the back of the line
        if (error instanceof ApiError && fields.arrival && String(error.slug).startsWith('arrival-')
          && freshArrivals < MAX_FRESH_ARRIVALS) {
          freshArrivals += 1;
          delete fields.arrival;
          this.arrival = null;
          continue;
        }
        this.onWaiting(null);
        if (error instanceof ApiError && error.slug === 'device-blocked') {
          this.blocked = error;
          this.onBlocked(error);
        }
        // 401 challenge-required: the problem carries the challenge; solve it, then ask again
        const challenge = error instanceof ApiError && error.status === 401
          && error.slug === 'challenge-required' && error.problem && error.problem.challenge;
        if (!challenge || challenges >= MAX_CHALLENGE_ROUNDS) throw error;
        challenges += 1;
        fields.altcha = await this.solve(challenge);
      }
    }
    this.onStatus('');
    this.onWaiting(null);
    this.arrival = null;
    this.storage.removeItem(this.returningKey);
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

  // One POST of the join; a refusal throws an ApiError that also keeps the problem document.
  async postJoin(fields) {
    const headers = { Accept: 'application/json' };
    const options = { method: 'POST', headers, cache: 'no-store' };
    if (Object.keys(fields).length > 0) {
      headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(fields);
    }
    let response;
    try {
      response = await fetch(`${this.base}/join`, options);
    } catch (error) {
      if (error && error.name === 'AbortError') throw error;
      throw new ApiError(0, UNREACHABLE, 'network');
    }
    if (response.ok) return response;
    const problem = await response.clone().json().catch(() => null);
    const error = await ApiError.fromResponse(response);
    error.problem = problem;
    throw error;
  }

  waitInLine(problem, retryAfterS) {
    return waitInLine(problem, retryAfterS, { queueUrl: this.queueUrl, onWait: this.onWaiting });
  }

  async solve(challenge) {
    this.onStatus('Checking your browser…');
    try {
      return await solveChallenge(challenge, {
        onProgress: (seconds) => this.onStatus(`Checking your browser… ${Math.round(seconds)} s`),
      });
    } finally {
      this.onStatus('');
    }
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
  // JSON body; text/plain keeps the beacon a simple request. Leaving gives the ticket back (the
  // gate refuses it from then on), so it is no longer used here: it is kept as the returning
  // record instead, which the next join exchanges for a new ticket of the same listener.
  leave() {
    const record = this.current;
    if (!record || !this.isUsedHere) return false;
    this.isUsedHere = false;
    this.storage.removeItem(this.key);
    this.storage.setItem(this.returningKey, JSON.stringify({
      ticket: record.ticket,
      expiresAt: record.expiresAt,
      offsetMs: record.offsetMs,
    }));
    const url = `${this.base}/leave`;
    const body = JSON.stringify({ ticket: record.ticket });
    const blob = new Blob([body], { type: 'text/plain;charset=UTF-8' });
    if (navigator.sendBeacon && navigator.sendBeacon(url, blob)) return true;
    fetch(url, { method: 'POST', body, keepalive: true, headers: { 'Content-Type': 'text/plain' } })
      .catch(() => {});
    return true;
  }
}
