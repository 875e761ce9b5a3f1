// Where things are: the space id in this page's path, tokens in its query string, and the
// public URLs of a space's media (absolute, so they can be pasted into any player).

export function spaceIdFromPath(pathname = window.location.pathname) {
  const parts = pathname.split('/').filter(Boolean);
  return parts.length >= 2 ? decodeURIComponent(parts[1]) : '';
}

export function queryParam(name) {
  return new URLSearchParams(window.location.search).get(name) || '';
}

export function absolute(path) {
  return new URL(path, window.location.origin).href;
}

// Speakers publish to the origin's own WHIP endpoint (another port, or an edge route), which
// the server names in the page; listener workers never carry the speakers' path.
export function whipBase() {
  const meta = document.querySelector('meta[name="rostra-whip-base"]');
  return (meta && meta.content) || window.location.origin;
}

export function spaceUrls(spaceId) {
  const id = encodeURIComponent(spaceId);
  return {
    listen: absolute(`/listen/${id}`),
    hls: absolute(`/live/${id}/index.m3u8`),
    aac: absolute(`/live/${id}/stream.aac`),
    opus: absolute(`/live/${id}/stream.opus`),
    state: absolute(`/live/${id}/state.json`),
    replay: absolute(`/replay/${id}/index.m3u8`),
    download: absolute(`/replay/${id}/audio.m4a`),
    whip: `${whipBase()}/whip/${id}`,
    api: `/api/v1/spaces/${id}`,
  };
}
