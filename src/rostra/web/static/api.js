// Calls to the Rostra HTTP API. Errors arrive as application/problem+json (RFC 9457): an ApiError
// carries the status, the problem's `detail` (shown to people as is) and its type slug.

export class ApiError extends Error {
  constructor(status, detail, slug = '', retryAfterS = null) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.slug = slug;
    this.retryAfterS = retryAfterS;
  }

  static async fromResponse(response) {
    let detail = `The server answered ${response.status} ${response.statusText}`.trim();
    let slug = '';
    const type = response.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try {
        const problem = await response.json();
        if (problem && typeof problem.detail === 'string' && problem.detail) {
          detail = problem.detail;
        }
        if (problem && typeof problem.type === 'string') {
          slug = problem.type.split('/').pop();
        }
      } catch {
        // a body that is not JSON leaves the status line as the message
      }
    }
    const retryAfterS = Number.parseFloat(response.headers.get('Retry-After') || '');
    return new ApiError(
      response.status,
      detail,
      slug,
      Number.isFinite(retryAfterS) && retryAfterS > 0 ? retryAfterS : null,
    );
  }
}

export const UNREACHABLE =
  'The server cannot be reached. Check your connection and try again.';

// fetch() that turns a network failure or an error status into an ApiError.
export async function request(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    if (error && error.name === 'AbortError') throw error;
    throw new ApiError(0, UNREACHABLE, 'network');
  }
  if (!response.ok) throw await ApiError.fromResponse(response);
  return response;
}

// A JSON call to the API; `token` goes in `Authorization: Bearer …`.
export async function api(path, { method = 'GET', token = null, json, headers: extra = {} } = {}) {
  const headers = { Accept: 'application/json', ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  const options = { method, headers, cache: 'no-store' };
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(json);
  }
  const response = await request(path, options);
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  return type.includes('json') ? response.json() : response.text();
}

// The message to show for any error: the problem's detail, or a plain description.
export function describeError(error) {
  if (error instanceof ApiError) return error.detail;
  if (error && error.message) return error.message;
  return String(error);
}
