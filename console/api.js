// The one way the console talks to the daemon: the JSON API, with the session cookie
// (`credentials: 'same-origin'`) and, on every request that changes something, the session's
// CSRF token in `X-CSRF-Token`. A 401 anywhere sends the user back to the login page.

let csrfToken = null;
let onUnauthorized = () => {};

/** The session's CSRF token (from login or `GET /console/session`). */
export function setCsrfToken(token) {
  csrfToken = token || null;
}

/** What to do when the API answers 401 (the session expired or was never there). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** An error the API answered: its status, message, the field it names, and any details. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = body && typeof body === 'object' ? body.error || {} : {};
    super(e.message || (typeof body === 'string' && body) || `HTTP ${status}`);
    this.status = status;
    this.field = e.field || null;
    this.problems = Array.isArray(e.problems) ? e.problems : [];
    this.warnings = Array.isArray(body?.warnings) ? body.warnings : [];
    this.body = body;
  }
}

/**
 * Calls the API. `body` is sent as JSON; `headers` adds request headers (If-Match).
 * Resolves to `{data, status, headers}`; rejects with an ApiError for any non-2xx answer.
 */
export async function api(method, path, body, headers = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) init.headers['X-CSRF-Token'] = csrfToken;
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (res.status === 401 && path !== '/console/login' && path !== '/console/session') onUnauthorized();
  if (!res.ok) throw new ApiError(res.status, data);
  return { data, status: res.status, headers: res.headers };
}

export const get = (path) => api('GET', path).then((r) => r.data);
export const post = (path, body) => api('POST', path, body ?? {}).then((r) => r.data);

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The items of a list answer: `{"items": [...]}` (paginated) or a bare array. */
export function itemsOf(data) {
  if (Array.isArray(data)) return { items: data, next: null };
  return { items: data?.items || [], next: data?.next ?? null };
}
