// Locating SIP servers (RFC 3263 section 4) with failover: turns a SIP/SIPS URI's host part into
// an ordered list of hops (transport, address, port) to try in turn, caches DNS answers by TTL
// and pushes hops that recently failed to the end of the list.

import { Resolver } from 'node:dns/promises';
import { isIPv4, isIPv6 } from 'node:net';

export type HopTransport = 'udp' | 'tcp' | 'tls';

export interface Hop {
  transport: HopTransport;
  address: string;
  port: number;
  /** The host name this hop came from (SRV target, or the URI host; the address for IP literals). */
  target: string;
}

export interface ResolveTarget {
  scheme: 'sip' | 'sips';
  /** Host name, IPv4 literal or IPv6 literal (with or without brackets). */
  host: string;
  port?: number;
  /** Value of the URI's `;transport=` parameter, if any. */
  transportParam?: string;
}

export interface SipResolverOptions {
  /** DNS servers as `host:port` / `[v6]:port` (tests); default: the system's. */
  servers?: string[];
  /** Per-try DNS query timeout (default 1000 ms; c-ares backs off between tries). */
  timeoutMs?: number;
  /** Tries per DNS server before a query times out (default 2). */
  tries?: number;
  /** Upper bound for any cached answer's lifetime (default 3600 s). */
  cacheMaxTtlS?: number;
  /** Whether to look up AAAA records too (default true; A addresses come first). */
  ipv6?: boolean;
  /** Clock in ms (tests). */
  now?: () => number;
  /** Random number in [0, 1) for SRV weighted selection (tests). */
  random?: () => number;
}

/** No hop could be resolved and at least one DNS query failed (timeout, SERVFAIL, ...). */
export class ResolveError extends Error {
  override name = 'ResolveError';
  constructor(readonly code: string, readonly host: string, message?: string) {
    super(message ?? `cannot resolve ${host}: ${code}`);
  }
}

interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

interface Address {
  address: string;
  family: 4 | 6;
}

/** Result of one DNS step: records (empty for NXDOMAIN / no data) or an error code. */
type Outcome<T> = { ok: true; records: T[] } | { ok: false; code: string };

interface CacheEntry<T> {
  expires: number;
  records: T[];
}

/** SRV answers carry no TTL in node's API: cache them (and negative answers) this long at most. */
const SRV_TTL_S = 60;
/** Codes meaning "the name or the record type does not exist" rather than a failure. */
const NO_DATA = new Set(['ENOTFOUND', 'ENODATA']);

const DEFAULT_PORT: Record<HopTransport, number> = { udp: 5060, tcp: 5060, tls: 5061 };
const SRV_PREFIX: Record<HopTransport, string> = { udp: '_sip._udp', tcp: '_sip._tcp', tls: '_sips._tcp' };

function hopKey(hop: Pick<Hop, 'transport' | 'address' | 'port'>): string {
  return `${hop.transport}|${hop.address}|${hop.port}`;
}

/** Transport forced by a `;transport=` parameter, undefined when absent. */
function transportFromParam(param: string | undefined, secure: boolean, host: string): HopTransport | undefined {
  if (param === undefined || param === '') return undefined;
  const p = param.toLowerCase();
  if (p === 'udp' && !secure) return 'udp';
  // A SIPS URI with transport=tcp means TLS over TCP (RFC 3261 26.2.2).
  if (p === 'tcp') return secure ? 'tls' : 'tcp';
  if (p === 'tls') return 'tls';
  throw new ResolveError('EBADTRANSPORT', host, `unsupported transport ${param} for ${secure ? 'sips' : 'sip'}:${host}`);
}

export class SipResolver {
  private readonly dns: Resolver;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly maxTtlMs: number;
  private readonly srvTtlMs: number;
  private readonly ipv6: boolean;
  private readonly cache = new Map<string, CacheEntry<unknown>>();
  private readonly inflight = new Map<string, Promise<Outcome<unknown>>>();
  /** Hop key → time (ms) its penalty ends. */
  private readonly failed = new Map<string, number>();

  constructor(opts: SipResolverOptions = {}) {
    this.dns = new Resolver({ timeout: opts.timeoutMs ?? 1000, tries: opts.tries ?? 2 });
    if (opts.servers && opts.servers.length > 0) this.dns.setServers(opts.servers);
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    const maxTtlS = opts.cacheMaxTtlS ?? 3600;
    this.maxTtlMs = Math.max(0, maxTtlS) * 1000;
    this.srvTtlMs = Math.min(SRV_TTL_S * 1000, this.maxTtlMs);
    this.ipv6 = opts.ipv6 ?? true;
  }

