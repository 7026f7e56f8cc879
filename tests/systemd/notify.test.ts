// systemd integration: the unit file passes `systemd-analyze verify`, and the real daemon
// (dist/, as a child process) talks sd_notify to a NOTIFY_SOCKET receiver: READY=1 and STATUS=
// once it listens, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 then READY=1 around a
// SIGHUP reload, and STOPPING=1 on SIGTERM.
//
// The sender's pid: unix-dgram's receive path does not give the peer's credentials, so the
// receiver is a small Python program that binds the socket with SO_PASSCRED and reads the
// kernel-supplied SCM_CREDENTIALS (pid, uid, gid) of every datagram. Each datagram's pid is
// checked against the daemon's pid (the same check systemd makes for NotifyAccess=main).
import t from 'tap';
import type { Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { startDaemon } from '../helpers/daemon.js';
import { testConfigInput } from '../helpers/config.js';
import { trackChild } from '../helpers/children.js';
import { notifySocketAddress, SystemdNotifier, watchdogIntervalMs } from '../../src/systemd/notify.js';

const UNIT = resolve(import.meta.dirname, '../../systemd/amk-bridge.service');

const RECEIVER_PY = `
import json, socket, struct, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(path)
print(json.dumps({"bound": path}), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, uid, gid = struct.unpack("iII", cdata[:12])
    for line in data.decode("utf-8", "replace").split("\\n"):
        if line:
            print(json.dumps({"pid": pid, "msg": line}), flush=True)
`;

interface Datagram {
  pid: number | null;
  msg: string;
}

interface Receiver {
  path: string;
  got: Datagram[];
  /** Resolves once `count` datagrams (seen or future, from index `from`) match. */
  waitFor(pred: (d: Datagram) => boolean, what: string, opts?: { count?: number; from?: number; ms?: number }): Promise<number>;
}

/** A NOTIFY_SOCKET receiver bound in `dir` that records each datagram with its sender's pid. */
async function startReceiver(t: Test, dir: string): Promise<Receiver> {
  const path = join(dir, 'notify.sock');
  const script = join(dir, 'receiver.py');
  writeFileSync(script, RECEIVER_PY);
  const proc = spawn('python3', [script, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(proc);
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const got: Datagram[] = [];
  const listeners = new Set<() => void>();
  const bound = new Promise<void>((res, rej) => {
    proc.once('exit', (code) => rej(new Error(`receiver exited (${code}): ${stderr}`)));
    createInterface({ input: proc.stdout! }).on('line', (text) => {
      const o = JSON.parse(text) as { bound?: string } & Datagram;
      if (o.bound !== undefined) res();
      else got.push({ pid: o.pid, msg: o.msg });
      for (const l of [...listeners]) l();
    });
  });
  await bound;
  const waitFor: Receiver['waitFor'] = (pred, what, opts = {}) => {
    const { count = 1, from = 0, ms = 15_000 } = opts;
    return new Promise((res, rej) => {
      const check = (): boolean => {
        let n = 0;
        for (let i = from; i < got.length; i++) {
          if (pred(got[i]!) && ++n === count) {
            res(i);
            return true;
          }
        }
        return false;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        listeners.delete(l);
        rej(new Error(`timed out waiting for ${what}; got ${JSON.stringify(got)}`));
      }, ms);
      const l = (): void => {
        if (check()) {
          clearTimeout(timer);
          listeners.delete(l);
        }
      };
      listeners.add(l);
    });
  };
  return { path, got, waitFor };
}

function tempDir(t: Test, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// systemd-analyze comes with Debian's systemd package, which `npm test` installs when missing.
t.test('systemd-analyze verify accepts the unit', async (t) => {
  // Verified as shipped: ExecStart names /usr/bin/node and /opt/amk-bridge/...; verify checks the
  // executable (node), not the script argument, and a missing amk-bridge user is not an error.
  const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
  t.equal(r.status, 0, 'systemd-analyze verify exits 0', { stdout: r.stdout, stderr: r.stderr });
  t.notMatch(r.stderr, /Unknown key|Unknown section|Failed to parse|Invalid/i, 'no unknown or invalid settings', { stderr: r.stderr });
});

t.test('SystemdNotifier helpers', async (t) => {
  t.same(notifySocketAddress('/run/systemd/notify'), { path: '/run/systemd/notify', abstract: false });
  t.same(notifySocketAddress('@sd-notify'), { path: '\0sd-notify', abstract: true });
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42), 15_000, 'half of WATCHDOG_USEC');
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), 15_000, 'WATCHDOG_PID is ours');
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '43' }, 42), null, 'WATCHDOG_PID is another process');
  t.equal(watchdogIntervalMs({}, 42), null, 'no WATCHDOG_USEC');
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'x' }, 42), null, 'garbage WATCHDOG_USEC');
});

