// Child processes of the bench: every one is tracked and killed on exit, on an error and on
// Ctrl-C (SIGTERM, then SIGKILL after a grace period; SIGKILL from the 'exit' hook as a last
// resort). Plus /proc readers (CPU ticks, RSS), free ports and small waiting helpers.
import { spawn, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** @type {Map<import('node:child_process').ChildProcess, string>} */
const live = new Map();

/** Spawn and track a child; `name` appears in messages. */
export function spawnTracked(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, opts);
  live.set(child, name);
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => { live.delete(child); resolve({ code, signal }); });
    child.once('error', (err) => { live.delete(child); resolve({ code: null, signal: null, error: err }); });
  });
  return child;
}

/** Signal a child and wait for it; SIGKILL after `graceMs`. Resolves to its exit status. */
export async function stopChild(child, signal = 'SIGTERM', graceMs = 3000) {
  if (!child || child.exitCode !== null || child.signalCode !== null || !live.has(child)) return child?.exited;
  try { child.kill(signal); } catch { /* gone */ }
  const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, graceMs);
  const status = await child.exited;
  clearTimeout(timer);
  return status;
}

/** Stop every child still running (in parallel). */
export async function stopAll(graceMs = 2000) {
  await Promise.all([...live.keys()].map((c) => stopChild(c, 'SIGTERM', graceMs)));
}

let hooksInstalled = false;
/** Kill children on process exit and on SIGINT/SIGTERM (then exit with 128+signal). */
export function installExitHooks(onSignal) {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', () => {
    for (const child of live.keys()) { try { child.kill('SIGKILL'); } catch { /* gone */ } }
  });
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.once(sig, () => {
      process.stderr.write(`\n# ${sig}: stopping ${live.size} child process(es)…\n`);
      try { onSignal?.(sig); } catch { /* best effort */ }
      void stopAll(1500).finally(() => process.exit(code));
    });
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` every `everyMs` until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor(fn, timeoutMs, what, everyMs = 10) {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A free UDP port on `host`: bind port 0, read the port, close. */
export function freeUdpPort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    sock.once('error', reject);
    sock.bind({ address: host, port: 0, exclusive: true }, () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

/** `count` distinct free UDP ports. */
export async function freeUdpPorts(count, host = '127.0.0.1') {
  const out = new Set();
  while (out.size < count) out.add(await freeUdpPort(host));
  return [...out];
}

/** Is some socket bound to UDP `port` (per /proc/net/udp and udp6)? */
export function udpPortBound(port) {
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text;
    try { text = readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (local && parseInt(local.split(':').pop(), 16) === port) return true;
    }
  }
  return false;
}

/** UDP ports bound and TCP ports listened on by sockets of process `pid` (IPv4 and IPv6). */
export function boundPorts(pid) {
  const inodes = new Set();
  let fds = [];
  try { fds = readdirSync(`/proc/${pid}/fd`); } catch { /* gone */ }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch { /* closed meanwhile */ }
  }
  const out = { udp: [], tcpListen: [] };
  if (inodes.size === 0) return out;
  for (const [file, key] of [['udp', 'udp'], ['udp6', 'udp'], ['tcp', 'tcpListen'], ['tcp6', 'tcpListen']]) {
    let text;
    try { text = readFileSync(`/proc/net/${file}`, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (!cols[1] || !inodes.has(cols[9])) continue;
      if (key === 'tcpListen' && cols[3] !== '0A') continue;
      out[key].push(parseInt(cols[1].split(':').pop(), 16));
    }
  }
  return out;
}

let clkTck;
function ticksPerSecond() {
  if (clkTck === undefined) {
    try { clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { clkTck = 100; }
  }
  return clkTck;
}

/** CPU seconds (user + system) a process has used so far, or null when it is gone. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may hold spaces): state is field 3.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return (utime + stime) / ticksPerSecond();
  } catch {
    return null;
  }
}

/** A `VmRSS`/`VmHWM`… line of /proc/<pid>/status in MiB, or null. */
export function procStatusMb(pid, key = 'VmRSS') {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Is `cmd` on the PATH? */
export function which(cmd) {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** The kernel's UDP counters (/proc/net/snmp, system-wide): InErrors, RcvbufErrors, NoPorts… */
export function udpCounters() {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0].split(/\s+/).slice(1);
    const values = lines[1].split(/\s+/).slice(1).map(Number);
    return Object.fromEntries(names.map((n, i) => [n, values[i]]));
  } catch {
    return null;
  }
}

/** b - a for every counter (null when either is missing). */
export function counterDelta(a, b) {
  if (!a || !b) return null;
  return Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]));
}

/** Per-socket receive drops of the UDP sockets bound to `ports` (/proc/net/udp "drops" column). */
export function udpSocketDrops(ports) {
  const out = {};
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text;
    try { text = readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (!cols[1]) continue;
      const port = parseInt(cols[1].split(':').pop(), 16);
      if (ports.includes(port)) out[port] = (out[port] ?? 0) + Number(cols[12] ?? 0);
    }
  }
  return out;
}

/** Whole-machine CPU time from /proc/stat, in core-seconds: { busy, steal, total }. */
export function systemCpu() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal = 0] = f;
    const hz = ticksPerSecond();
    return { busy: (user + nice + system + irq + softirq) / hz, steal: steal / hz, total: f.slice(0, 8).reduce((a, b) => a + b, 0) / hz, idle: (idle + iowait) / hz };
  } catch {
    return null;
  }
}
