// How the audience count reads on the listener and host pages: ticketed listeners with their
// error, plain-player connections apart (never added together), peak, admitted, hands, and a
// note when the count could not be refreshed.
import { formatCount } from './stage-view.js';

// below this many listeners the error is a fraction of one person: say nothing about it
const ERROR_SHOWN_FROM = 100;

// "±1 %" for a relative 1σ of 0.01; "" when the count is small or the error unknown.
export function formatError(listeners, error) {
  const count = Number(listeners);
  const relative = Number(error);
  if (!Number.isFinite(count) || count < ERROR_SHOWN_FROM) return '';
  if (!Number.isFinite(relative) || relative <= 0) return '';
  const percent = relative * 100;
  const digits = percent < 10 ? 1 : 0;
  const text = percent.toFixed(digits).replace(/\.0$/, '');
  return `±${text} %`;
}

function setText(element, text) {
  if (element && element.textContent !== text) element.textContent = text;
}

// Fills whichever of `elements` exist (listeners, error, stale, peak, admitted, streamListeners,
// hands, waiting, waitingRow) from a state.json.
export function renderCounts(elements, state) {
  const error = formatError(state.listeners, state.error);
  setText(elements.listeners, formatCount(state.listeners));
  if (elements.error) {
    setText(elements.error, error);
    elements.error.hidden = !error;
    elements.error.title = error ? 'Relative error of the estimate (1σ)' : '';
  }
  if (elements.stale) elements.stale.hidden = state.stale !== true;
  setText(elements.peak, formatCount(state.peak));
  setText(elements.admitted, formatCount(state.admitted));
  setText(elements.streamListeners, formatCount(state.stream_listeners));
  setText(elements.hands, formatCount(state.hands));
  // in line to be counted (the waiting room): shown beside the count, never added to it
  setText(elements.waiting, formatCount(state.waiting || 0));
  if (elements.waitingRow) elements.waitingRow.hidden = !(Number(state.waiting) > 0);
}
