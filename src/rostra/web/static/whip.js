// A WHIP client (RFC 9725): publish one audio track to a space's stage and receive the
// mix-minus (everyone else) on the same connection. The server gathers its ICE candidates before
// answering and does not take trickle ICE, so the offer waits for gathering too (bounded).
//
// A lost origin is told from a deliberate end of the session (see watchSession): the server ends
// a session on purpose (host removal, DELETE of the resource, revoked invite, space ended) by
// closing the connection, which sends DTLS close_notify: the DTLS transport turns "closed". A
// crashed or restarted origin says nothing: the connection turns "failed", or "disconnected" and
// stays so. Only the second is worth publishing again (publishAgain: backoff with jitter).
import { ApiError, request } from './api.js';
import { DEVICE_HEADER, deviceId } from './device.js';

const ICE_GATHERING_TIMEOUT_MS = 2000;
const SDP_TYPE = 'application/sdp';
// "disconnected" this long (no answer to ICE consent checks) means the origin is gone
const DISCONNECTED_GRACE_MS = 5000;
// the origin sends the mix-minus without pause (silence included): none for this long means it is
// gone, even while the browser still calls the connection "connected" (Chromium keeps it so for
// tens of seconds after the far end died)
const SILENT_RETURN_MS = 4000;
const STATS_INTERVAL_MS = 1000;
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 8000;

function iceGatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onChange);
      resolve();
    }
    function onChange() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', onChange);
  });
}

// RFC 9725 §4.6: the server names its STUN/TURN servers in `Link: <url>; rel="ice-server"` headers,
// answered to an OPTIONS request before the offer is made. Rostra names them only to a request
// that carries the space's invite or host token (TURN credentials are not for anyone who asks).
export function parseIceLinks(header) {
  if (!header) return [];
  const servers = [];
  for (const entry of header.split(/,(?=\s*<)/)) {
    const url = /<([^>]+)>/.exec(entry);
    if (!url || !/rel="?ice-server"?/.test(entry)) continue;
    const server = { urls: url[1] };
    const username = /username="([^"]*)"/.exec(entry);
    const credential = /credential="([^"]*)"/.exec(entry);
    if (username) server.username = username[1];
    if (credential) server.credential = credential[1];
    servers.push(server);
  }
  return servers;
}

async function iceServers(endpoint, token) {
  try {
    const response = await fetch(endpoint, {
      method: 'OPTIONS',
      headers: { Authorization: `Bearer ${token}` },
    });
    return parseIceLinks(response.headers.get('Link'));
  } catch {
    return []; // no STUN/TURN: host candidates only, as on a LAN or on localhost
  }
}

export class WhipSession {
  constructor(pc, resourceUrl, token, remoteStream, endpoint) {
    this.pc = pc;
    this.resourceUrl = resourceUrl;
    this.token = token;
    this.remoteStream = remoteStream;
    this.endpoint = endpoint; // the URL this session was published to: publish again there
    this.isClosed = false;
  }

  // The stage session id: the last segment of the WHIP resource URL.
  get sessionId() {
    return new URL(this.resourceUrl).pathname.split('/').filter(Boolean).pop() || '';
  }

