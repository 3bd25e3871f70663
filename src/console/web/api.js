// The site's JSON API, called with the bearer token the person signed in with.
// The token lives in sessionStorage: this tab only, gone when it closes, never a
// cookie (so no other site can make the browser send it).

const kTokenKey = 'depot.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(kTokenKey) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(kTokenKey, t);
  else sessionStorage.removeItem(kTokenKey);
}

// method, path under /api/v1 ("/packages"), optional JSON body; resolves to the
// answer's JSON, rejects with ApiError carrying the site's message.
export async function call(method, path, body, {signal} = {}) {
  const headers = {Authorization: 'Bearer ' + token()};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch('/api/v1' + path, {
      method, headers, signal, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'Unavailable', 'the site did not answer (' + e.message + ')');
  }
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : {}; } catch { json = null; }
  if (!resp.ok) {
    const err = json && json.error ? json.error : {code: String(resp.status), message: text};
    throw new ApiError(resp.status, err.code, err.message || `HTTP ${resp.status}`);
  }
  return json;
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);
export const patch = (path, body) => call('PATCH', path, body);
export const del = (path) => call('DELETE', path);

// Query string from an object, skipping empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v != null) q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}
