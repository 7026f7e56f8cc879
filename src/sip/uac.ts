// One outbound INVITE "attempt" as the procedure counts it: the digest challenges (401/407),
// redirects (3xx) and DNS/transport failover inside it all belong to the same attempt.
import type { Peer, SipRequest, SipResponse } from './message.js';
import { Headers, request, EMPTY } from './message.js';
import { parseUri, parseNameAddr, newTag, newCallId, optionTags, parseRetryAfter } from './grammar.js';
import type { SipEndpoint } from './endpoint.js';
import type { ClientTransaction, LocalFailure } from './transactions.js';
import type { SipResolver, Hop } from './resolver.js';
import { DigestSession, type Credentials } from './digest.js';
import { Dialog } from './dialog.js';

export interface OutboundOptions {
  /** Request-URI / To of the target. */
  target: string;
  /** From header value without tag (we add the tag). */
  from: string;
  /** Headers to add to every INVITE of this attempt (passed-through and our own). */
  headers: [string, string][];
  body: Buffer;
  contentType?: string;
  outboundProxy?: string | null;
  credentials?: Credentials | null;
  /** Offer 100rel ('supported') or insist on it ('required'). */
  prack: 'supported' | 'required' | 'off';
  sessionTimer?: { expiresS: number; minSeS: number } | null;
  /** Call-ID to use (default: a new one). */
  callId?: string;
}

export interface OutboundEvents {
  /** A 1xx other than 100 (182 Queued included: it is not contact). */
  onProvisional?(res: SipResponse): void;
  /** 2xx: the dialog is confirmed on our side and the ACK has been sent. */
  onAnswer(res: SipResponse, dialog: Dialog, crossedCancel: boolean): void;
  /** Final failure of the whole attempt. `status` 408 with `local: 'timeout'` = no response. */
  onFailure(status: number, reason: string, info: { local?: LocalFailure; retryAfterS?: number; cancelled: boolean; response?: SipResponse }): void;
}

const DETACHED: OutboundEvents = { onAnswer: () => {}, onFailure: () => {} };

const MAX_REDIRECTS = 3;
const MAX_AUTH_ROUNDS = 3;

export class OutboundInvite {
  readonly callId: string;
  readonly fromTag = newTag();
  private detached = false;
  private cseq = 1;
  private tx: ClientTransaction | null = null;
  private hops: Hop[] = [];
  private hopIndex = 0;
  private requestUri: string;
  private redirects = 0;
  private authRounds = 0;
  private readonly digest = new DigestSession();
  private cancelled = false;
  private done = false;
  private readonly pracked = new Set<string>();
  /** Set when the 2xx arrived: the dialog of this leg. */
  dialog: Dialog | null = null;
  firstProvisionalAt: number | null = null;
  lastRequest: SipRequest | null = null;
  /** The peer that answered (for in-dialog requests when the Contact is a host name). */
  peer: Peer | null = null;

  constructor(
    private readonly ep: SipEndpoint,
    private readonly resolver: SipResolver,
    private readonly opts: OutboundOptions,
    private events: OutboundEvents,
  ) {
    this.callId = opts.callId ?? newCallId(ep.sentBy('udp').split(':')[0] ?? 'amk-bridge');
    this.requestUri = opts.target;
  }

  async start(): Promise<void> {
    try {
      await this.resolveTarget();
    } catch (err) {
      return this.fail(503, `DNS: ${(err as Error).message}`, { local: 'transport' });
    }
    if (!this.hops.length) return this.fail(503, 'target did not resolve', { local: 'transport' });
    this.send();
  }

  private async resolveTarget(): Promise<void> {
    const next = this.opts.outboundProxy ?? this.requestUri;
    const u = parseUri(next);
    if (!u || (u.scheme !== 'sip' && u.scheme !== 'sips')) throw new Error(`not a SIP URI: ${next}`);
    this.hops = await this.resolver.resolve({
      scheme: u.scheme as 'sip' | 'sips', host: u.host, port: u.port,
      transportParam: u.params.get('transport') ?? undefined,
    });
    this.hopIndex = 0;
  }

