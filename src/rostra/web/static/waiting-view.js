// The waiting room as a listener sees it: the program already plays from the edge, and a line
// under the player says how long until they are counted ("In line to be counted: about 12 s").
// Also the wait itself: Retry-After × U(1, 1.5), cut short when the space's queue.json (cached
// at the edge, so polling it costs the gate nothing) shows that the line has reached this
// listener's number.

const QUEUE_POLL_MS = 2000;
const MIN_WAIT_S = 1;
const TICK_MS = 1000;

// "12 s", "about 3 min"
export function formatWait(seconds) {
  const s = Math.max(1, Math.round(Number(seconds) || 0));
  if (s < 90) return `${s} s`;
  return `${Math.round(s / 60)} min`;
}

export function waitingText(seconds) {
  return `In line to be counted: about ${formatWait(seconds)}`;
}

// Shows the wait in `element` ({ seconds }), or hides it (null).
export function renderWaiting(element, wait) {
  if (!element) return;
  if (!wait) {
    element.hidden = true;
    element.textContent = '';
    return;
  }
  element.hidden = false;
  const text = waitingText(wait.seconds);
  if (element.textContent !== text) element.textContent = text;
}

// The seconds the line says are left for `number`, or null when queue.json cannot tell.
async function secondsFromQueue(queueUrl, number) {
  try {
    const response = await fetch(queueUrl, { headers: { Accept: 'application/json' } });
    if (!response.ok) return null;
    const queue = await response.json();
    const watermark = Number(queue.admitted_watermark);
    const rate = Number(queue.rate);
    if (!Number.isFinite(watermark) || !Number.isFinite(rate) || rate <= 0) return null;
    return Math.max(0, (number - watermark) / rate);
  } catch {
    return null;
  }
}

// Waits as the waiting room asked (`problem`: {position, retry_after_s, number}, `retryAfterS`:
// the Retry-After header), calling onWait({ seconds, position }) about every second.
export async function waitInLine(problem, retryAfterS, { queueUrl, onWait = () => {} } = {}) {
  const askedS = Math.max(MIN_WAIT_S, Number(retryAfterS) || Number(problem.retry_after_s) || 0);
  const waitMs = askedS * (1 + Math.random() * 0.5) * 1000;
  const number = Number(problem.number);
  const startMs = performance.now();
  let estimateS = Number(problem.retry_after_s) || askedS;
  let nextPollMs = startMs + QUEUE_POLL_MS;
  for (;;) {
    const elapsedMs = performance.now() - startMs;
    if (elapsedMs >= waitMs) return;
    onWait({ seconds: Math.max(0, estimateS - elapsedMs / 1000), position: problem.position });
    await new Promise((resolve) => setTimeout(resolve, Math.min(TICK_MS, waitMs - elapsedMs)));
    if (queueUrl && Number.isFinite(number) && performance.now() >= nextPollMs) {
      nextPollMs = performance.now() + QUEUE_POLL_MS;
      const leftS = await secondsFromQueue(queueUrl, number);
      if (leftS === 0) return; // the line has reached this number: ask again now
      if (leftS !== null) estimateS = leftS + (performance.now() - startMs) / 1000;
    }
  }
}
