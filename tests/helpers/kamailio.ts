// Run Debian's Kamailio with a config template from tests/kamailio, killed on teardown.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const MPATHS = ['/usr/lib/x86_64-linux-gnu/kamailio/modules/', '/usr/lib/aarch64-linux-gnu/kamailio/modules/', '/usr/lib/kamailio/modules/'];
export const KAMAILIO = existsSync('/usr/sbin/kamailio') ? '/usr/sbin/kamailio' : 'kamailio';

export async function startKamailio(t: { teardown(fn: () => unknown): void }, template: string, vars: Record<string, string | number>): Promise<{ stop(): void; log: () => string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kamailio-'));
  const mpath = MPATHS.find((p) => existsSync(p)) ?? MPATHS[0]!;
  // A template of tests/kamailio, or any config file by absolute path (the shipped edge).
  const src = path.isAbsolute(template) ? template : path.join(here, '..', 'kamailio', template);
  let cfg = readFileSync(src, 'utf8').replaceAll('@MPATH@', mpath);
  for (const [k, v] of Object.entries(vars)) cfg = cfg.replaceAll(`@${k}@`, String(v));
  const file = path.join(dir, 'kamailio.cfg');
  writeFileSync(file, cfg);
  let log = '';
  // -DD: stay in the foreground (children still fork); -E: log to stderr; -Y: our own runtime dir.
  const p = spawn(KAMAILIO, ['-f', file, '-DD', '-E', '-Y', dir, '-P', path.join(dir, 'k.pid'), '-w', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  p.stdout.on('data', (d) => (log += d));
  p.stderr.on('data', (d) => (log += d));
  const stop = () => {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      setTimeout(() => p.exitCode === null && p.kill('SIGKILL'), 1000).unref();
    }
  };
  t.teardown(() => {
    stop();
    rmSync(dir, { recursive: true, force: true });
  });
  // Ready when it logs that its children are up, or after a short grace period.
  const until = Date.now() + 5000;
  while (Date.now() < until && !/INFO|listening|main loop|init/i.test(log) && p.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  if (p.exitCode !== null) throw new Error(`kamailio exited ${p.exitCode}: ${log}`);
  return { stop, log: () => log };
}
