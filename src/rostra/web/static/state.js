// Polls a space's state.json (status, stage, counts). The file is cacheable for 1 s, so every
// listener's poll can be answered by the edge; polls are spread with jitter and slow down while
// the tab is hidden.
import { request } from './api.js';
import { spaceUrls } from './space-url.js';

const POLL_MS = 2500;
const HIDDEN_POLL_MS = 15000;
const JITTER = 0.15;

function jittered(ms) {
  return Math.round(ms * (1 - JITTER + Math.random() * 2 * JITTER));
}

// Calls onState(state) after each successful poll and onError(error) after a failed one.
// Returns { refresh({ fresh }), stop() }; refresh({ fresh: true }) bypasses the browser cache
// (after the user changed something, so the page does not show the state from before).
export function watchState(spaceId, { onState, onError = () => {}, intervalMs = POLL_MS }) {
  const url = spaceUrls(spaceId).state;
  let timer = null;
  let isStopped = false;
  let running = null;

  async function poll(fresh) {
    try {
      const response = await request(url, {
        headers: { Accept: 'application/json' },
        cache: fresh ? 'no-cache' : 'default',
      });
      onState(await response.json());
    } catch (error) {
      onError(error);
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (isStopped) return;
    timer = setTimeout(() => refresh(), jittered(document.hidden ? HIDDEN_POLL_MS : intervalMs));
  }

  function refresh({ fresh = false } = {}) {
    clearTimeout(timer);
    const previous = running || Promise.resolve();
    const chain = previous.then(() => poll(fresh)).finally(() => {
      if (running === chain) running = null;
      schedule();
    });
    running = chain;
    return chain;
  }

  function onVisible() {
    if (!document.hidden && !isStopped) refresh();
  }
  document.addEventListener('visibilitychange', onVisible);
  refresh();

  return {
    refresh,
    stop() {
      isStopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}
