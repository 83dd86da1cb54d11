// The admin API client. The session is the HttpOnly cookie the browser
// keeps; the CSRF token lives in this module's memory only (never in web
// storage) and goes back in X-CSRF-Token on every
// state-changing call. On a reload it is fetched again with GET /status.

let csrf = '';
const onLogout = new Set();

// A hint, not a secret: whether this tab had a session, so that a fresh tab
// does not ask /status (an expected 401 the browser would log as an error).
const HINT = 'portcullis.console.session';

export function setSession(token) {
  csrf = token;
  sessionStorage.setItem(HINT, '1');
}

export function hadSession() {
  return sessionStorage.getItem(HINT) === '1';
}

export function clearSession() {
  csrf = '';
  sessionStorage.removeItem(HINT);
}

// whenLoggedOut registers fn, called once the API answers 401.
export function whenLoggedOut(fn) {
  onLogout.add(fn);
}

// ApiError is a non-2xx answer: code, message and the field it names
// (the API's error JSON: {error, message, field}).
export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || body.error || `HTTP ${status}`);
    this.status = status;
    this.code = body.error || '';
    this.field = body.field || '';
  }
}

async function send(method, path, body) {
  const opt = { method, headers: {}, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
  if (body !== undefined) {
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body);
  }
  if (method !== 'GET' && csrf) {
    opt.headers['X-CSRF-Token'] = csrf;
  }
  let resp;
  try {
    resp = await fetch(path, opt);
  } catch {
    throw new ApiError(0, { error: 'network', message: 'the gateway did not answer' });
  }
  if (!resp.ok) {
    let b;
    try {
      b = await resp.json();
    } catch {
      b = { error: `http_${resp.status}`, message: resp.statusText };
    }
    const err = new ApiError(resp.status, b);
    if (resp.status === 401 && path !== '/auth/session') {
      clearSession();
      onLogout.forEach((fn) => fn());
    }
    throw err;
  }
  return resp;
}

// call sends a JSON request and returns the parsed JSON answer.
export async function call(method, path, body) {
  const resp = await send(method, path, body);
  return resp.json();
}

// download fetches a file answer and saves it under name: the bytes go into
// a Blob, an object URL, one click on a detached link, and the URL is
// revoked at once, so nothing of the profile stays in the page.
export async function download(method, path, name, jsonField) {
  const resp = await send(method, path);
  let blob;
  if (jsonField) {
    const v = await resp.json();
    blob = new Blob([v[jsonField]], { type: 'application/x-openvpn-profile' });
    name = v.filename || name;
  } else {
    blob = await resp.blob();
  }
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
  return name;
}
