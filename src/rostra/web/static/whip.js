// A WHIP client (RFC 9725): publish one audio track to a space's stage and receive the
// mix-minus (everyone else) on the same connection. The server gathers its ICE candidates before
// answering and does not take trickle ICE, so the offer waits for gathering too (bounded).
import { ApiError, request } from './api.js';

const ICE_GATHERING_TIMEOUT_MS = 2000;
const SDP_TYPE = 'application/sdp';

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
// answered to an OPTIONS request before the offer is made.
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

async function iceServers(endpoint) {
  try {
    const response = await fetch(endpoint, { method: 'OPTIONS' });
    return parseIceLinks(response.headers.get('Link'));
  } catch {
    return []; // no STUN/TURN: host candidates only, as on a LAN or on localhost
  }
}

export class WhipSession {
  constructor(pc, resourceUrl, token, remoteStream) {
    this.pc = pc;
    this.resourceUrl = resourceUrl;
    this.token = token;
    this.remoteStream = remoteStream;
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
export async function publish(endpoint, token, track, { iceTimeoutMs = ICE_GATHERING_TIMEOUT_MS } = {}) {
  const pc = new RTCPeerConnection({
    bundlePolicy: 'max-bundle',
    iceServers: await iceServers(endpoint),
  });
  const remoteStream = new MediaStream();
  pc.addEventListener('track', (event) => remoteStream.addTrack(event.track));
  try {
    pc.addTransceiver(track, { direction: 'sendrecv' });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc, iceTimeoutMs);
    const response = await request(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': SDP_TYPE, Authorization: `Bearer ${token}` },
      body: pc.localDescription.sdp,
    });
    const location = response.headers.get('Location');
    if (!location) throw new ApiError(response.status, 'The WHIP answer has no Location header.');
    const session = new WhipSession(pc, new URL(location, response.url).href, token, remoteStream);
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
