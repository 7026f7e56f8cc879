// One HTTP(S) POST of a JSON message, classified for the delivery worker: delivered, retry
// later, or refused for good. Never rejects.
import http from 'node:http';
import https from 'node:https';

export type PostResult =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; status?: number; error: string; retryAfterMs?: number }
  /** status 0: the URL itself cannot be used (no HTTP answer will ever come). */
  | { kind: 'permanent'; status: number; error: string };

export interface PostOptions {
  /** Whole exchange: connect, TLS, request, response and its body. */
  timeoutMs: number;
  /** CA(s) for https: (PEM); null/absent: the system CAs. */
  ca?: Buffer | null;
  /** Agent to use; absent: a shared keep-alive agent for the URL's origin. */
  agent?: http.Agent;
  /** Aborting gives a `retry` result at once. */
  signal?: AbortSignal;
}

export const USER_AGENT = 'amk-bridge';

/** How much of an error response's body goes into the error text. */
const SNIPPET_BYTES = 200;

/**
 * Keep-alive agents, one per origin, so a message rides an open connection (no TCP or TLS
 * handshake on the way to the region). https agents carry the configured CA.
 */
export class AgentPool {
  private readonly agents = new Map<string, http.Agent>();

  constructor(private readonly ca: Buffer | null = null) {}

  get(url: URL): http.Agent {
    let a = this.agents.get(url.origin);
    if (a === undefined) {
      // lifo: the most recently used socket is the least likely to have been closed by the server.
      const o = { keepAlive: true, keepAliveMsecs: 10_000, scheduling: 'lifo' as const };
      a = url.protocol === 'https:' ? new https.Agent(this.ca === null ? o : { ...o, ca: this.ca }) : new http.Agent(o);
      this.agents.set(url.origin, a);
    }
    return a;
  }

  destroy(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

let systemCaPool: AgentPool | null = null;
const caPools = new WeakMap<Buffer, AgentPool>();

function sharedPool(ca: Buffer | null): AgentPool {
  if (ca === null) return (systemCaPool ??= new AgentPool(null));
  let p = caPools.get(ca);
  if (p === undefined) caPools.set(ca, (p = new AgentPool(ca)));
  return p;
}

/**
 * POST `body` (JSON text) to `url`. 2xx: delivered. 408, 429, 5xx, network errors, TLS errors
 * and timeouts: retry (with Retry-After on 429/503). Other 4xx and 3xx: permanent (a redirect
 * is not followed: the region configures the URL it wants).
 * The request is written before this returns: the caller's tick puts it on the wire.
 */
export function postJson(url: string, body: string, headers: Record<string, string>, opts: PostOptions): Promise<PostResult> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.resolve({ kind: 'permanent', status: 0, error: `invalid URL: ${url}` });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return Promise.resolve({ kind: 'permanent', status: 0, error: `not an http(s) URL: ${url}` });
  const agent = opts.agent ?? sharedPool(opts.ca ?? null).get(u);
  const payload = Buffer.from(body, 'utf8');
  const all: Record<string, string> = {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': String(payload.length),
    'User-Agent': USER_AGENT,
  };
  return send(u, payload, all, opts, agent, true);
}

function send(u: URL, payload: Buffer, headers: Record<string, string>, opts: PostOptions, agent: http.Agent, mayResend: boolean): Promise<PostResult> {
  return new Promise<PostResult>((resolve) => {
    let settled = false;
    let status: number | null = null;
    let statusText = '';
    let resHeaders: http.IncomingHttpHeaders = {};
    const snippet: Buffer[] = [];
    let snippetLen = 0;
    let ourError: string | null = null;

    const finish = (r: PostResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const answered = () => classify(status!, statusText, resHeaders, Buffer.concat(snippet).toString('utf8'));
    const stop = (why: string) => {
      ourError = why;
      req.destroy(new Error(why));
    };
    const onAbort = () => stop('aborted');

    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(u, { method: 'POST', agent, headers, ...(opts.ca ? { ca: opts.ca } : {}) }, (res) => {
      status = res.statusCode ?? 0;
      statusText = res.statusMessage ?? '';
      resHeaders = res.headers;
      // The body is read to its end so the socket goes back to the pool.
      res.on('data', (c: Buffer) => {
        if (snippetLen < SNIPPET_BYTES) {
          snippet.push(c);
          snippetLen += c.length;
        }
      });
      res.on('end', () => finish(answered()));
      res.on('error', () => finish(answered()));
      res.on('aborted', () => finish(answered()));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (settled) return;
      // The status is what counts once it arrived; the body is a courtesy.
      if (status !== null) return finish(answered());
      // A kept-alive socket the server closed while idle: one fresh connection, at once,
      // rather than a backoff delay for nothing.
      if (mayResend && ourError === null && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'ECONNABORTED')) {
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve(send(u, payload, headers, opts, agent, false));
        return;
      }
      finish({ kind: 'retry', error: ourError ?? describe(err) });
    });
    const timer = setTimeout(() => stop(`timeout after ${opts.timeoutMs} ms`), opts.timeoutMs);
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    req.end(payload);
  });
}

function classify(status: number, text: string, headers: http.IncomingHttpHeaders, body: string): PostResult {
  if (status >= 200 && status < 300) return { kind: 'delivered', status };
  const brief = body.replace(/\s+/g, ' ').trim().slice(0, SNIPPET_BYTES);
  const error = `HTTP ${status}${text ? ` ${text}` : ''}${brief ? `: ${brief}` : ''}`;
  if (status === 408 || status === 429 || status >= 500) {
    const r: PostResult = { kind: 'retry', status, error };
    if (status === 429 || status === 503) {
      const after = retryAfterMs(headers['retry-after']);
      if (after !== undefined) r.retryAfterMs = after;
    }
    return r;
  }
  return { kind: 'permanent', status, error };
}

/** Retry-After as delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function retryAfterMs(v: string | undefined, now = Date.now()): number | undefined {
  if (v === undefined) return undefined;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function describe(err: NodeJS.ErrnoException): string {
  // TLS verification errors carry their reason in `code` (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE).
  return err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message;
}
