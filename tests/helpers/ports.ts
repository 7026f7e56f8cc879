// Free local ports for tests that start real SIP peers (SIPp, baresip, the bridge itself).
//
// tap runs test files in parallel processes and subtests concurrently, so a port is never handed
// out twice by one process (see `reserved`), ports come from the kernel's ephemeral range
// (bind to port 0) rather than fixed numbers, and a port is only returned when the neighbour
// port+1 is free too (baresip binds TCP on port+1; SIP tools like to bind a second socket
// next to the first). Another process can still grab the port between our probe and its real
// user binding it: that window is small, and a peer that fails to bind reports it loudly.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type PortKind = 'udp' | 'tcp' | 'both';

/** Ports handed out by this process (and their +1 neighbours). Never handed out again. */
const reserved = new Set<number>();

const EPHEMERAL_FALLBACK: readonly [number, number] = [32768, 60999];

/** The kernel's ephemeral port range (net.ipv4.ip_local_port_range). */
export function ephemeralRange(): readonly [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi && lo < hi) return [lo, hi];
  } catch { /* not Linux */ }
  return EPHEMERAL_FALLBACK;
}

function bindUdp(host: string, port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    sock.once('error', () => { sock.close(); resolve(null); });
    sock.bind({ address: host, port, exclusive: true }, () => {
      const p = sock.address().port;
      sock.close(() => resolve(p));
    });
  });
}

function bindTcp(host: string, port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => { srv.close(); resolve(null); });
    srv.listen({ host, port, exclusive: true }, () => {
      const addr = srv.address();
      const p = typeof addr === 'object' && addr ? addr.port : null;
      srv.close(() => resolve(p));
    });
  });
}

async function isFree(kind: PortKind, host: string, port: number): Promise<boolean> {
  if (kind !== 'tcp' && (await bindUdp(host, port)) === null) return false;
  if (kind !== 'udp' && (await bindTcp(host, port)) === null) return false;
  return true;
}

/**
 * A port on `host` that is free right now for `kind` ('both' = UDP and TCP), whose neighbour
 * port+1 is free for the same kind, and which this process has not handed out before.
 * The kernel picks the candidate (bind to port 0: the ephemeral range); collisions are retried.
 */
export async function freePort(kind: PortKind = 'both', host = '127.0.0.1'): Promise<number> {
  const [, hi] = ephemeralRange();
  for (let attempt = 0; attempt < 200; attempt++) {
    const candidate = kind === 'udp' ? await bindUdp(host, 0) : await bindTcp(host, 0);
    if (candidate === null) throw new Error(`freePort: cannot bind ${kind} on ${host}`);
    if (candidate >= hi || reserved.has(candidate) || reserved.has(candidate + 1)) continue;
    if (!(await isFree(kind, host, candidate))) continue;
    if (!(await isFree(kind, host, candidate + 1))) continue;
    // Checked again after the awaits: a concurrent freePort() in this process may have won.
    if (reserved.has(candidate) || reserved.has(candidate + 1)) continue;
    reserved.add(candidate);
    reserved.add(candidate + 1);
    return candidate;
  }
  throw new Error(`freePort: no free ${kind} port pair found on ${host}`);
}

