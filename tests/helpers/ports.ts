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
import { readFileSync } from 'node:fs';

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
