// Symmetric RTP latching (pure). RTP is accepted from the address the peer's SDP names (any port:
// NATed phones change ports) or from an address inside one of the configured networks (CIDR: SBC
// pools, NAT). The first accepted packet's source (address and port) is latched: we send there
// from then on. While latched, packets from other allowed sources are ignored (not mixed), unless
// the latched source has been silent for `relatchAfterMs` (a NAT rebinding or an SBC failover):
// then the new source is latched. Packets from anywhere else are rejected (and counted by the
// caller). A configure with a different SDP address (or networks that no longer allow the latched
// source) resets the latch.
import { BlockList, isIP } from 'node:net';

export interface LatchAddress {
  address: string;
  port: number;
}

/**
 * accept: from the latched source; latch: the first accepted packet (or a relatch) — now latched;
 * ignore: an allowed source while another one is latched; reject: not an allowed source.
 */
export type LatchVerdict = 'accept' | 'latch' | 'ignore' | 'reject';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** '::ffff:1.2.3.4' → '1.2.3.4' (what a dual-stack socket reports for IPv4 peers). */
export function normalizeAddress(address: string): string {
  if (address.length > 7 && address.slice(0, 7).toLowerCase() === '::ffff:' && isIP(address.slice(7)) === 4) {
    return address.slice(7);
  }
  return address;
}

/** Parses 'a.b.c.d/n', 'x::y/n' or a bare address (a host route). Throws RangeError when invalid. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const address = normalizeAddress(slash < 0 ? text.trim() : text.slice(0, slash).trim());
  const fam = isIP(address);
  if (fam === 0) throw new RangeError(`latch network "${text}": not an IP address`);
  const max = fam === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new RangeError(`latch network "${text}": bad prefix length`);
    prefix = Number(p);
  }
  return { address, prefix, family: fam === 4 ? 'ipv4' : 'ipv6' };
}

/** Validates a list of networks (throws RangeError naming the first bad one). */
export function parseNetworks(networks: readonly string[]): Cidr[] {
  return networks.map(parseCidr);
}

export class Latch {
  private readonly relatchAfterMs: number;
  private sdpAddress: string | null = null;
  private networksKey = '';
  private allow = new BlockList();
  private current: LatchAddress | null = null;
  private lastSeenMs = 0;

  constructor(opts: { relatchAfterMs?: number } = {}) {
    this.relatchAfterMs = opts.relatchAfterMs ?? 1000;
  }

  /** The source we latched to (and send to), or null. */
  get latched(): LatchAddress | null {
    return this.current;
  }

  /**
   * (Re)configures the allowed sources. A different SDP address resets the latch; so do networks
   * that no longer allow the latched source. Throws RangeError on a bad network.
   */
  configure(sdpAddress: string | null, networks: readonly string[]): void {
    const sdp = sdpAddress === null ? null : normalizeAddress(sdpAddress);
    const cidrs = parseNetworks(networks);
    const key = cidrs.map((c) => `${c.address}/${c.prefix}`).join(',');
    const allow = new BlockList();
    const fam = sdp === null ? 0 : isIP(sdp);
    if (sdp !== null && fam !== 0) allow.addAddress(sdp, fam === 4 ? 'ipv4' : 'ipv6');
    for (const c of cidrs) allow.addSubnet(c.address, c.prefix, c.family);
    const sdpChanged = sdp !== this.sdpAddress;
    this.sdpAddress = sdp;
    this.networksKey = key;
    this.allow = allow;
    if (sdpChanged || (this.current !== null && !this.allowed(this.current.address))) this.reset();
  }

  /** Whether packets from this address are allowed at all (SDP address or a latch network). */
  allowed(address: string): boolean {
    const a = normalizeAddress(address);
    const fam = isIP(a);
    if (fam === 0) return false;
    return this.allow.check(a, fam === 4 ? 'ipv4' : 'ipv6');
  }

  /** Classifies a packet from address:port arriving at nowMs (any monotonic clock). */
  check(address: string, port: number, nowMs: number): LatchVerdict {
    const cur = this.current;
    if (cur !== null && cur.port === port && cur.address === address) {
      this.lastSeenMs = nowMs;
      return 'accept';
    }
    if (!this.allowed(address)) return 'reject';
    if (cur === null || nowMs - this.lastSeenMs >= this.relatchAfterMs) {
      this.current = { address, port };
      this.lastSeenMs = nowMs;
      return 'latch';
    }
    return 'ignore';
  }

  /** Forgets the latched source (the next allowed packet latches again). */
  reset(): void {
    this.current = null;
    this.lastSeenMs = 0;
  }

  /** For diagnostics: the configured networks, normalised. */
  get networks(): string {
    return this.networksKey;
  }
}