/** Local ports in use on this host according to /proc/net (IPv4 and IPv6, any state). */
export function portsInUse(): Set<number> {
  const used = new Set<number>();
  for (const file of ['tcp', 'tcp6', 'udp', 'udp6']) {
    let text: string;
    try { text = readFileSync(`/proc/net/${file}`, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      const hex = local?.split(':').pop();
      if (hex) used.add(parseInt(hex, 16));
    }
  }
  return used;
}

/**
 * Synchronous variant for code that cannot await (e.g. `startSipp`, which must return its port
 * at once): a random port from the ephemeral range that /proc/net shows unused for UDP and TCP,
 * with port+1 unused too, and not handed out before by this process. Falls back to nothing
 * outside Linux (throws).
 */
export function freePortSync(): number {
  const [lo, hi] = ephemeralRange();
  const used = portsInUse();
  if (used.size === 0) throw new Error('freePortSync: /proc/net is not readable');
  for (let attempt = 0; attempt < 1000; attempt++) {
    const p = lo + Math.floor(Math.random() * (hi - lo - 1));
    if (used.has(p) || used.has(p + 1) || reserved.has(p) || reserved.has(p + 1)) continue;
    reserved.add(p);
    reserved.add(p + 1);
    return p;
  }
  throw new Error('freePortSync: no free port pair found');
}

/** Forget a reservation (rarely needed: ports are plentiful, and re-use invites confusion). */
export function releasePort(port: number): void {
  reserved.delete(port);
  reserved.delete(port + 1);
}

// ---- Blocks of consecutive UDP ports (media port ranges) ------------------------------------
//
// A peer given a port range (baresip's `rtp_ports`) binds in it only when a call starts, maybe
// seconds later, so a probe alone cannot keep two test processes (tap runs files in parallel)
// from choosing overlapping blocks. Each port of a block is therefore also claimed across
// processes by creating a file named after it (exclusive create) in a shared directory; the
// file holds the claiming pid, is deleted when this process exits, and is ignored (taken over)
// when that pid is gone.

const CLAIM_DIR = join(tmpdir(), 'amk-bridge-udp-port-claims');
const claimed = new Set<number>();
let claimHookInstalled = false;

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Claim `port` for this process across processes; false if another live process holds it. */
function claimPort(port: number): boolean {
  const file = join(CLAIM_DIR, String(port));
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      claimed.add(port);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try { owner = Number(readFileSync(file, 'utf8').trim()); } catch { /* just removed */ }
      if (owner === process.pid) return false; // ours already (another block of this process)
      if (Number.isNaN(owner) || pidAlive(owner)) return false;
      try { unlinkSync(file); } catch { /* someone else took it over first */ }
    }
  }
  return false;
}

function unclaimPort(port: number): void {
  if (!claimed.delete(port)) return;
  try { unlinkSync(join(CLAIM_DIR, String(port))); } catch { /* gone */ }
}

/**
 * The first of `count` consecutive UDP ports on `host` that are all free right now (bound and
 * released one by one), not handed out before by this process, and not claimed by another
 * live process that uses this function. They are then reserved here (no later freePort(),
 * freePortSync() or freeUdpPortBlock() of this process returns any of them) and claimed across
 * processes until this process exits. The first port is even (RTP on even ports, RTCP on the
 * next odd one). Candidates come from `range` [lo, hi) — by default 10000–20000: below the
 * kernel's ephemeral range (outgoing sockets of other processes never land there) and below the
 * bridge's default RTP range (media.portMin 20000 – portMax 30000), so test peers and a bridge
 * with default settings never compete for a port.
 */
export async function freeUdpPortBlock(count = 10, host = '127.0.0.1', range: readonly [number, number] = [10000, 20000]): Promise<number> {
  if (!Number.isInteger(count) || count < 1 || count > 1000) throw new Error(`freeUdpPortBlock: bad count ${count}`);
  mkdirSync(CLAIM_DIR, { recursive: true, mode: 0o1777 });
  if (!claimHookInstalled) {
    claimHookInstalled = true;
    process.once('exit', () => { for (const p of [...claimed]) unclaimPort(p); });
  }
  const [lo, hi] = range;
  if (!(lo >= 1024 && hi <= 65536 && hi - lo >= count)) throw new Error(`freeUdpPortBlock: bad range ${lo}-${hi} for ${count} ports`);
  for (let attempt = 0; attempt < 200; attempt++) {
    const used = portsInUse();
    let base = lo + Math.floor(Math.random() * (hi - lo - count + 1));
    base -= base % 2;
    if (base < lo) base += 2;
    if (base + count > hi) continue;
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if (ports.some((p) => used.has(p) || reserved.has(p) || claimed.has(p))) continue;
    let ok = true;
    for (const p of ports) {
      if ((await bindUdp(host, p)) === null) { ok = false; break; }
    }
    // Checked again after the awaits: a concurrent call in this process may have won.
    if (!ok || ports.some((p) => reserved.has(p) || claimed.has(p))) continue;
    const mine: number[] = [];
    for (const p of ports) {
      if (!claimPort(p)) break;
      mine.push(p);
    }
    if (mine.length < count) { mine.forEach(unclaimPort); continue; }
    for (const p of ports) reserved.add(p);
    return base;
  }
  throw new Error(`freeUdpPortBlock: no block of ${count} free UDP ports found on ${host}`);
}

/** Give a block from freeUdpPortBlock() back (reservation and cross-process claim). */
export function releaseUdpPortBlock(base: number, count = 10): void {
  for (let p = base; p < base + count; p++) { reserved.delete(p); unclaimPort(p); }
}
