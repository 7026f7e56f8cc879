// Health of the message endpoints, for diagnostics and alarms: an HTTP OPTIONS request to each
// URL every intervalS. Any HTTP answer below 500 means the endpoint is there (a 405 to OPTIONS
// still proves a listening HTTP server); 5xx, timeouts and connection or TLS errors mean down.
// Each probe opens its own connection, so it also proves that new connections and the TLS
// handshake (with the configured CA) work.
import http from 'node:http';
import https from 'node:https';
import { USER_AGENT } from './http-post.js';

export interface EndpointStatus {
  url: string;
  up: boolean;
  /** When `up` last changed (or the first result came). */
  since: number;
  lastStatus: number | null;
  lastError: string | null;
}

export interface ProberOptions {
  /** Seconds between probes of one URL; 0: no probing. */
  intervalS: number;
  timeoutMs: number;
  ca: Buffer | null;
}

interface Probed {
  status: EndpointStatus;
  known: boolean;
  req: http.ClientRequest | null;
}

export class EndpointProber {
  private readonly probed: Probed[];
  private timer: NodeJS.Timeout | null = null;

  constructor(urls: string[], private readonly opts: ProberOptions, private readonly onChange: (s: EndpointStatus) => void) {
    const now = Date.now();
    this.probed = [...new Set(urls)].map((url) => ({
      status: { url, up: false, since: now, lastStatus: null, lastError: 'not probed yet' },
      known: false,
      req: null,
    }));
  }

  start(): void {
    if (this.timer !== null || this.opts.intervalS <= 0) return;
    this.timer = setInterval(() => this.probeAll(), this.opts.intervalS * 1000);
    this.timer.unref();
    this.probeAll();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const p of this.probed) {
      p.req?.destroy();
      p.req = null;
    }
  }

  status(): EndpointStatus[] {
    return this.probed.map((p) => ({ ...p.status }));
  }

  private probeAll(): void {
    // A probe still waiting (timeout longer than the interval) is not doubled.
    for (const p of this.probed) if (p.req === null) this.probe(p);
  }

  private probe(p: Probed): void {
    let done = false;
    const result = (up: boolean, status: number | null, error: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      p.req = null;
      if (this.timer === null) return; // stopped meanwhile
      this.record(p, up, status, error);
    };
    let u: URL;
    try {
      u = new URL(p.status.url);
    } catch {
      return this.record(p, false, null, 'invalid URL');
    }
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(u, {
      method: 'OPTIONS',
      agent: false,
      headers: { 'User-Agent': USER_AGENT },
      ...(u.protocol === 'https:' && this.opts.ca !== null ? { ca: this.opts.ca } : {}),
    }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      req.destroy();
      result(status < 500, status, status < 500 ? null : `HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`);
    });
    p.req = req;
    const timer = setTimeout(() => {
      result(false, null, `timeout after ${this.opts.timeoutMs} ms`);
      req.destroy();
    }, this.opts.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => result(false, null, err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message));
    req.end();
  }

  private record(p: Probed, up: boolean, status: number | null, error: string | null): void {
    const s = p.status;
    const changed = !p.known || s.up !== up;
    s.lastStatus = status;
    s.lastError = error;
    if (changed) {
      s.up = up;
      s.since = Date.now();
      p.known = true;
      try {
        this.onChange({ ...s });
      } catch {
        // A listener's fault is not the prober's: probing goes on.
      }
    }
  }
}
