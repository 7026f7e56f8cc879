// Dialog state (RFC 3261 12): identifiers, sequence numbers, route set and remote target,
// and building requests inside the dialog.
import net from 'node:net';
import type { Peer, SipRequest, SipResponse } from './message.js';
import { Headers, request, EMPTY } from './message.js';
import { parseNameAddr, parseUri, parseCSeq, tagOf } from './grammar.js';

export class Dialog {
  localSeq: number;
  remoteSeq: number | null;
  remoteTarget: string;
  /** Route set in the order requests use it. */
  routeSet: string[];
  /** Where in-dialog requests go when the remote target cannot be used directly. */
  fallbackPeer: Peer;

  constructor(
    readonly callId: string,
    /** Our From (UAC) / To (UAS) header value, tag included. */
    readonly local: string,
    /** The peer's header value, tag included. */
    public remote: string,
    readonly localTag: string,
    public remoteTag: string,
    init: { localSeq: number; remoteSeq: number | null; remoteTarget: string; routeSet: string[]; peer: Peer; contact: string },
  ) {
    this.localSeq = init.localSeq;
    this.remoteSeq = init.remoteSeq;
    this.remoteTarget = init.remoteTarget;
    this.routeSet = init.routeSet;
    this.fallbackPeer = init.peer;
    this.contact = init.contact;
  }

  /** Our Contact header value for this dialog. */
  contact: string;

  /** UAS side: from the INVITE we received and the To-tag we answer with. */
  static asUas(invite: SipRequest, src: Peer, localTag: string, contact: string): Dialog {
    const h = invite.headers;
    const from = h.get('from') ?? '';
    const to = h.get('to') ?? '';
    const remoteContact = h.getList('contact')[0];
    return new Dialog(h.get('call-id') ?? '', `${to};tag=${localTag}`, from, localTag, tagOf(from) ?? '', {
      localSeq: Math.floor(Math.random() * 10_000) + 1,
      remoteSeq: parseCSeq(h.get('cseq') ?? '')?.seq ?? 0,
      remoteTarget: (remoteContact && parseNameAddr(remoteContact)?.uri) || invite.uri,
      routeSet: h.getList('record-route'),
      peer: src,
      contact,
    });
  }

  /** UAC side: from the INVITE we sent and a response that carries the To-tag. */
  static asUac(invite: SipRequest, res: SipResponse, dest: Peer, contact: string): Dialog {
    const h = invite.headers;
    const from = h.get('from') ?? '';
    const to = res.headers.get('to') ?? h.get('to') ?? '';
    const remoteContact = res.headers.getList('contact')[0];
    return new Dialog(h.get('call-id') ?? '', from, to, tagOf(from) ?? '', tagOf(to) ?? '', {
      localSeq: parseCSeq(h.get('cseq') ?? '')?.seq ?? 1,
      remoteSeq: null,
      remoteTarget: (remoteContact && parseNameAddr(remoteContact)?.uri) || invite.uri,
      routeSet: res.headers.getList('record-route').reverse(),
      peer: dest,
      contact,
    });
  }

  /** Refresh the remote target from a target-refresh request or its 2xx (re-INVITE, UPDATE). */
  updateTarget(msg: SipRequest | SipResponse): void {
    const c = msg.headers.getList('contact')[0];
    const uri = c ? parseNameAddr(c)?.uri : undefined;
    if (uri) this.remoteTarget = uri;
  }

  /** Check and record the CSeq of an in-dialog request; false means out of order (answer 500). */
  acceptRemoteSeq(req: SipRequest): boolean {
    const seq = parseCSeq(req.headers.get('cseq') ?? '')?.seq;
    if (seq === undefined) return false;
    if (req.method === 'ACK' || req.method === 'CANCEL') return true;
    if (this.remoteSeq !== null && seq <= this.remoteSeq) return false;
    this.remoteSeq = seq;
    return true;
  }

  /** Build an in-dialog request; CSeq increments except for ACK (and CANCEL, built elsewhere). */
  createRequest(method: string, opts: { body?: Buffer; contentType?: string; headers?: [string, string][]; cseq?: number } = {}): SipRequest {
    const h = new Headers();
    let uri = this.remoteTarget;
    const routes = [...this.routeSet];
    // Strict routing (no ;lr): the first route becomes the Request-URI (RFC 3261 12.2.1.1).
    if (routes.length && !/;lr\b/i.test(routes[0]!)) {
      uri = parseNameAddr(routes.shift()!)?.uri ?? uri;
      routes.push(`<${this.remoteTarget}>`);
    }
    for (const r of routes) h.append('Route', r);
    h.append('Max-Forwards', '70');
    h.append('From', this.local);
    h.append('To', this.remote);
    h.append('Call-ID', this.callId);
    const seq = opts.cseq ?? (method === 'ACK' ? this.localSeq : ++this.localSeq);
    h.append('CSeq', `${seq} ${method}`);
    if (method !== 'ACK' && method !== 'CANCEL') h.append('Contact', this.contact);
    for (const [n, v] of opts.headers ?? []) h.append(n, v);
    const body = opts.body ?? EMPTY;
    if (body.length && opts.contentType) h.append('Content-Type', opts.contentType);
    return request(method, uri, h, body);
  }

  /** Where an in-dialog request goes: first loose route or the remote target, else the peer. */
  nextHop(): Peer {
    const first = this.routeSet[0];
    const target = first ? parseNameAddr(first)?.uri : this.remoteTarget;
    const u = target ? parseUri(target) : null;
    if (u && (u.scheme === 'sip' || u.scheme === 'sips')) {
      const host = u.host.replace(/^\[|\]$/g, '');
      if (net.isIP(host)) {
        const tp = (u.params.get('transport') ?? '').toLowerCase();
        const transport = tp === 'tcp' ? 'tcp' : tp === 'tls' || u.scheme === 'sips' ? 'tls' : tp === 'udp' ? 'udp' : this.fallbackPeer.transport;
        return { transport, address: host, port: u.port ?? (transport === 'tls' ? 5061 : 5060) };
      }
    }
    return this.fallbackPeer;
  }
}
