// The platform's API as the page uses it: same-origin fetches, the session in HttpOnly cookies
// (the page never sees a token), the CSRF header on every state-changing call, one refresh and
// retry on a 401, and problem+json answers thrown as Problem.

export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || (status === 0 ? 'network' : `http_${status}`);
  }
}

export function cookie(name) {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return '';
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function newKey() {
  return crypto.randomUUID();
}

async function send(path, { method = 'GET', body, headers = {} } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (UNSAFE.has(method)) h['X-CSRF-Token'] = cookie('boxoffice_csrf');
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new Problem(0, { code: 'network', detail: String(e) });
  }
  return resp;
}

async function parse(resp) {
  if (resp.status === 204) return null;
  const type = resp.headers.get('content-type') || '';
  const body = type.includes('json') ? await resp.json().catch(() => null) : null;
  if (!resp.ok && resp.status !== 202) throw new Problem(resp.status, body);
  return body;
}

let refreshing = null;

/** Trades the refresh cookie for a new pair, once for concurrent callers. */
export function refresh() {
  if (!refreshing) {
    refreshing = send('/web/session/refresh', { method: 'POST' })
      .then((r) => r.ok)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/** Calls the API; a 401 is retried once after a refresh. */
export async function api(path, opts = {}) {
  let resp = await send(path, opts);
  if (resp.status === 401 && !path.startsWith('/web/session') && session.canRefresh) {
    if (await refresh()) resp = await send(path, opts);
    else session.set({ signed_in: false, can_refresh: false, sandbox: session.sandbox });
  }
  return parse(resp);
}

/** What the page knows of the session (never the tokens). */
export const session = {
  signedIn: false,
  canRefresh: false,
  sandbox: false,
  accountId: null,
  listeners: [],
  set(s) {
    this.signedIn = !!s.signed_in;
    this.canRefresh = !!s.can_refresh || this.signedIn;
    this.sandbox = !!s.sandbox;
    this.accountId = s.account_id || null;
    for (const f of this.listeners) f(this);
  },
  async load() {
    const s = await parse(await send('/web/session'));
    if (!s.signed_in && s.can_refresh) {
      this.canRefresh = true;
      if (await refresh()) return this.load();
      s.can_refresh = false;
    }
    this.set(s);
    return this;
  },
  async login(email, password) {
    await api('/web/session/login', { method: 'POST', body: { email, password } });
    return this.load();
  },
  async logout() {
    await api('/web/session/logout', { method: 'POST' });
    this.set({ signed_in: false, sandbox: this.sandbox });
  },
};

/**
 * A server-sent event stream read with fetch (EventSource cannot send the admission pass):
 * calls onEvent(type, data, id) for each event, reconnects with Last-Event-ID, and stops when
 * the returned function is called.
 */
export function stream(path, headers, onEvent, onState = () => {}) {
  const ctrl = new AbortController();
  let lastId = null;
  let stopped = false;
  let backoff = 500;
  async function run() {
    while (!stopped) {
      try {
        const h = { Accept: 'text/event-stream', ...headers };
        if (lastId) h['Last-Event-ID'] = lastId;
        const resp = await fetch(path, { headers: h, signal: ctrl.signal, credentials: 'same-origin' });
        if (!resp.ok) {
          const body = await resp.json().catch(() => null);
          onState('error', new Problem(resp.status, body));
          if (resp.status === 403 || resp.status === 404) return;
          throw new Error(`stream ${resp.status}`);
        }
        onState('open');
        backoff = 500;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end;
          while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end).replace(/^\r?\n\r?\n/, '');
            let type = 'message';
            let id = null;
            const data = [];
            for (const line of block.split(/\r?\n/)) {
              if (line.startsWith(':')) continue;
              const i = line.indexOf(':');
              const field = i < 0 ? line : line.slice(0, i);
              const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
              if (field === 'event') type = val;
              else if (field === 'data') data.push(val);
              else if (field === 'id') id = val;
            }
            if (id) lastId = id;
            if (data.length) onEvent(type, data.join('\n'), id);
          }
        }
      } catch (e) {
        if (stopped) return;
        onState('reconnecting', e);
      }
      if (stopped) return;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 10000);
    }
  }
  run();
  return () => {
    stopped = true;
    ctrl.abort();
  };
}
