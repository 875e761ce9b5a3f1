// Proof-of-work for a join (ALTCHA): the challenge from a 401 challenge-required is solved in Web
// Workers running the `altcha` npm package's SHA solver, off the page's main thread, and turned
// into the payload the join sends back as {"altcha": …}.

const WORKER_URL = '/static/vendor/altcha-sha-worker.js';
const MAX_WORKERS = 4;
const TIMEOUT_MS = 90_000;

function workerCount() {
  const cores = Number(navigator.hardwareConcurrency) || 1;
  return Math.max(1, Math.min(MAX_WORKERS, cores));
}

// The base64 payload for `challenge` ({parameters, signature}); `onProgress(seconds)` is called
// about every half second while the workers search. Rejects when no worker finds the answer.
export async function solveChallenge(challenge, { onProgress = null } = {}) {
  if (!challenge || !challenge.parameters) throw new Error('The server sent no challenge to solve.');
  const count = workerCount();
  const workers = Array.from({ length: count }, () => new Worker(WORKER_URL));
  const startMs = performance.now();
  const ticker = onProgress
    ? setInterval(() => onProgress((performance.now() - startMs) / 1000), 500)
    : null;
  let givenUp = 0; // workers that stopped without an answer (their time ran out)
  try {
    // each worker tries every count-th counter from its own start: together they cover them all
    const solution = await Promise.race(
      workers.map(
        (worker, index) =>
          new Promise((resolve, reject) => {
            worker.addEventListener('error', (event) =>
              reject(new Error(event.message || 'The proof-of-work worker failed.')),
            );
            worker.addEventListener('message', (message) => {
              const data = message.data;
              if (data && data.error) reject(new Error(String(data.error)));
              else if (data) resolve(data);
              else if (++givenUp === count) reject(new Error('No answer was found in time.'));
            });
            worker.postMessage({
              type: 'work',
              challenge,
              counterMode: 'uint32',
              counterStart: index,
              counterStep: count,
              timeout: TIMEOUT_MS,
            });
          }),
      ),
    );
    const payload = {
      challenge: { parameters: challenge.parameters, signature: challenge.signature },
      solution,
    };
    return btoa(JSON.stringify(payload));
  } finally {
    if (ticker !== null) clearInterval(ticker);
    for (const worker of workers) worker.terminate();
  }
}