  /**
   * Ordered hops to try in turn for a SIP/SIPS URI (RFC 3263 section 4). Hops marked failed
   * and still under penalty come last. NXDOMAIN / no data yield no hops; throws ResolveError
   * only when no hop at all was found and some query failed (or the URI is unusable).
   */
  async resolve(uri: ResolveTarget): Promise<Hop[]> {
    const secure = uri.scheme === 'sips';
    let host = uri.host.trim();
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    if (host === '') throw new ResolveError('EINVAL', uri.host, 'empty host');
    const forced = transportFromParam(uri.transportParam, secure, host);
    const defaultTransport: HopTransport = forced ?? (secure ? 'tls' : 'udp');

    // 1. IP literal: no DNS at all.
    if (isIPv4(host) || isIPv6(host)) {
      const port = uri.port ?? DEFAULT_PORT[defaultTransport];
      return this.order([{ transport: defaultTransport, address: host, port, target: host }]);
    }

    const errors: string[] = [];

    // 2. Host name with explicit port: A/AAAA only (RFC 3263 4.2).
    if (uri.port !== undefined) {
      const hops = await this.addressHops(host, defaultTransport, uri.port, errors);
      return this.finish(hops, errors, host);
    }

    // 3. No port. NAPTR (RFC 3263 4.1) is optional for a client and deliberately skipped: we go
    // straight to SRV for the transport(s) we would use, in our order of preference.
    const transports: HopTransport[] = forced ? [forced] : secure ? ['tls'] : ['udp', 'tcp'];
    const srvOutcomes = await Promise.all(transports.map((tr) => this.srv(`${SRV_PREFIX[tr]}.${host}`)));
    let anySrv = false;
    const perTransport: Promise<Hop[]>[] = [];
    for (const [i, outcome] of srvOutcomes.entries()) {
      if (!outcome.ok) {
        errors.push(outcome.code);
        continue;
      }
      if (outcome.records.length === 0) continue;
      anySrv = true;
      const transport = transports[i]!;
      // A single SRV record with target "." means: service decidedly not available (RFC 2782).
      const targets = orderSrv(outcome.records, this.random).filter((r) => r.name !== '' && r.name !== '.');
      perTransport.push(
        Promise.all(targets.map((r) => this.addressHops(r.name, transport, r.port, errors))).then((lists) => lists.flat()),
      );
    }
    if (anySrv) return this.finish((await Promise.all(perTransport)).flat(), errors, host);

    // 4. No SRV records (or SRV queries failed): A/AAAA of the host at the default port.
    const hops = await this.addressHops(host, defaultTransport, DEFAULT_PORT[defaultTransport], errors);
    return this.finish(hops, errors, host);
  }

  /**
   * Report that a hop failed (transport error, timer B/F timeout): for `forMs` it is put after
   * every other hop in results, so the next attempt goes straight to a working server.
   */
  markFailed(hop: Pick<Hop, 'transport' | 'address' | 'port'>, forMs = 30_000): void {
    this.failed.set(hopKey(hop), this.now() + forMs);
  }

  /** Lift a hop's penalty early (e.g. it answered again). */
  clearFailed(hop: Pick<Hop, 'transport' | 'address' | 'port'>): void {
    this.failed.delete(hopKey(hop));
  }

  /** Whether a hop is currently penalised. */
  isFailed(hop: Pick<Hop, 'transport' | 'address' | 'port'>): boolean {
    const until = this.failed.get(hopKey(hop));
    if (until === undefined) return false;
    if (until <= this.now()) {
      this.failed.delete(hopKey(hop));
      return false;
    }
    return true;
  }

  /** Forget every cached DNS answer. */
  clearCache(): void {
    this.cache.clear();
  }

  // -------------------------------------------------------------------------------------------

