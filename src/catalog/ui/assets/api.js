/**
 * The catalog's JSON API as the dashboard calls it: same origin, `Authorization: Bearer <token>`
 * when the person signed in with one. The token lives in session storage: it is gone when the
 * tab closes, and no other site can read it.
 */

const TOKEN_KEY = 'aios-catalog-token';

/** The API's root: the folder above the page (`/ui/` is served beside the API, maybe under a prefix). */
export const API_ROOT = new URL('../', window.location.href);

export function storedToken() {
  return window.sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function storeToken(token) {
  if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
  else window.sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer that was not a success: the HTTP status and the envelope's one sentence. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** Called with every 401 (a revoked or expired token while the page is open). */
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

/** Headers that authenticate a request with the stored token, if any. */
export function authHeaders() {
  const token = storedToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * Calls `path` (relative to the API root, e.g. `container_registries?limit=25`) and answers
 * `{data, total}` (`total` from `X-Total-Count`), or throws an ApiError.
 */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { accept: 'application/json', ...authHeaders() };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(new URL(path, API_ROOT), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'The catalog does not answer (network error)');
  }
  const text = await response.text();
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    envelope = undefined;
  }
  if (!response.ok) {
    const message = envelope?.error ?? `${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, message);
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  const total = response.headers.get('x-total-count');
  return { data: envelope?.data, total: total === null ? undefined : Number(total) };
}

/** `value` as a regex matching it literally (for name search in the query language). */
export function literalRegex(value) {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