  private buildInvite(hop: Hop): SipRequest {
    const h = new Headers();
    if (this.opts.outboundProxy) h.append('Route', `<${this.opts.outboundProxy};lr>`);
    h.append('From', `${this.opts.from};tag=${this.fromTag}`);
    h.append('To', `<${this.opts.target}>`);
    h.append('Call-ID', this.callId);
    h.append('CSeq', `${this.cseq++} INVITE`);
    const transport = hop.transport === 'udp' ? '' : `;transport=${hop.transport}`;
    h.append('Contact', `<sip:amk-bridge@${this.ep.sentBy(hop.transport)}${transport}>`);
    const supported = ['timer', 'replaces'];
    if (this.opts.prack !== 'off') supported.unshift('100rel');
    h.append('Supported', supported.join(', '));
    if (this.opts.prack === 'required') h.append('Require', '100rel');
    h.append('Allow', 'INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY');
    if (this.opts.sessionTimer) {
      h.append('Session-Expires', String(this.opts.sessionTimer.expiresS));
      h.append('Min-SE', String(this.opts.sessionTimer.minSeS));
    }
    for (const [n, v] of this.opts.headers) h.append(n, v);
    if (this.opts.body.length && this.opts.contentType) h.append('Content-Type', this.opts.contentType);
    return request('INVITE', this.requestUri, h, this.opts.body);
  }

  private send(authHeaders: { header: string; value: string }[] = []): void {
    if (this.cancelled) return this.fail(487, 'cancelled before sending', {});
    const hop = this.hops[this.hopIndex];
    if (!hop) return this.fail(503, 'all targets failed', { local: 'transport' });
    const req = this.buildInvite(hop);
    for (const a of authHeaders) req.headers.append(a.header, a.value);
    this.lastRequest = req;
    const dest: Peer = { transport: hop.transport, address: hop.address, port: hop.port };
    this.peer = dest;
    this.tx = this.ep.sendRequest(req, dest, {
      onProvisional: (res) => this.onProvisional(res, dest),
      onFinal: (res, local) => this.onFinal(res, local, hop, dest),
      onRetransmitted2xx: (res) => this.reAck(res, dest),
    });
  }

  private onProvisional(res: SipResponse, dest: Peer): void {
    if (this.done) return;
    if (res.status === 100) return;
    if (this.firstProvisionalAt === null) this.firstProvisionalAt = Date.now();
    const rseq = res.headers.get('rseq');
    if (rseq && optionTags(res.headers, 'require').includes('100rel')) {
      const key = `${res.headers.get('to')}|${rseq.trim()}`;
      if (this.pracked.has(key)) return; // retransmission of a reliable 1xx we already PRACKed
      this.pracked.add(key);
      this.sendPrack(res, dest);
    }
    if (!this.cancelled) this.events.onProvisional?.(res);
  }

  private sendPrack(res: SipResponse, dest: Peer): void {
    if (!this.lastRequest) return;
    const early = Dialog.asUac(this.lastRequest, res, dest, this.lastRequest.headers.get('contact') ?? '');
    early.localSeq = this.cseq - 1;
    const cseq = this.lastRequest.headers.get('cseq') ?? '';
    const prack = early.createRequest('PRACK', { headers: [['RAck', `${res.headers.get('rseq')!.trim()} ${cseq}`]] });
    this.cseq = early.localSeq + 1;
    this.ep.sendRequest(prack, early.nextHop() ?? dest, { onFinal: () => {} });
  }

  /**
   * The call this leg belonged to is over: forget its event handlers, so the transactions that
   * linger for retransmissions do not keep the call alive. A 2xx that still comes is ACKed and
   * hung up; nothing more is tried (no failover, auth or redirect).
   */
  detach(): void {
    this.detached = true;
    this.events = DETACHED;
  }

