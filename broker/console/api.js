// The console's only way to the broker: the public API with the signed-in user's own token.
// The token lives in sessionStorage (gone with the tab) and in memory, never in a URL; any 401
// signs the user out.

const TOKEN = 'mom.console.token';
const USER = 'mom.console.user';

/** An answer of the API in its error shape: {"error":{"code","message"}}. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let signedOutHandler = () => {};

/** Called (once per 401) when the broker no longer takes the token. */
export function onSignedOut(handler) {
  signedOutHandler = handler;
}

export function session() {
  const token = sessionStorage.getItem(TOKEN);
  const user = sessionStorage.getItem(USER);
  return token && user ? { token, ...JSON.parse(user) } : null;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(USER);
}

async function errorOf(res) {
  let code = 'http_' + res.status;
  let message = res.statusText || 'request failed';
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code;
      message = body.error.message;
    }
  } catch (_) {
    // Not JSON (a proxy's page): keep the status line.
  }
  return new ApiError(res.status, code, message);
}

/** Calls `method path` with a JSON body; resolves to the decoded answer (null for 204). */
export async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN);
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, 'network', 'the broker cannot be reached: ' + e.message);
  }
  if (res.status === 401 && token) {
    signOut();
    signedOutHandler();
  }
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** Signs in; remembers the token and whether the user is an admin. */
export async function signIn(username, password) {
  const res = await fetch('/v1/auth/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ username, password }),
    cache: 'no-store',
    credentials: 'omit',
  });
  if (!res.ok) throw await errorOf(res);
  const { access_token: token } = await res.json();
  sessionStorage.setItem(TOKEN, token);
  // Only an admin may list users: that is what makes the admin pages appear.
  let admin = false;
  try {
    await api('GET', '/v1/users');
    admin = true;
  } catch (e) {
    if (e.status !== 403) {
      signOut();
      throw e;
    }
  }
  sessionStorage.setItem(USER, JSON.stringify({ username, admin }));
  return session();
}

/** Path segment of a name (names are [A-Za-z0-9_-], but never trust that here). */
export const seg = (name) => encodeURIComponent(name);

/**
 * Reads a server-sent event stream with fetch, so the token goes in the Authorization header
 * (EventSource cannot set headers, and a token in the URL would end up in logs). Calls
 * `onEvent({id, data})` per event until `signal` aborts or the stream ends.
 */
export async function stream(path, onEvent, signal) {
  const s = session();
  const res = await fetch(path, {
    headers: { Accept: 'text/event-stream', Authorization: s ? 'Bearer ' + s.token : '' },
    cache: 'no-store',
    credentials: 'omit',
    signal,
  });
  if (res.status === 401 && s) {
    signOut();
    signedOutHandler();
  }
  if (!res.ok) throw await errorOf(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { id: '', data: '' };
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') data.push(val);
        else if (field === 'id') event.id = val;
      }
      if (data.length) {
        event.data = data.join('\n');
        onEvent(event);
      }
    }
  }
}

/**
 * Per-queue message rates from `/metrics` (counters of sent and received messages). Behind
 * NGINX each scrape may reach another broker and each broker counts only what it handled, so
 * the last sample is kept per node (`X-Mom-Node`) and the cluster's rate is the sum of every
 * node's own rate.
 */
export class Rates {
  constructor() {
    this.nodes = new Map(); // node -> {t, counters: Map(key -> value), rates: Map(key -> rate)}
  }

  async sample() {
    const res = await fetch('/metrics', { cache: 'no-store', credentials: 'omit' });
    if (!res.ok) return;
    const node = res.headers.get('x-mom-node') || 'unknown';
    const text = await res.text();
    const t = performance.now() / 1000;
    const counters = new Map();
    const re = /^mom_messages_(sent|received)_total\{([^}]*)\}\s+([0-9.eE+-]+)/;
    for (const line of text.split('\n')) {
      const m = re.exec(line);
      if (!m) continue;
      const labels = Object.fromEntries(
        [...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]),
      );
      if (labels.kind !== 'queue') continue;
      counters.set(m[1] + '/' + labels.name, Number(m[3]));
    }
    const last = this.nodes.get(node);
    const rates = new Map();
    if (last) {
      const dt = t - last.t;
      for (const [key, value] of counters) {
        const before = last.counters.get(key) ?? 0;
        // A restarted broker starts from 0: no rate from that pair.
        if (dt > 0 && value >= before) rates.set(key, (value - before) / dt);
      }
    }
    this.nodes.set(node, { t, counters, rates: last ? rates : new Map() });
  }

  /** Messages per second into (`sent`) or out of (`received`) queue `name`, over all nodes. */
  rate(kind, name) {
    let sum = 0;
    for (const n of this.nodes.values()) sum += n.rates.get(kind + '/' + name) ?? 0;
    return sum;
  }
}