  private finish(hops: Hop[], errors: string[], host: string): Hop[] {
    const seen = new Set<string>();
    const unique = hops.filter((h) => {
      const k = hopKey(h);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    if (unique.length === 0 && errors.length > 0) throw new ResolveError(errors[0]!, host);
    return this.order(unique);
  }

  /** Stable partition: hops under penalty go last, in their original order. */
  private order(hops: Hop[]): Hop[] {
    const good: Hop[] = [];
    const bad: Hop[] = [];
    for (const h of hops) (this.isFailed(h) ? bad : good).push(h);
    return [...good, ...bad];
  }

  private async addressHops(name: string, transport: HopTransport, port: number, errors: string[]): Promise<Hop[]> {
    const families: (4 | 6)[] = this.ipv6 ? [4, 6] : [4];
    const outcomes = await Promise.all(families.map((f) => this.addresses(name, f)));
    const hops: Hop[] = [];
    for (const o of outcomes) {
      if (!o.ok) errors.push(o.code);
      else for (const a of o.records) hops.push({ transport, address: a.address, port, target: name });
    }
    return hops;
  }

  private addresses(name: string, family: 4 | 6): Promise<Outcome<Address>> {
    return this.cached(`${family === 4 ? 'A' : 'AAAA'} ${normName(name)}`, async () => {
      const records = family === 4 ? await this.dns.resolve4(name, { ttl: true }) : await this.dns.resolve6(name, { ttl: true });
      const ttlS = records.reduce((min, r) => Math.min(min, r.ttl), Infinity);
      return { records: records.map((r) => ({ address: r.address, family })), ttlMs: ttlS * 1000 };
    });
  }

  private srv(name: string): Promise<Outcome<SrvRecord>> {
    return this.cached(`SRV ${normName(name)}`, async () => {
      const records = await this.dns.resolveSrv(name);
      return { records, ttlMs: this.srvTtlMs };
    });
  }

  /**
   * One DNS step through the cache, sharing a query already in flight. NXDOMAIN / no data is
   * an empty (negatively cached) answer; other failures are returned as codes, not cached.
   */
  private cached<T>(key: string, query: () => Promise<{ records: T[]; ttlMs: number }>): Promise<Outcome<T>> {
    const hit = this.cache.get(key) as CacheEntry<T> | undefined;
    if (hit) {
      if (hit.expires > this.now()) return Promise.resolve({ ok: true, records: hit.records });
      this.cache.delete(key);
    }
    const pending = this.inflight.get(key) as Promise<Outcome<T>> | undefined;
    if (pending) return pending;
    const p = query().then(
      ({ records, ttlMs }): Outcome<T> => {
        const life = Math.min(ttlMs, this.maxTtlMs);
        if (life > 0) this.cache.set(key, { expires: this.now() + life, records });
        return { ok: true, records };
      },
      (err: unknown): Outcome<T> => {
        const code = (err as { code?: unknown }).code;
        const c = typeof code === 'string' ? code : 'EUNKNOWN';
        if (NO_DATA.has(c)) {
          if (this.srvTtlMs > 0) this.cache.set(key, { expires: this.now() + this.srvTtlMs, records: [] });
          return { ok: true, records: [] };
        }
        return { ok: false, code: c };
      },
    ).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p as Promise<Outcome<unknown>>);
    return p;
  }
}

function normName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * RFC 2782 ordering: ascending priority; within a priority, repeated weighted random selection
 * (zero-weight records first in the running sum, so they are rarely picked early).
 */
export function orderSrv<T extends { priority: number; weight: number }>(records: readonly T[], random: () => number = Math.random): T[] {
  const byPriority = new Map<number, T[]>();
  for (const r of records) {
    const list = byPriority.get(r.priority);
    if (list) list.push(r);
    else byPriority.set(r.priority, [r]);
  }
  const out: T[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const group = byPriority.get(priority)!;
    // Zero weights at the beginning of the list (RFC 2782).
    const remaining = [...group.filter((r) => r.weight === 0), ...group.filter((r) => r.weight !== 0)];
    while (remaining.length > 0) {
      const total = remaining.reduce((s, r) => s + r.weight, 0);
      let index: number;
      if (total === 0) index = Math.floor(random() * remaining.length);
      else {
        // Uniform integer in [0, total]; first record whose running sum reaches it.
        const pick = Math.floor(random() * (total + 1));
        let sum = 0;
        index = remaining.findIndex((r) => (sum += r.weight) >= pick);
      }
      index = Math.min(Math.max(index, 0), remaining.length - 1);
      out.push(remaining.splice(index, 1)[0]!);
    }
  }
  return out;
}