  // Leave the stage: DELETE the resource, then close the connection (even if the DELETE fails).
  async leave() {
    if (this.isClosed) return;
    this.isClosed = true;
    try {
      await request(this.resourceUrl, {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${this.token}` },
        keepalive: true,
      });
    } catch (error) {
      // 404: the server already ended the session (removed by the host, or the space ended)
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    } finally {
      this.pc.close();
    }
  }

  // Close the connection without telling the server (it already knows: removed, space ended).
  close() {
    this.isClosed = true;
    this.pc.close();
  }
}

// Publish `track` to `endpoint` (…/whip/{id}?name=…) with `token` as the Bearer credential.
//
// The answer's Opus fmtp line asks for the encoding (mono, full band, in-band FEC, no DTX, and
// `maxaveragebitrate`); the page sets no sender encoding parameters of its own. Chromium builds
// its Opus encoder from that line: measured at the origin, 57 kbit/s of payload for an answer
// asking 64 and 31 for one asking 32 (tests/web/test_speaker_quality.py), against 31 when the
// answer asked nothing. An RTCRtpSender `maxBitrate` only caps that rate (WebRTC takes the lower
// of the two), so setting it to the answer's own figure changes nothing, and a page constant
// could only lower what the server asked for.
export async function publish(endpoint, token, track, { iceTimeoutMs = ICE_GATHERING_TIMEOUT_MS } = {}) {
  const pc = new RTCPeerConnection({
    bundlePolicy: 'max-bundle',
    iceServers: await iceServers(endpoint, token),
  });
  const remoteStream = new MediaStream();
  pc.addEventListener('track', (event) => remoteStream.addTrack(event.track));
  try {
    pc.addTransceiver(track, { direction: 'sendrecv' });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc, iceTimeoutMs);
    const response = await request(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': SDP_TYPE, Authorization: `Bearer ${token}`, [DEVICE_HEADER]: deviceId() },
      body: pc.localDescription.sdp,
    });
    const location = response.headers.get('Location');
    if (!location) throw new ApiError(response.status, 'The WHIP answer has no Location header.');
    const resourceUrl = new URL(location, response.url).href;
    const session = new WhipSession(pc, resourceUrl, token, remoteStream, endpoint);
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
    } catch (error) {
      session.leave().catch(() => {}); // the server holds a session for us: free it
      throw error;
    }
    return session;
  } catch (error) {
    pc.close();
    throw error;
  }
}

// Calls onLost() once when the origin is gone (failed, disconnected for DISCONNECTED_GRACE_MS,
// closed without session.close(), or no mix-minus for SILENT_RETURN_MS), or onEnded() once when the server closed the session on purpose
// (DTLS close_notify). Returns a function that stops watching.
export function watchSession(session, { onLost, onEnded, graceMs = DISCONNECTED_GRACE_MS }) {
  const { pc } = session;
  const transport = pc.getSenders().map((sender) => sender.transport).find(Boolean) || null;
  let timer = null;
  let isDone = false;
  function finish(callback) {
    if (isDone || session.isClosed) return;
    isDone = true;
    stop();
    callback();
  }
  function onConnection() {
    const state = pc.connectionState;
    if (state !== 'disconnected') {
      clearTimeout(timer);
      timer = null;
    }
    if (state === 'failed' || state === 'closed') finish(onLost);
    else if (state === 'disconnected' && timer === null) {
      timer = setTimeout(() => finish(onLost), graceMs);
    }
  }
  function onTransport() {
    if (transport.state === 'closed') finish(onEnded);
    else if (transport.state === 'failed') finish(onLost);
  }
  let lastBytes = -1;
  let lastChangeMs = performance.now();
  async function onStats() {
    let bytes = 0;
    try {
      (await pc.getStats()).forEach((report) => {
        if (report.type === 'inbound-rtp' && report.kind === 'audio') bytes += report.bytesReceived;
      });
    } catch {
      return; // closed meanwhile
    }
    const nowMs = performance.now();
    if (bytes !== lastBytes) {
      lastBytes = bytes;
      lastChangeMs = nowMs;
    } else if (bytes > 0 && nowMs - lastChangeMs > SILENT_RETURN_MS) {
      finish(onLost);
    }
  }
  const statsTimer = setInterval(onStats, STATS_INTERVAL_MS);
  function stop() {
    clearTimeout(timer);
    clearInterval(statsTimer);
    pc.removeEventListener('connectionstatechange', onConnection);
    if (transport) transport.removeEventListener('statechange', onTransport);
  }
  pc.addEventListener('connectionstatechange', onConnection);
  if (transport) transport.addEventListener('statechange', onTransport);
  return stop;
}

// A failure worth trying again: the network, an overloaded or restarting server (5xx, 429).
// Any other refusal (401, 403 revoked or blocked, 404 no such space, 409 stage full or ended)
// is final.
export function isRetryable(error) {
  if (!(error instanceof ApiError)) return true; // the offer or the connection failed locally
  return error.status === 0 || error.status === 429 || error.status >= 500;
}

// Publish `track` again to the endpoint `lost` was published to, after freeing its resource
// (best effort), with exponential backoff and jitter: FIRST_BACKOFF_MS doubling to
// MAX_BACKOFF_MS. Resolves with the new session; rejects with the first final refusal, or with
// an AbortError when `shouldGoOn()` turns false (the person left meanwhile).
export async function publishAgain(lost, track, { shouldGoOn = () => true } = {}) {
  lost.leave().catch(() => {}); // a live origin frees the seat; a restarted one answers 404
  let ceiling = FIRST_BACKOFF_MS;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, ceiling / 2 + (Math.random() * ceiling) / 2));
    if (!shouldGoOn()) throw new DOMException('The reconnection was given up.', 'AbortError');
    try {
      return await publish(lost.endpoint, lost.token, track);
    } catch (error) {
      if (!isRetryable(error)) throw error;
      const waitMs = error instanceof ApiError && error.retryAfterS ? error.retryAfterS * 1000 : 0;
      ceiling = Math.max(Math.min(ceiling * 2, MAX_BACKOFF_MS), waitMs);
    }
  }
}