t.test('SystemdNotifier without NOTIFY_SOCKET is a no-op', async (t) => {
  const n = SystemdNotifier.fromEnv({ WATCHDOG_USEC: '1000' });
  t.equal(n.enabled, false);
  n.ready();
  n.status('x');
  n.startWatchdog();
  n.reloading();
  n.stopping();
  n.close();
});

t.test('SystemdNotifier logs a send error once and never throws', async (t) => {
  const dir = tempDir(t, 'amk-notify-unit-');
  const warnings: string[] = [];
  const logger = { warn: (_o: object, msg: string) => void warnings.push(msg) };
  const n = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: join(dir, 'missing.sock') }, { logger });
  n.ready();
  n.status('one');
  n.stopping();
  await new Promise((r) => setTimeout(r, 20));
  t.equal(warnings.length, 1, 'one warning for three failed sends');
  n.close();
  const abs = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: '@amk-test-abstract' }, { logger: { warn: (_o: object, msg: string) => void warnings.push(msg) } });
  abs.ready();
  abs.ready();
  t.equal(warnings.length, 2, 'an abstract name is reported once');
  abs.close();
});

t.test('SystemdNotifier sends from this process, watchdog at half of WATCHDOG_USEC', async (t) => {
  const dir = tempDir(t, 'amk-notify-unit-');
  const rx = await startReceiver(t, dir);
  const n = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: rx.path, WATCHDOG_USEC: '100000' });
  t.teardown(() => n.close());
  n.ready();
  n.status('listening; 0 calls');
  n.startWatchdog();
  await rx.waitFor((d) => d.msg === 'WATCHDOG=1', 'three keep-alives', { count: 3, ms: 5000 });
  n.close();
  t.same(rx.got.slice(0, 2).map((d) => d.msg), ['READY=1', 'STATUS=listening; 0 calls']);
  t.ok(rx.got.every((d) => d.pid === process.pid), 'every datagram from our pid', { got: rx.got });
  const other = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: rx.path, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid + 1) });
  const before = rx.got.length;
  other.startWatchdog();
  await new Promise((r) => setTimeout(r, 250));
  other.close();
  t.equal(rx.got.length, before, 'no keep-alives when WATCHDOG_PID is another process');
});

t.test('the daemon: READY, STATUS, WATCHDOG, RELOADING/READY on SIGHUP, STOPPING on SIGTERM, all from its pid', async (t) => {
  const dir = tempDir(t, 'amk-notify-');
  const rx = await startReceiver(t, dir);
  const configPath = join(dir, 'amk-bridge.yaml');
  const input = testConfigInput({
    log: { level: 'debug' },
    journal: { path: join(dir, 'journal.sqlite') },
    recontact: { path: join(dir, 'recontact.sqlite'), keyFile: join(dir, 'recontact.key') },
  });
  writeFileSync(configPath, stringify(input));
  const daemon = startDaemon(t, configPath, { NOTIFY_SOCKET: rx.path, WATCHDOG_USEC: '400000' });
  const pid = daemon.proc.pid!;
  await daemon.ready;

  const ready = await rx.waitFor((d) => d.msg === 'READY=1', 'READY=1');
  const status = await rx.waitFor((d) => d.msg.startsWith('STATUS='), 'STATUS=');
  t.match(rx.got[status]!.msg, /^STATUS=listening; 0 calls$/, 'status names the calls in progress');
  const dog = await rx.waitFor((d) => d.msg === 'WATCHDOG=1', 'two WATCHDOG=1 after READY', { count: 2, from: ready, ms: 5000 });
  t.ok(dog > ready, 'keep-alives arrive');

  const mark = rx.got.length;
  daemon.proc.kill('SIGHUP');
  const reloading = await rx.waitFor((d) => d.msg === 'RELOADING=1', 'RELOADING=1', { from: mark });
  const readyAgain = await rx.waitFor((d) => d.msg === 'READY=1', 'READY=1 after the reload', { from: reloading });
  t.ok(readyAgain > reloading, 'RELOADING=1 then READY=1');
  await daemon.waitForLog((l) => l.msg === 'configuration reloaded', 5000, 'configuration reloaded');

  const mark2 = rx.got.length;
  daemon.proc.kill('SIGTERM');
  await rx.waitFor((d) => d.msg === 'STOPPING=1', 'STOPPING=1', { from: mark2 });
  const exit = await daemon.exited;
  t.same(exit, { code: 0, signal: null }, 'the daemon stops cleanly');

  t.ok(rx.got.length >= 7, 'datagrams received', { got: rx.got });
  const foreign = rx.got.filter((d) => d.pid !== pid);
  t.same(foreign, [], `every datagram comes from the daemon's pid ${pid}`);
  const order = rx.got.map((d) => d.msg).filter((m) => m !== 'WATCHDOG=1' && !m.startsWith('STATUS='));
  t.same(order, ['READY=1', 'RELOADING=1', 'READY=1', 'STOPPING=1'], 'lifecycle order');
});