  private onFinal(res: SipResponse, local: LocalFailure | undefined, hop: Hop, dest: Peer): void {
    if (this.detached && !this.done) {
      this.done = true;
      if (res.status >= 200 && res.status < 300) this.ackAndBye(res, dest);
      return;
    }
    if (this.done) {
      // A second final (e.g. a forked 2xx) after we finished: ACK and hang up that branch.
      if (res.status >= 200 && res.status < 300) this.ackAndBye(res, dest);
      return;
    }
    if (res.status >= 200 && res.status < 300) {
      this.done = true;
      const contact = this.lastRequest?.headers.get('contact') ?? '';
      this.dialog = Dialog.asUac(this.lastRequest!, res, dest, contact);
      // PRACKs used CSeq numbers after the INVITE's; in-dialog requests continue above them.
      this.dialog.localSeq = Math.max(this.dialog.localSeq, this.cseq - 1);
      this.peer = dest;
      this.ack();
      this.events.onAnswer(res, this.dialog, this.cancelled);
      return;
    }
    const retryAfter = parseRetryAfter(res.headers.get('retry-after') ?? '') ?? undefined;
    // Failover to the next hop inside the same attempt: transport errors, no response at all,
    // and 503 without Retry-After (RFC 3263 4.3).
    const failover = !this.cancelled && (local !== undefined || (res.status === 503 && retryAfter === undefined)) && !this.tx?.gotProvisional;
    if (failover) {
      this.resolver.markFailed(hop);
      if (this.hopIndex + 1 < this.hops.length) {
        this.hopIndex++;
        this.send();
        return;
      }
    }
    if ((res.status === 401 || res.status === 407) && !this.cancelled && this.opts.credentials && this.authRounds < MAX_AUTH_ROUNDS) {
      const answers = this.digest.answer(res.headers, { method: 'INVITE', uri: this.requestUri, body: this.opts.body }, this.opts.credentials);
      if (answers && answers.length) {
        this.authRounds++;
        this.send(answers);
        return;
      }
    }
    if (res.status >= 300 && res.status < 400 && !this.cancelled && this.redirects < MAX_REDIRECTS) {
      const contact = res.headers.getList('contact')[0];
      const uri = contact ? parseNameAddr(contact)?.uri : undefined;
      if (uri && /^sips?:/i.test(uri)) {
        this.redirects++;
        this.requestUri = uri;
        this.resolveTarget().then(() => this.send(), (err: Error) => this.fail(503, `DNS: ${err.message}`, { local: 'transport' }));
        return;
      }
    }
    this.fail(res.status, res.reason, { local, retryAfterS: retryAfter, response: res });
  }

  private fail(status: number, reason: string, info: { local?: LocalFailure; retryAfterS?: number; response?: SipResponse }): void {
    if (this.done) return;
    this.done = true;
    this.events.onFailure(status, reason, { ...info, cancelled: this.cancelled });
  }

  /** ACK the 2xx (with the answer body for a late offer). */
  ack(body: Buffer = EMPTY, contentType?: string): void {
    if (!this.dialog) return;
    const ack = this.dialog.createRequest('ACK', { body, contentType });
    this.lastAck = ack;
    this.ep.sendAck(ack, this.dialog.nextHop());
  }

  private lastAck: SipRequest | null = null;

  private reAck(res: SipResponse, dest: Peer): void {
    if (this.lastAck && this.dialog) {
      // The same ACK again, branch and all: the peer matches it to the ACK it already has.
      this.ep.resendAck(this.lastAck, this.dialog.nextHop());
    } else if (!this.dialog) this.ackAndBye(res, dest);
  }

  /** A 2xx we do not want (forked, or after we gave up): ACK it, then BYE it. */
  private ackAndBye(res: SipResponse, dest: Peer): void {
    if (!this.lastRequest) return;
    const d = Dialog.asUac(this.lastRequest, res, dest, this.lastRequest.headers.get('contact') ?? '');
    this.ep.sendAck(d.createRequest('ACK'), d.nextHop());
    this.ep.sendRequest(d.createRequest('BYE'), d.nextHop(), { onFinal: () => {} });
  }

  /**
   * Give up on this attempt. RFC 3261 9.1: no CANCEL before a provisional response; the
   * transaction sends it when the first 1xx arrives. A 2xx that still comes is reported with
   * `crossedCancel` so the caller decides whether it is contact.
   */
  cancel(reason?: string): void {
    if (this.done || this.cancelled) return;
    this.cancelled = true;
    const extra = new Headers();
    if (reason) extra.append('Reason', reason);
    this.tx?.cancel(extra);
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }

  get isDone(): boolean {
    return this.done;
  }
}

export type { Credentials };
