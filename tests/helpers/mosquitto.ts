// Debian's mosquitto for tests: its own port, config, password file and ACL in a temporary
// directory; killed in teardown (and by the process exit hook). stop()/start() restart it on
// the same port (persistence off), as a broker that goes away and comes back.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { trackChild } from './children.js';
import { freePort } from './ports.js';
import { makeCert } from './receiver.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const MOSQUITTO = '/usr/sbin/mosquitto';

export interface Mosquitto {
  url: string;
  /** mqtts:// on a second listener, when asked for; its certificate is self-signed (its own CA). */
  tlsUrl: string | null;
  certPem: string | null;
  port: number;
  dir: string;
  passwd: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  reload(): void;
  stderr(): string;
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); res(true); });
    s.on('error', () => res(false));
  });
}

export interface MosquittoOptions {
  tls?: boolean;
  /** user → password; none: anonymous access. */
  users?: Record<string, string>;
  /** acl_file lines (with users). */
  acl?: string[];
}

/** Debian's mosquitto on its own port and config, killed in teardown; start() again after stop(). */
export async function startMosquitto(t: Test, o: MosquittoOptions = {}): Promise<Mosquitto> {
  if (!existsSync(MOSQUITTO)) throw new Error(`${MOSQUITTO} missing: apt-get install mosquitto (npm test does it)`);
  const dir = await mkdtemp(join(tmpdir(), 'amk-mqtt-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort('tcp');
  const passwd = join(dir, 'passwd');
  const users = Object.entries(o.users ?? {});
  users.forEach(([user, pw], i) => execFileSync('mosquitto_passwd', ['-b', ...(i === 0 ? ['-c'] : []), passwd, user, pw]));
  if (o.acl) await writeFile(join(dir, 'acl'), [...o.acl, ''].join('\n'));
  let tls: string[] = [];
  let tlsPort: number | null = null;
  let certPem: string | null = null;
  if (o.tls) {
    const cert = makeCert();
    certPem = cert.certPem;
    tlsPort = await freePort('tcp');
    await writeFile(join(dir, 'cert.pem'), cert.certPem);
    await writeFile(join(dir, 'key.pem'), cert.keyPem, { mode: 0o600 });
    tls = [`listener ${tlsPort} 127.0.0.1`, `certfile ${join(dir, 'cert.pem')}`, `keyfile ${join(dir, 'key.pem')}`];
  }
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, [
    ...tls,
    `listener ${port} 127.0.0.1`,
    ...(users.length ? ['allow_anonymous false', `password_file ${passwd}`] : ['allow_anonymous true']),
    ...(o.acl ? [`acl_file ${join(dir, 'acl')}`] : []),
    'persistence false',
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    '',
  ].join('\n'));

  let child: ChildProcess | null = null;
  let err = '';
  const m: Mosquitto = {
    url: `mqtt://127.0.0.1:${port}`, port, dir, passwd,
    tlsUrl: tlsPort === null ? null : `mqtts://127.0.0.1:${tlsPort}`, certPem,
    async start() {
      const c = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      trackChild(c);
      child = c;
      let exited = false;
      c.once('exit', () => { exited = true; });
      c.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
      const end = Date.now() + 10_000;
      while (!(await portOpen(port)) || (tlsPort !== null && !(await portOpen(tlsPort)))) {
        if (exited) throw new Error(`mosquitto exited: ${err}`);
        if (Date.now() > end) throw new Error(`mosquitto not listening on ${port}: ${err}`);
        await sleep(20);
      }
    },
    async stop() {
      const c = child;
      child = null;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const gone = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      const killer = setTimeout(() => c.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(killer);
    },
    reload() {
      child?.kill('SIGHUP');
    },
    stderr: () => err,
  };
  t.teardown(() => m.stop());
  await m.start();
  return m;
}

