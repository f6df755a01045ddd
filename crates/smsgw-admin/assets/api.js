// Calls to the service's /v1 API with the admin token, and the shapes of its answers.
// The token lives in this tab's sessionStorage only: never a cookie, never the URL.

const TOKEN_KEY = 'smsgw.admin.token';

/** What a secret looks like in answers, and what a PUT sends back to keep it. */
export const CENSORED = '__CENSORED__';

/** The message statuses of the /v1 API (issue 14), for the filter. */
export const STATUSES = ['queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'unknown'];

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

let unauthorized = () => {};
/** Called when the server answers 401 to a signed-in call (token revoked or wrong). */
export function onUnauthorized(fn) { unauthorized = fn; }

/** An answer that was not a success, with the problem+json body's fields. */
export class ApiError extends Error {
  constructor(status, problem) {
    const p = problem && typeof problem === 'object' ? problem : {};
    super(p.detail || p.title || (status ? `HTTP ${status}` : 'no answer'));
    this.status = status;
    this.problem = p;
    this.problems = problemList(p);
  }
}

// Every problem of a 422, whatever the list is called, as {key, message, scope}.
function problemList(p) {
  const list = p.problems || p.errors || p.invalid_params || p['invalid-params'] || [];
  if (!Array.isArray(list)) return [];
  return list.map((x) => {
    if (typeof x === 'string') return { key: null, message: x, scope: null };
    return {
      key: x.key ?? x.option ?? x.field ?? x.name ?? x.param ?? x.pointer ?? null,
      message: x.message ?? x.detail ?? x.reason ?? x.title ?? JSON.stringify(x),
      scope: x.scope ?? x.gateway ?? x.route ?? null,
    };
  });
}

/**
 * One call. `accept` lists non-2xx statuses the caller handles itself; every other failure
 * throws an ApiError. Waits at most `timeout` ms.
 */
export async function api(method, path, body, { timeout = 15000, accept = [] } = {}) {
  const headers = { Accept: 'application/json, application/problem+json' };
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeout);
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctrl.signal,
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch (e) {
    const title = e.name === 'AbortError' ? 'The service did not answer in time.' : 'The service cannot be reached.';
    throw new ApiError(0, { title });
  } finally {
    clearTimeout(timer);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text.slice(0, 500) }; }
  }
  if (!res.ok && !accept.includes(res.status)) {
    if (res.status === 401 && t) unauthorized();
    throw new ApiError(res.status, data);
  }
  return { status: res.status, data };
}

/** A path segment, escaped. */
export const seg = (s) => encodeURIComponent(s);

/** A list answer as an array of [id, entry], whether the API sends an array or an object. */
export function entries(data, listKey) {
  if (!data) return [];
  const list = Array.isArray(data) ? data : (data[listKey] ?? data.items ?? data);
  if (Array.isArray(list)) return list.map((e) => [e.id ?? e.name, e]);
  return Object.entries(list);
}

/** Where an entry is defined: 'file' (read-only) or 'database'. */
export function origin(entry) {
  const o = entry.source ?? entry.origin ?? entry.defined_in ?? entry.where;
  if (typeof o === 'string') return o.toLowerCase().startsWith('file') ? 'file' : 'database';
  if (entry.read_only === true || entry.readonly === true || entry.file === true) return 'file';
  return 'database';
}

let providersCache = null;
/** GET /v1/providers, once per page load. */
export async function providers() {
  if (!providersCache) {
    const { data } = await api('GET', '/v1/providers');
    providersCache = entries(data, 'providers').map(([name, p]) => ({ ...p, name: p.name ?? name }));
  }
  return providersCache;
}
