// `amk-bridge lamp-test` as a technician runs it: a real process, a real (pty) serial port with
// an LCUS emulator on the other end.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startPtyPair, startEmulator } from '../helpers/lamp-emulator.js';
import { loadProfile } from '../../src/lamps/profile.js';
import { testConfigInput } from '../helpers/config.js';
import { CLI } from '../helpers/daemon.js';
import { childEnv, trackChild } from '../helpers/children.js';

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
    trackChild(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function configFile(t: Test, lamps: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'amk-lamptest-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'amk-bridge.yaml');
  writeFileSync(file, stringify({ ...testConfigInput(), journal: { path: join(dir, 'j.sqlite') }, lamps: { profilesDir: join(process.cwd(), 'hardware/profiles'), ...lamps } }));
  return file;
}

t.test('lamp-test cycles the desk lamp and the system lamp through every state', async (t) => {
  const profile = await loadProfile('hardware/profiles/lcus.yaml');
  const pty = await startPtyPair(t);
  const emu = await startEmulator(t, profile, pty.emuPath);
  const file = configFile(t, {
    ports: [{ id: 'relays', path: pty.devPath, profile: 'lcus' }],
    desks: [{ desk: 'desk-1', port: 'relays', outputs: { red: 1, amber: 2, green: 3 } }],
    system: { port: 'relays', outputs: { red: 8, green: 7 } },
  });
  const r = await run(['lamp-test', '--config', file, '--step-ms', '60']);
  t.equal(r.code, 0, r.stderr);
  const steps = r.stdout.split('\n').filter((l) => /^(desk-1|system)\s/.test(l)).map((l) => l.replace(/\s+/g, ' ').trim());
  t.same(steps, [
    'desk-1 idle', 'desk-1 dialing', 'desk-1 redialing', 'desk-1 connected', 'desk-1 no-contact-pending',
    'desk-1 no-contact-delivered', 'desk-1 escalation', 'desk-1 overflow-dialing', 'desk-1 overflow-connected',
    'system ok', 'system fault', 'system alarm',
  ]);
  t.match(r.stdout, /port relays .*: open/);
  const frames = emu.frames.map((f) => f.toString('hex'));
  for (const ch of [1, 2, 3, 7, 8]) t.ok(frames.includes(Buffer.from([0xa0, ch, 1, 0xa0 + ch + 1]).toString('hex')), `channel ${ch} was switched on`);
  t.same(emu.unknown, []);
  t.same(emu.state().on, [7], 'after the test the real state (system ok: green) is shown');
});

t.test('lamp-test names a missing port and exits 1; an unknown profile is a clear error', async (t) => {
  const missing = configFile(t, {
    ports: [{ id: 'relays', path: '/dev/amk-no-such-port', profile: 'lcus' }],
    desks: [{ desk: 'desk-1', port: 'relays', outputs: { red: 1 } }],
  });
  const r = await run(['lamp-test', '--config', missing, '--step-ms', '1']);
  t.equal(r.code, 1);
  t.match(r.stdout, /port relays \(\/dev\/amk-no-such-port\): NOT OPEN/);
  const unknown = configFile(t, {
    ports: [{ id: 'relays', path: '/dev/null', profile: 'no-such-device' }],
    desks: [{ desk: 'desk-1', port: 'relays', outputs: { red: 1 } }],
  });
  const u = await run(['lamp-test', '--config', unknown]);
  t.equal(u.code, 1);
  t.match(u.stderr, /no profile "no-such-device"/);
  const badOutput = configFile(t, {
    ports: [{ id: 'relays', path: '/dev/null', profile: 'lcus' }],
    desks: [{ desk: 'desk-1', port: 'relays', outputs: { red: 9 } }],
  });
  const b = await run(['lamp-test', '--config', badOutput]);
  t.equal(b.code, 1);
  t.match(b.stderr, /lamps\.desks\[0\]\.outputs\.red: .*channel 1\.\.8/);
});
