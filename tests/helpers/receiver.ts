// A real HTTP(S) message receiver for tests, standing in for a region's endpoint: records every
// request, answers as the test's script says, and de-duplicates accepted messages by their
// Idempotency-Key like a real region would. Binds 127.0.0.1 (port 0 unless told), closes in
// teardown. HTTPS uses a self-signed certificate made with the openssl CLI.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ReceivedRequest {
  /** 1-based arrival number. */
  n: number;
  at: number;
  method: string;
  path: string;
  key: string | null;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Parsed body; undefined when it is not JSON. */
  json: unknown;
  /** What the receiver answered; null: no answer (hang/close) or not yet. */
  status: number | null;
}

export type ScriptAnswer = { status: number; delayMs?: number; headers?: Record<string, string>; body?: string } | 'hang' | 'close';
export type Script = (req: ReceivedRequest) => ScriptAnswer;

export interface TestCert {
  certPem: string;
  keyPem: string;
}

export interface Receiver {
  url(path?: string): string;
  port: number;
  received: ReceivedRequest[];
  /** Unique accepted (2xx) messages, first copy per Idempotency-Key. */
  accepted(): ReceivedRequest[];
  setScript(fn: Script): void;
  /** TCP connections accepted so far. */
  connections(): number;
  stop(): Promise<void>;
  /** The self-signed certificate (its own CA) when tls. */
  caPem?: string;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A self-signed certificate for 127.0.0.1 and localhost. */
export function makeCert(cn = '127.0.0.1'): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'amk-receiver-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ], { stdio: 'pipe' });
    return { certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startReceiver(
  t: Teardown,
  opts: { tls?: boolean; script?: Script; port?: number; cert?: TestCert } = {},
): Promise<Receiver> {
  let script: Script = opts.script ?? (() => ({ status: 200 }));
  const received: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let connections = 0;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const key = req.headers['idempotency-key'];
      const r: ReceivedRequest = {
        n: received.length + 1, at: Date.now(), method: req.method ?? '', path: req.url ?? '',
        key: typeof key === 'string' ? key : null, headers: req.headers, body, json, status: null,
      };
      received.push(r);
      const a = script(r);
      if (a === 'hang') return;
      if (a === 'close') {
        req.socket.destroy();
        return;
      }
      const answer = () => {
        timers.delete(timer);
        r.status = a.status;
        res.writeHead(a.status, { 'Content-Type': 'application/json', ...a.headers });
        res.end(a.body ?? (a.status < 300 ? '{"ok":true}' : `{"error":${a.status}}`));
      };
      const timer = setTimeout(answer, a.delayMs ?? 0);
      timers.add(timer);
    });
  };

  const cert = opts.tls ? (opts.cert ?? makeCert()) : null;
  const server: http.Server = cert ? https.createServer({ cert: cert.certPem, key: cert.keyPem }, handler) : http.createServer(handler);
  // A quiet client must not be cut off by the server's defaults during a test.
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const proto = cert ? 'https' : 'http';

  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= new Promise<void>((resolve) => {
      for (const tm of timers) clearTimeout(tm);
      timers.clear();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    return stopped;
  };
  t.teardown(stop);

  const rx: Receiver = {
    url: (path = '/amk/messages') => `${proto}://127.0.0.1:${port}${path}`,
    port,
    received,
    accepted: () => {
      const seen = new Map<string, ReceivedRequest>();
      for (const r of received) {
        if (r.key !== null && r.status !== null && r.status >= 200 && r.status < 300 && !seen.has(r.key)) seen.set(r.key, r);
      }
      return [...seen.values()];
    },
    setScript: (fn) => {
      script = fn;
    },
    connections: () => connections,
    stop,
  };
  if (cert) rx.caPem = cert.certPem;
  return rx;
}
