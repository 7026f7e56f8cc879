// The bridge under test: a config file (validated with the real schema) and the daemon started
// through the CLI as a child process, so the bench's own work never shares its event loop.
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { validateConfig, formatConfigErrors } from '../../dist/config/load.js';
import { boundPorts, spawnTracked, stopChild, waitFor } from './procs.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const LOOPBACK = ['127.0.0.0/8', '::1/128'];

/** The bench's config (the same shape as tests/helpers/config.ts builds), as plain data. */
export function benchConfigInput({ callTakerPort = 5080, logLevel = 'info' } = {}) {
  return {
    node: 'bench',
    log: { level: logLevel },
    sip: {
      listen: [
        { transport: 'udp', address: '127.0.0.1', port: 0 },
        { transport: 'tcp', address: '127.0.0.1', port: 0 },
      ],
    },
    trunks: [{ id: 'trunk-a', networks: LOOPBACK, probe: null }],
    callTakers: { target: `sip:acd@127.0.0.1:${callTakerPort}`, networks: LOOPBACK, probe: false },
    desks: [{ id: 'desk-1', name: 'Desk 1', users: ['1001'] }],
    regions: [
      {
        id: 'hovedstaden',
        name: 'Region Hovedstaden',
        code: '01',
        targets: ['sip:amk@127.0.0.1:5090'],
        probe: false,
      },
    ],
    routing: { defaultRegion: 'hovedstaden', rules: [] },
    probes: { intervalS: 3600 },
  };
}

/** Validate the config with the bridge's own schema and write it as YAML; returns the path. */
export function writeConfig(dir, input) {
  // Each run its own journal and re-contact store: the defaults under /var/lib would carry the
  // sightings of the SIPp caller number from run to run and make the runs incomparable.
  input = {
    ...input,
    journal: { path: join(dir, 'journal.sqlite'), ...input.journal },
    recontact: { path: join(dir, 'recontact.sqlite'), keyFile: join(dir, 'recontact.key'), ...input.recontact },
  };
  const checked = validateConfig(input);
  if (!checked.ok) throw new Error(`bench config invalid:\n${formatConfigErrors('bench', checked.errors)}`);
  const path = join(dir, 'amk-bridge.bench.yaml');
  writeFileSync(path, `# written by bench/run.js\n${stringify(input)}`);
  return path;
}

/** Temporary directories not yet removed: the exit hook removes them (unless kept). */
export const liveDirs = new Set();

export function tempDir(prefix = 'amk-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  liveDirs.add(dir);
  return dir;
}

const READY = 'amk-bridge listening';

function readyInfo(line) {
  let rec;
  try { rec = JSON.parse(line); } catch { return null; }
  if (rec?.msg !== READY) return null;
  const udp = rec.listeners?.find((l) => l.transport === 'udp');
  return { udpPort: udp?.port ?? null, listeners: rec.listeners };
}

/**
 * Spawn the daemon with its stdout piped to us and time spawn → the "amk-bridge listening" line.
 * Resolves to { child, readyMs, udpPort }.
 */
export async function startDaemonTimed(configPath, { timeoutMs = 10_000 } = {}) {
  const t0 = performance.now();
  const child = spawnTracked('amk-bridge', process.execPath, [CLI, 'run', '--config', configPath], {
    cwd: ROOT, env: { ...process.env, LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s) => { if (stderr.length < 65536) stderr += s; });
  return new Promise((resolveReady, reject) => {
    let buf = '';
    let done = false;
    let startingAt = null;
    const timer = setTimeout(() => finish(new Error(`the bridge did not log "${READY}" within ${timeoutMs} ms\n${stderr}${buf.slice(-2000)}`)), timeoutMs);
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { void stopChild(child, 'SIGKILL'); reject(err); } else resolveReady(value);
    };
    child.stdout.setEncoding('utf8').on('data', (s) => {
      if (done) return; // keep draining the pipe so the daemon never blocks on it
      buf += s;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const info = readyInfo(line);
        if (info) {
          // The daemon's own clock: its first log line → ready (config, sockets, wiring); the
          // rest of spawn → ready is Node's start and loading the modules.
          const readyAt = Date.parse(JSON.parse(line).time);
          return finish(null, { child, readyMs: performance.now() - t0, startingToReadyMs: startingAt !== null && readyAt ? readyAt - startingAt : null, ...info });
        }
        if (startingAt === null && line.includes('"amk-bridge starting"')) {
          try { startingAt = Date.parse(JSON.parse(line).time) || null; } catch { /* not JSON */ }
        }
      }
    });
    void child.exited.then(({ code, signal }) => finish(new Error(`the bridge exited (code ${code}, signal ${signal}) before it was ready:\n${stderr}${buf.slice(-2000)}`)));
  });
}

/**
 * Spawn the daemon with stdout/stderr going to a log file (no pipe to drain, no work in the
 * bench's event loop while it runs) and wait until it is ready: its "amk-bridge listening" line
 * in that file, or, when its log level hides info lines, its UDP socket and listening TCP socket
 * showing up among its file descriptors. `nodeArgs` go before the script (for example
 * --cpu-prof); `env` is added to the daemon's environment. Resolves to { child, udpPort, logPath }.
 */
export async function startDaemon(configPath, dir, { nodeArgs = [], timeoutMs = 10_000, name = 'daemon', logsInfo = true, env = {} } = {}) {
  const logPath = join(dir, `${name}.log`);
  const fd = openSync(logPath, 'w');
  const child = spawnTracked('amk-bridge', process.execPath, [...nodeArgs, CLI, 'run', '--config', configPath], {
    cwd: ROOT, env: { ...process.env, ...env, LOG_FORMAT: 'json' }, stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  let exited = false;
  void child.exited.then(() => { exited = true; });
  const info = await waitFor(() => {
    if (exited) throw new Error(`the bridge exited before it was ready:\n${readFileSync(logPath, 'utf8').slice(-2000)}`);
    if (!logsInfo) {
      const ports = boundPorts(child.pid);
      return ports.udp.length && ports.tcpListen.length ? { udpPort: ports.udp[0], listeners: null } : null;
    }
    const text = readFileSync(logPath, 'utf8');
    for (const line of text.split('\n')) {
      const i = readyInfo(line);
      if (i) return i;
    }
    return null;
  }, timeoutMs, logsInfo ? `"${READY}" in ${logPath}` : 'the bridge to bind its SIP sockets', 20);
  return { child, logPath, ...info };
}

/** SIGTERM (the daemon drains and exits), SIGKILL after a grace period. */
export function stopDaemon(d, graceMs = 5000) {
  // The first SIGTERM drains (waits for calls in progress); the peers are gone by now, so a
  // second one a moment later stops at once, still cleanly (profiles and logs are written).
  const again = setTimeout(() => { try { d?.child?.kill('SIGTERM'); } catch { /* gone */ } }, 300);
  return stopChild(d?.child, 'SIGTERM', graceMs).finally(() => clearTimeout(again));
}
