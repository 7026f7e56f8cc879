// The SIP endpoint: matches messages to transactions, answers what needs no application logic
// (stateless errors, CANCEL, retransmissions) and hands new requests and stray 2xx/ACKs to the
// transaction user (the B2BUA).
import type { Peer, SipRequest, SipResponse } from './message.js';
import { Headers, response, REASONS, EMPTY } from './message.js';
import { parseVia, newBranch, newTag, parseCSeq, tagOf } from './grammar.js';
import { validateRequest, validateResponse } from './validate.js';
import type { SipTransport } from './transport.js';
import type { ClientHandlers, Timers } from './transactions.js';
import { ClientTransaction, ServerTransaction, buildCancel } from './transactions.js';

/** Methods the bridge implements; anything else gets 501 (unknown) or 405 (known, not here). */
export const ALLOWED_METHODS = ['INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'INFO', 'UPDATE', 'PRACK', 'REFER', 'NOTIFY'];
const KNOWN_ELSEWHERE = new Set(['REGISTER', 'SUBSCRIBE', 'MESSAGE', 'PUBLISH']);
export const SUPPORTED = ['100rel', 'timer', 'replaces', 'norefersub'];

export interface EndpointCounters {
  requests: number;
  responses: number;
  rejectedInvalid: number;
  strayResponses: number;
  retransmissionsAbsorbed: number;
}

export interface TransactionUser {
  /** A new request (not ACK, not CANCEL) with its server transaction. */
  onRequest(req: SipRequest, tx: ServerTransaction): void;
  /** An ACK that matched no INVITE transaction in the completed state (ACK for a 2xx). */
  onAck(ack: SipRequest, src: Peer): void;
  /** A 2xx to an INVITE whose client transaction is gone: the TU must ACK (and maybe BYE) it. */
  onStray2xx(res: SipResponse, src: Peer): void;
}

export class SipEndpoint {
  readonly counters: EndpointCounters = { requests: 0, responses: 0, rejectedInvalid: 0, strayResponses: 0, retransmissionsAbsorbed: 0 };
  private readonly server = new Map<string, ServerTransaction>();
  private readonly client = new Map<string, ClientTransaction>();
  /** 2xx-accepted INVITE server transactions by Call-ID + CSeq number, for ACKs with a new branch. */
  private readonly accepted = new Map<string, ServerTransaction>();
  private tu: TransactionUser | null = null;
  readonly userAgent: string;

  constructor(
    readonly transport: SipTransport,
    readonly timers: Timers,
    opts: { userAgent: string; publicAddress?: string | null },
  ) {
    this.userAgent = opts.userAgent;
    this.publicAddress = opts.publicAddress ?? null;
    transport.onMessage((msg, src) => (msg.kind === 'request' ? this.onRequest(msg, src) : this.onResponse(msg, src)));
  }

  private readonly publicAddress: string | null;

  setUser(tu: TransactionUser): void {
    this.tu = tu;
  }

  /** host:port for Via and Contact on the given transport. */
  sentBy(transport: 'udp' | 'tcp' | 'tls'): string {
    const l = this.transport.local(transport);
    const host = this.publicAddress ?? l?.address ?? '127.0.0.1';
    const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    return `${h}:${l?.port ?? 5060}`;
  }

  get pendingTransactions(): number {
    return this.server.size + this.client.size;
  }

  // -------------------------------------------------------------------------------------------
  // Incoming

  private serverKey(req: SipRequest, method: string): string | null {
    const top = req.headers.getList('via')[0];
    const via = top ? parseVia(top) : null;
    if (!via) return null;
    const sentBy = `${via.host}:${via.port ?? ''}`;
    // RFC 3261 17.2.3 matches on branch + sent-by + method. Call-ID and CSeq number are added
    // so a peer that reuses a branch for a new request is not mistaken for a retransmission.
    const seq = parseCSeq(req.headers.get('cseq') ?? '')?.seq;
    if (via.branch && via.branch.startsWith('z9hG4bK') && via.branch.length > 7) return `${via.branch}|${sentBy}|${method}|${req.headers.get('call-id')}|${seq}`;
    // RFC 2543 peers: no usable branch, so match on the dialog-ish identifiers (RFC 3261 17.2.3).
    const fromTag = tagOf(req.headers.get('from') ?? '') ?? '';
    return `2543|${req.headers.get('call-id')}|${seq}|${fromTag}|${top}|${method}`;
  }

  private onRequest(req: SipRequest, src: Peer): void {
    this.counters.requests++;
    const invalid = validateRequest(req, { supported: SUPPORTED, allowedMethods: ALLOWED_METHODS });
    if (invalid) {
      this.counters.rejectedInvalid++;
      if (req.method === 'ACK') return; // never answer an ACK
      const tx = new ServerTransaction(req, src, this.transport, this.timers);
      const res = tx.makeResponse(invalid.status, invalid.reason, newTag());
      for (const [n, v] of invalid.headers ?? []) res.headers.append(n, v);
      this.decorate(res);
      this.transport.sendResponseTo(res, src);
      return;
    }
    const method = req.method;
    if (method === 'ACK') return this.onAckRequest(req, src);
    const key = this.serverKey(req, method);
    if (key === null) return;
    const existing = this.server.get(key);
    if (existing) {
      this.counters.retransmissionsAbsorbed++;
      existing.retransmitted();
      return;
    }
    const tx = new ServerTransaction(req, src, this.transport, this.timers);
    this.server.set(key, tx);
    tx.onAccepted = () => this.accepted.set(acceptedKey(req), tx);
    tx.onTerminated = () => {
      this.server.delete(key);
      const ak = acceptedKey(req);
      if (this.accepted.get(ak) === tx) this.accepted.delete(ak);
    };
    if (method === 'CANCEL') return this.onCancel(req, tx);
    if (method === 'INVITE') {
      // Send 100 at once: it stops the caller's INVITE retransmissions while the far leg is set up.
      tx.respond(this.decorate(tx.makeResponse(100)));
    }
    if (!ALLOWED_METHODS.includes(method)) {
      const res = tx.makeResponse(KNOWN_ELSEWHERE.has(method) ? 405 : 501, undefined, newTag());
      res.headers.append('Allow', ALLOWED_METHODS.join(', '));
      tx.respond(this.decorate(res));
      return;
    }
    if (!this.tu) {
      tx.respond(this.decorate(tx.makeResponse(503, undefined, newTag())));
      return;
    }
    this.tu.onRequest(req, tx);
  }

  private onAckRequest(ack: SipRequest, src: Peer): void {
    const key = this.serverKey(ack, 'INVITE');
    const tx = (key && this.server.get(key)) || this.accepted.get(acceptedKey(ack));
    if (tx && tx.ack(ack)) return; // ACK for our 2xx: delivered through tx.onAck
    if (tx) return; // ACK for a non-2xx final: absorbed by the transaction
    this.tu?.onAck(ack, src);
  }

  private onCancel(cancel: SipRequest, tx: ServerTransaction): void {
    const key = this.serverKey(cancel, 'INVITE');
    const invite = key ? this.server.get(key) : undefined;
    if (!invite || invite.finished) {
      tx.respond(this.decorate(tx.makeResponse(481, undefined, newTag())));
      return;
    }
    // 200 to the CANCEL carries the same To-tag as the INVITE's responses (RFC 3261 9.2).
    const toTag = tagOf(invite.lastResponse?.headers.get('to') ?? '') ?? newTag();
    tx.respond(this.decorate(tx.makeResponse(200, undefined, toTag)));
    if (invite.onCancel) invite.onCancel(cancel);
    else invite.respond(this.decorate(invite.makeResponse(487, undefined, toTag)));
  }

  private onResponse(res: SipResponse, src: Peer): void {
    this.counters.responses++;
    if (validateResponse(res) !== null) {
      this.counters.strayResponses++;
      return;
    }
    const top = res.headers.getList('via')[0];
    const via = top ? parseVia(top) : null;
    const cseq = parseCSeq(res.headers.get('cseq') ?? '');
    if (!via?.branch || !cseq) return;
    const tx = this.client.get(`${via.branch}|${cseq.method}`);
    if (tx) {
      tx.receive(res);
      return;
    }
    if (cseq.method === 'INVITE' && res.status >= 200 && res.status < 300 && this.tu) {
      this.tu.onStray2xx(res, src);
      return;
    }
    this.counters.strayResponses++;
  }

  // -------------------------------------------------------------------------------------------
  // Outgoing

  /** Add Server/User-Agent where missing. */
  decorate<T extends SipRequest | SipResponse>(msg: T): T {
    if (msg.kind === 'response') {
      if (!msg.headers.has('server')) msg.headers.append('Server', this.userAgent);
    } else if (!msg.headers.has('user-agent')) msg.headers.append('User-Agent', this.userAgent);
    return msg;
  }

  private addVia(req: SipRequest, dest: Peer): string {
    const branch = newBranch();
    const proto = dest.transport.toUpperCase();
    req.headers.prepend('Via', `SIP/2.0/${proto} ${this.sentBy(dest.transport)};branch=${branch};rport`);
    if (!req.headers.has('max-forwards')) req.headers.append('Max-Forwards', '70');
    this.decorate(req);
    return branch;
  }

  /** Start a client transaction. The request gets our Via; the transaction handles timers. */
  sendRequest(req: SipRequest, dest: Peer, handlers: ClientHandlers): ClientTransaction {
    const branch = this.addVia(req, dest);
    const key = `${branch}|${req.method}`;
    const tx = new ClientTransaction(req, dest, handlers, this.transport, this.timers, (inv, extra) => {
      const cancel = buildCancel(inv.request, extra);
      this.decorate(cancel);
      const ck = `${branch}|CANCEL`;
      const ctx = new ClientTransaction(cancel, dest, { onFinal: () => {} }, this.transport, this.timers, () => {});
      this.client.set(ck, ctx);
      ctx.onTerminated = () => this.client.delete(ck);
      ctx.start();
    });
    this.client.set(key, tx);
    tx.onTerminated = () => this.client.delete(key);
    tx.start();
    return tx;
  }

  /** ACK for a 2xx: its own transaction-less request with a fresh branch (RFC 3261 13.2.2.4). */
  sendAck(ack: SipRequest, dest: Peer): void {
    this.addVia(ack, dest);
    this.transport.send(ack, dest);
  }

  /** Sends an ACK already sent once, unchanged (same Via branch): for a retransmitted 2xx (RFC 3261 13.2.2.4). */
  resendAck(ack: SipRequest, dest: Peer): void {
    this.transport.send(ack, dest);
  }

  /** Answer a server transaction with the mandatory headers, our Server header and an optional body. */
  reply(tx: ServerTransaction, status: number, opts: { reason?: string; toTag?: string; headers?: [string, string][]; body?: Buffer; contentType?: string } = {}): SipResponse {
    const res = tx.makeResponse(status, opts.reason ?? REASONS[status], opts.toTag ?? (status > 100 ? newTag() : undefined));
    for (const [n, v] of opts.headers ?? []) res.headers.append(n, v);
    if (opts.body && opts.body.length) {
      res.body = opts.body;
      if (opts.contentType) res.headers.append('Content-Type', opts.contentType);
    }
    this.decorate(res);
    tx.respond(res);
    return res;
  }

  /** Drop all transactions' timers (shutdown). */
  shutdown(): void {
    for (const tx of [...this.server.values(), ...this.client.values()]) tx.terminate();
  }
}

function acceptedKey(req: SipRequest): string {
  const cseq = parseCSeq(req.headers.get('cseq') ?? '');
  return `${req.headers.get('call-id')}|${cseq?.seq}`;
}

export { response, Headers, EMPTY };
