// Source address filter for INVITEs: trunks and the call-taker platform, by CIDR.
import net from 'node:net';

export class SourceAcl {
  private readonly list = new net.BlockList();

  constructor(cidrs: string[]) {
    for (const c of cidrs) {
      const [addr, bits] = c.split('/');
      const type = net.isIPv6(addr!) ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(addr!, type);
      else this.list.addSubnet(addr!, Number(bits), type);
    }
  }

  allows(address: string): boolean {
    // IPv4-mapped IPv6 (::ffff:a.b.c.d) as seen on dual-stack sockets.
    const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
    const type = net.isIPv6(v4) ? 'ipv6' : 'ipv4';
    return this.list.check(v4, type);
  }
}
